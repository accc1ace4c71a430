//! `yun tag NAME TAG REV` / `yun tag NAME TAG --rm`: name a revision, which then has its own
//! URL (`/fn/NAME@TAG/` and `TAG.NAME.<domain>`).

use std::process::ExitCode;

use anyhow::bail;
use reqwest::Method;
use serde_json::json;

use crate::Global;
use crate::client::Client;

#[derive(clap::Args, Debug)]
pub struct Args {
    name: String,
    tag: String,
    /// The revision the tag points at.
    #[arg(required_unless_present = "rm")]
    revision: Option<u64>,
    /// Remove the tag.
    #[arg(long, conflicts_with = "revision")]
    rm: bool,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let client = Client::new(global)?;
    let path = format!("/v1/functions/{}/tags/{}", args.name, args.tag);
    let v = match (args.rm, args.revision) {
        (true, _) => client.call(client.request(Method::DELETE, &path)).await?,
        (false, Some(rev)) => {
            client.call(client.request(Method::PUT, &path).json(&json!({ "revision": rev }))).await?
        }
        (false, None) => bail!("give the revision the tag points at, or --rm"),
    };
    super::traffic::print_traffic(global, &v);
    Ok(ExitCode::SUCCESS)
}
