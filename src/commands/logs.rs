//! `yun logs NAME [-f] [--since 10m]`: what the function's guests wrote to stdout and stderr.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use reqwest::Method;
use serde_json::Value;

use crate::Global;
use crate::client::{Client, check, format_ms};

#[derive(clap::Args, Debug)]
pub struct Args {
    name: String,
    /// Keep streaming new lines as they are written.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Only lines from this long ago on, e.g. 10m or 2h.
    #[arg(long, value_parser = humantime::parse_duration)]
    since: Option<Duration>,
    /// At most this many past lines.
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    /// Only this revision's lines.
    #[arg(long)]
    revision: Option<u64>,
    /// Only this invocation's lines.
    #[arg(long)]
    invocation: Option<String>,
    /// Only lines containing this text.
    #[arg(long)]
    grep: Option<String>,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let client = Client::new(global)?;
    let since_ms = args.since.map_or(0, |d| yun_types::now_ms().saturating_sub(d.as_millis() as u64));
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("since", &since_ms.to_string());
    query.append_pair("limit", &args.limit.to_string());
    query.append_pair("follow", &args.follow.to_string());
    if let Some(r) = args.revision {
        query.append_pair("revision", &r.to_string());
    }
    if let Some(i) = &args.invocation {
        query.append_pair("invocation", i);
    }
    if let Some(t) = &args.grep {
        query.append_pair("contains", t);
    }
    let path = format!("/v1/functions/{}/logs?{}", args.name, query.finish());
    let mut response = check(client.send(client.request(Method::GET, &path)).await?).await?;
    let mut pending = Vec::new();
    let mut stdout = std::io::stdout().lock();
    while let Some(chunk) = response.chunk().await.context("reading the log stream")? {
        pending.extend_from_slice(&chunk);
        while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=pos).collect();
            let Ok(entry) = serde_json::from_slice::<Value>(&line) else { continue };
            if global.json {
                stdout.write_all(&line)?;
            } else {
                writeln!(
                    stdout,
                    "{} {}@{} {} {}: {}",
                    format_ms(entry["ts_ms"].as_u64().unwrap_or(0)),
                    entry["function"].as_str().unwrap_or("-"),
                    entry["revision"],
                    entry["invocation_id"].as_str().unwrap_or("-"),
                    entry["stream"].as_str().unwrap_or("-"),
                    entry["line"].as_str().unwrap_or("")
                )?;
            }
            stdout.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
