//! `yun __compile IN OUT`: the isolated compiler child the server spawns for every upload.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    wasm: PathBuf,
    out: PathBuf,
}

pub fn run(args: &Args) -> ExitCode {
    let code = yun_runtime_wasm::compile_child_main(&args.wasm, &args.out);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
