//! `yun rm NAME`: remove a function, its revisions and logs.

use std::process::ExitCode;

use reqwest::Method;

use crate::Global;
use crate::client::{Client, print_json};

#[derive(clap::Args, Debug)]
pub struct Args {
    name: String,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let client = Client::new(global)?;
    let v = client.call(client.request(Method::DELETE, &format!("/v1/functions/{}", args.name))).await?;
    if global.json {
        print_json(&v);
    } else {
        let n = v["artifacts_removed"].as_array().map_or(0, Vec::len);
        println!("removed {} ({n} artifacts garbage-collected)", args.name);
    }
    Ok(ExitCode::SUCCESS)
}
