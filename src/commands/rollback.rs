//! `yun rollback NAME [--to REV]`: all traffic back to the stable revision (mid-rollout or
//! mid-split) or to the one before it, at once.

use std::process::ExitCode;

use reqwest::Method;
use serde_json::json;

use crate::Global;
use crate::client::Client;

#[derive(clap::Args, Debug)]
pub struct Args {
    name: String,
    /// The revision to send all traffic to (default: the one before).
    #[arg(long)]
    to: Option<u64>,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let client = Client::new(global)?;
    let v = client
        .call(
            client
                .request(Method::POST, &format!("/v1/functions/{}/rollback", args.name))
                .json(&json!({ "to": args.to })),
        )
        .await?;
    if !global.json {
        println!("{} now serves revision {}", args.name, v["active_revision"]);
    }
    super::traffic::print_traffic(global, &v);
    Ok(ExitCode::SUCCESS)
}
