//! `yun scale NAME [--min N] [--max M] [--concurrency C] [--idle 60s] [--keep-alive fixed|adaptive]`:
//! how a function scales. Only the options given change; the function keeps them across deploys.

use std::process::ExitCode;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::Global;
use crate::client::{Client, print_json};

#[derive(clap::Args, Debug)]
pub struct Args {
    name: String,
    /// Instances kept running even without traffic (started now, and again after a restart).
    #[arg(long)]
    min: Option<u32>,
    /// Most instances at once. For a wasm function: most wasm instances running its requests
    /// at once.
    #[arg(long)]
    max: Option<u32>,
    /// Requests one instance of a process function serves at the same time.
    #[arg(long)]
    concurrency: Option<u32>,
    /// How long an idle function stays warm (the fixed keep-alive window, and the adaptive
    /// policy's fallback), e.g. 60s, 10m.
    #[arg(long, value_parser = humantime::parse_duration)]
    idle: Option<Duration>,
    /// fixed: keep warm for --idle after the last request. adaptive: learn from the function's
    /// own idle times when to unload and when to pre-warm.
    #[arg(long)]
    keep_alive: Option<String>,
    /// Requests that may wait for an instance; more get 429.
    #[arg(long)]
    queue: Option<u32>,
    /// How long a request waits for an instance before it gets 503, e.g. 10s.
    #[arg(long, value_parser = humantime::parse_duration)]
    queue_timeout: Option<Duration>,
    /// Process functions: freeze an instance that is scaled in for this long (no CPU, memory
    /// kept) and thaw it for the next request instead of starting a new one; 0s turns it off.
    #[arg(long, value_parser = humantime::parse_duration)]
    freeze: Option<Duration>,
    /// The autoscaler's stable window: load is averaged over it before instances are retired
    /// (its panic window, for bursts, is a tenth of it), e.g. 60s.
    #[arg(long, value_parser = humantime::parse_duration)]
    window: Option<Duration>,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let mut patch = Map::new();
    let mut set = |k: &str, v: Value| {
        patch.insert(k.to_string(), v);
    };
    if let Some(n) = args.min {
        set("min_instances", json!(n));
    }
    if let Some(n) = args.max {
        set("max_instances", json!(n));
    }
    if let Some(n) = args.concurrency {
        set("concurrency", json!(n));
    }
    if let Some(d) = args.idle {
        set("idle_ms", json!(d.as_millis() as u64));
    }
    if let Some(k) = &args.keep_alive {
        if k != "fixed" && k != "adaptive" {
            anyhow::bail!("--keep-alive must be fixed or adaptive, not {k:?}");
        }
        set("keep_alive", json!(k));
    }
    if let Some(n) = args.queue {
        set("max_queue", json!(n));
    }
    if let Some(d) = args.queue_timeout {
        set("queue_timeout_ms", json!(d.as_millis() as u64));
    }
    if let Some(d) = args.freeze {
        set("freeze_ms", json!(d.as_millis() as u64));
    }
    if let Some(d) = args.window {
        set("window_ms", json!(d.as_millis() as u64));
    }
    let client = Client::new(global)?;
    let path = format!("/v1/functions/{}/scale", args.name);
    let v = client.call(client.request(Method::PATCH, &path).json(&Value::Object(patch))).await?;
    if global.json {
        print_json(&v);
    } else {
        println!("{}:", args.name);
        crate::commands::describe::print_scale(&v["scale"]);
    }
    Ok(ExitCode::SUCCESS)
}
