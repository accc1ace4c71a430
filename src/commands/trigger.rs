//! `yun trigger add|rm|ls NAME ...`: what invokes a function besides requests: a queue it
//! consumes in batches, or a cron schedule. `yun async NAME ...` sets how its asynchronous
//! invocations are retried and where their outcomes go.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use reqwest::Method;
use serde_json::{Value, json};

use crate::Global;
use crate::client::{Client, print_json};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: TriggerCommand,
}

#[derive(clap::Subcommand, Debug)]
// Parsed once per run of the CLI: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
enum TriggerCommand {
    /// Add a trigger: `--queue Q` (consume it), `--cron "*/5 * * * *"` (run on a schedule) or
    /// `--bucket B` (run on changes to its objects).
    Add {
        function: String,
        /// The trigger's name within the function.
        id: String,
        #[arg(long, conflicts_with_all = ["cron", "bucket"])]
        queue: Option<String>,
        /// Messages per invocation (1 to 10).
        #[arg(long, requires = "queue")]
        batch_size: Option<u32>,
        /// Wait this long for a batch to fill.
        #[arg(long, value_parser = humantime::parse_duration, requires = "queue")]
        window: Option<Duration>,
        /// Batches in flight at once.
        #[arg(long, requires = "queue")]
        concurrency: Option<u32>,
        /// Five fields, or six with seconds first.
        #[arg(long)]
        cron: Option<String>,
        /// IANA time zone of the schedule (default UTC).
        #[arg(long, requires = "cron")]
        timezone: Option<String>,
        /// A tick missed while yun was down: run-once (the latest, once) or skip.
        #[arg(long, requires = "cron", value_parser = ["run-once", "skip"])]
        missed: Option<String>,
        /// Changes to this bucket's objects (S3 bucket notifications).
        #[arg(long, conflicts_with = "cron")]
        bucket: Option<String>,
        /// Which changes: created, removed, or S3 names like ObjectCreated:Put (repeatable;
        /// default both created and removed).
        #[arg(long = "event", requires = "bucket")]
        events: Vec<String>,
        /// Only keys starting with this.
        #[arg(long, requires = "bucket")]
        prefix: Option<String>,
        /// Only keys ending with this.
        #[arg(long, requires = "bucket")]
        suffix: Option<String>,
    },
    /// Remove a trigger.
    Rm { function: String, id: String },
    /// List a function's triggers and asynchronous settings.
    Ls { function: String },
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let client = Client::new(global)?;
    let v = match args.command {
        TriggerCommand::Add {
            function,
            id,
            queue,
            batch_size,
            window,
            concurrency,
            cron,
            timezone,
            missed,
            bucket,
            events,
            prefix,
            suffix,
        } => {
            let mut t = match (queue, cron, bucket) {
                (Some(q), None, None) => json!({ "kind": "queue", "id": id, "queue": q }),
                (None, Some(c), None) => json!({ "kind": "cron", "id": id, "expression": c }),
                (None, None, Some(b)) => {
                    let mut t = json!({ "kind": "storage", "id": id, "bucket": b });
                    if !events.is_empty() {
                        let names: Result<Vec<String>, String> =
                            events.iter().map(|e| yun_types::storage_event_name(e)).collect();
                        t["events"] = json!(names.map_err(anyhow::Error::msg)?);
                    }
                    if let Some(p) = prefix {
                        t["prefix"] = json!(p);
                    }
                    if let Some(s) = suffix {
                        t["suffix"] = json!(s);
                    }
                    t
                }
                _ => bail!("give --queue QUEUE, --cron EXPRESSION or --bucket BUCKET"),
            };
            if let Some(b) = batch_size {
                t["batch_size"] = json!(b);
            }
            if let Some(w) = window {
                t["window_ms"] = json!(w.as_millis() as u64);
            }
            if let Some(c) = concurrency {
                t["concurrency"] = json!(c);
            }
            if let Some(tz) = timezone {
                t["timezone"] = json!(tz);
            }
            if let Some(m) = missed {
                t["missed"] = json!(m);
            }
            let v = client
                .call(client.request(Method::POST, &format!("/v1/functions/{function}/triggers")).json(&t))
                .await?;
            if !global.json {
                println!("trigger {id} added to {function}");
            }
            v
        }
        TriggerCommand::Rm { function, id } => {
            let v = client
                .call(client.request(Method::DELETE, &format!("/v1/functions/{function}/triggers/{id}")))
                .await?;
            if !global.json {
                println!("trigger {id} removed from {function}");
            }
            v
        }
        TriggerCommand::Ls { function } => {
            let v = client.call(client.request(Method::GET, &format!("/v1/functions/{function}"))).await?;
            if !global.json {
                print_triggers(&v);
            }
            v
        }
    };
    if global.json {
        print_json(&v);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn print_triggers(v: &Value) {
    for t in v["triggers"].as_array().into_iter().flatten() {
        match t["kind"].as_str() {
            Some("queue") => println!(
                "trigger:   {} consumes queue {} (batch {}, window {} ms, concurrency {})",
                t["id"].as_str().unwrap_or("-"),
                t["queue"].as_str().unwrap_or("-"),
                t["batch_size"],
                t["window_ms"],
                t["concurrency"]
            ),
            Some("storage") => println!(
                "trigger:   {} on bucket {} ({}){}{}",
                t["id"].as_str().unwrap_or("-"),
                t["bucket"].as_str().unwrap_or("-"),
                t["events"]
                    .as_array()
                    .map(|e| e.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", "))
                    .unwrap_or_default(),
                t["prefix"].as_str().map(|p| format!(", keys starting {p:?}")).unwrap_or_default(),
                t["suffix"].as_str().map(|s| format!(", keys ending {s:?}")).unwrap_or_default()
            ),
            _ => println!(
                "trigger:   {} on schedule \"{}\" ({}, missed ticks: {})",
                t["id"].as_str().unwrap_or("-"),
                t["expression"].as_str().unwrap_or("-"),
                t["timezone"].as_str().unwrap_or("UTC"),
                t["missed"].as_str().unwrap_or("-")
            ),
        }
    }
    let a = &v["async"];
    if a.is_object() {
        println!(
            "async:     {} attempts, max age {} s, first retry after {} ms{}{}",
            a["max_attempts"],
            a["max_age_ms"].as_u64().unwrap_or(0) / 1000,
            a["retry_base_ms"],
            a["on_success"]
                .as_object()
                .map(|d| format!(", on success {}", Value::Object(d.clone())))
                .unwrap_or_default(),
            a["on_failure"]
                .as_object()
                .map(|d| format!(", on failure {}", Value::Object(d.clone())))
                .unwrap_or_default(),
        );
    }
}

#[derive(clap::Args, Debug)]
pub struct AsyncArgs {
    function: String,
    /// Attempts in all, the first included (default 3).
    #[arg(long)]
    max_attempts: Option<u32>,
    /// Events older than this are not tried again (default 6h).
    #[arg(long, value_parser = humantime::parse_duration)]
    max_age: Option<Duration>,
    /// The first retry's delay, doubled each time (default 1s).
    #[arg(long, value_parser = humantime::parse_duration)]
    retry_delay: Option<Duration>,
    /// Where successful outcomes go: function:NAME or queue:NAME.
    #[arg(long)]
    on_success: Option<yun_types::Destination>,
    /// Where failed outcomes go (besides the dead-letter queue).
    #[arg(long)]
    on_failure: Option<yun_types::Destination>,
}

pub async fn run_async(global: &Global, args: AsyncArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(global)?;
    let current =
        client.call(client.request(Method::GET, &format!("/v1/functions/{}", args.function))).await?;
    let mut spec = current["async"].as_object().cloned().map(Value::Object).unwrap_or_else(|| json!({}));
    if let Some(n) = args.max_attempts {
        spec["max_attempts"] = json!(n);
    }
    if let Some(d) = args.max_age {
        spec["max_age_ms"] = json!(d.as_millis() as u64);
    }
    if let Some(d) = args.retry_delay {
        spec["retry_base_ms"] = json!(d.as_millis() as u64);
    }
    if let Some(d) = args.on_success {
        spec["on_success"] = serde_json::to_value(d)?;
    }
    if let Some(d) = args.on_failure {
        spec["on_failure"] = serde_json::to_value(d)?;
    }
    let v = client
        .call(client.request(Method::PUT, &format!("/v1/functions/{}/async", args.function)).json(&spec))
        .await?;
    if global.json {
        print_json(&v);
    } else {
        print_triggers(&v);
    }
    Ok(ExitCode::SUCCESS)
}
