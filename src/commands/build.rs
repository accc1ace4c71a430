//! `yun build`: build the app's functions (being written).

use std::process::ExitCode;

use crate::Global;

#[derive(clap::Args, Debug)]
pub struct Args {}

pub async fn run(_global: &Global, _args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("yun build is not built yet")
}
