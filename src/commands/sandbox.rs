//! `yun __sandbox`: the single-threaded helper yun re-executes to build each sandboxed instance
//! (see `yun_sandbox::helper_main`). Never run by hand.

use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: &Args) -> ExitCode {
    let code = yun_sandbox::helper_main();
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
