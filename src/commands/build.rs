//! `yun build`: build the app's functions (being written).

use std::process::ExitCode;

use crate::Global;

#[derive(clap::Args, Debug)]
pub struct Args {}

pub async fn run(_global: &Global, _args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("yun build is not built yet")
}

/// Placeholder until the build command lands: the artifact is the manifest's `source`.
pub fn build_function(
    _name: &yun_types::FunctionName,
    _def: &yun_manifest::FunctionDef,
) -> anyhow::Result<Option<std::path::PathBuf>> {
    Ok(None)
}

pub fn artifact_path(
    name: &yun_types::FunctionName,
    def: &yun_manifest::FunctionDef,
) -> anyhow::Result<std::path::PathBuf> {
    def.source.clone().ok_or_else(|| anyhow::anyhow!("function {name} has no source"))
}
