//! `yun invocations NAME [--status failed]`: a function's asynchronous invocations, newest
//! first, with their attempts and last error; `yun dlq redrive NAME` sends its dead letters
//! back to be tried again.

use std::process::ExitCode;

use reqwest::Method;

use crate::Global;
use crate::client::{Client, format_ms, print_json};

#[derive(clap::Args, Debug)]
pub struct Args {
    function: String,
    /// queued (waiting, or being tried again), succeeded or failed.
    #[arg(long)]
    status: Option<String>,
    #[arg(long, default_value_t = 50)]
    limit: usize,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let client = Client::new(global)?;
    let mut path = format!("/v1/functions/{}/invocations?limit={}", args.function, args.limit);
    if let Some(s) = &args.status {
        path.push_str(&format!("&status={s}"));
    }
    let v = client.call(client.request(Method::GET, &path)).await?;
    if global.json {
        print_json(&v);
        return Ok(ExitCode::SUCCESS);
    }
    let list = v["invocations"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!(
            "no asynchronous invocations{}",
            args.status.map(|s| format!(" with status {s}")).unwrap_or_default()
        );
    }
    for r in list {
        println!(
            "{}  {:<13} {} attempt(s)  {}  {}",
            r["id"].as_str().unwrap_or("-"),
            r["status"].as_str().unwrap_or("-"),
            r["attempts"],
            format_ms(r["updated_ms"].as_u64().unwrap_or(0)),
            r["last_error"].as_str().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args, Debug)]
pub struct DlqArgs {
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(clap::Subcommand, Debug)]
enum DlqCommand {
    /// Send a function's dead-lettered events back to be tried again.
    Redrive { function: String },
}

pub async fn run_dlq(global: &Global, args: DlqArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(global)?;
    let DlqCommand::Redrive { function } = args.command;
    let v =
        client.call(client.request(Method::POST, &format!("/v1/functions/{function}/dlq/redrive"))).await?;
    if global.json {
        print_json(&v);
    } else {
        println!("{} dead-lettered events of {function} sent back", v["moved"]);
    }
    Ok(ExitCode::SUCCESS)
}
