//! `yun invocations NAME [--status failed] [--since 1h] [--trigger cron]`: a function's
//! invocations, newest first, whatever triggered them: when, how they started, how long they
//! ran and were billed, memory, status; an asynchronous one's attempts. `yun dlq redrive NAME`
//! sends its dead letters back to be tried again.

use std::process::ExitCode;
use std::time::Duration;

use reqwest::Method;

use crate::Global;
use crate::client::{Client, format_ms, print_json};

#[derive(clap::Args, Debug)]
pub struct Args {
    function: String,
    /// succeeded, failed, or (asynchronous ones) queued, running, dead_lettered.
    #[arg(long)]
    status: Option<String>,
    /// Only invocations that started within this long (e.g. 10m, 2h).
    #[arg(long, value_parser = humantime::parse_duration)]
    since: Option<Duration>,
    /// Only those started by this: http, async, cron, queue, topic, function, invoke.
    #[arg(long)]
    trigger: Option<String>,
    #[arg(long, default_value_t = 50)]
    limit: usize,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let client = Client::new(global)?;
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("limit", &args.limit.to_string());
    if let Some(s) = &args.status {
        query.append_pair("status", s);
    }
    if let Some(d) = args.since {
        query.append_pair("since", &yun_types::now_ms().saturating_sub(d.as_millis() as u64).to_string());
    }
    if let Some(t) = &args.trigger {
        query.append_pair("trigger", t);
    }
    let path = format!("/v1/functions/{}/invocations?{}", args.function, query.finish());
    let v = client.call(client.request(Method::GET, &path)).await?;
    if global.json {
        print_json(&v);
        return Ok(ExitCode::SUCCESS);
    }
    let list = v["invocations"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("no invocations{}", args.status.map(|s| format!(" with status {s}")).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<36}  {:<24}  {:<8} {:<13} {:>4} {:<6} {:>10} {:>8} {:>7}  ERROR",
        "ID", "STARTED", "TRIGGER", "STATUS", "HTTP", "START", "DURATION", "BILLED", "MEMORY"
    );
    for r in list {
        let text = |k: &str| r[k].as_str().unwrap_or("-").to_string();
        let mut status = text("status");
        if let Some(n) = r["attempts"].as_u64().filter(|n| *n > 1) {
            status = format!("{status}({n})");
        }
        let memory = match (r["max_memory_bytes"].as_u64(), r["memory_limit_bytes"].as_u64()) {
            (Some(used), Some(_)) => format!("{}M", used.div_ceil(1 << 20)),
            (None, Some(limit)) => format!("-/{}M", limit >> 20),
            _ => "-".into(),
        };
        let error = r["error"].as_str().or(r["last_error"].as_str()).unwrap_or("");
        println!(
            "{:<36}  {:<24}  {:<8} {:<13} {:>4} {:<6} {:>10} {:>8} {:>7}  {}",
            text("id"),
            format_ms(r["start_ms"].as_u64().unwrap_or(0)),
            text("trigger"),
            status,
            r["http_status"].as_u64().or(r["last_status"].as_u64()).map_or("-".into(), |s| s.to_string()),
            text("start"),
            r["duration_ms"].as_f64().map_or("-".into(), |d| format!("{d:.2}ms")),
            r["billed_ms"].as_u64().map_or("-".into(), |d| format!("{d}ms")),
            memory,
            error
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
