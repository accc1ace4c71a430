//! `yun new NAME --template KIND`: scaffold a function (being written).

use std::process::ExitCode;

use crate::Global;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Function name; also the directory created.
    name: String,
}

pub async fn run(_global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("yun new {} is not built yet", args.name)
}
