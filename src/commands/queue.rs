//! `yun queue create|ls|describe|rm|send|receive|delete|purge|redrive`: durable queues, a
//! backend service for functions and their clients (at-least-once delivery under a visibility
//! timeout, dead-letter queues, FIFO groups).

use std::process::ExitCode;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::Global;
use crate::client::{Client, print_json};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: QueueCommand,
}

#[derive(clap::Subcommand, Debug)]
enum QueueCommand {
    /// Create a queue (the same settings again is a no-op).
    Create {
        name: String,
        /// How long a received message stays hidden before it is delivered again.
        #[arg(long, value_parser = humantime::parse_duration)]
        visibility: Option<Duration>,
        /// Receives after which a message goes to the dead-letter queue.
        #[arg(long)]
        max_receives: Option<u32>,
        /// The dead-letter queue (it must exist).
        #[arg(long)]
        dlq: Option<String>,
        /// Order per message group, deduplicate by id.
        #[arg(long)]
        fifo: bool,
        /// Delay before every new message is visible.
        #[arg(long, value_parser = humantime::parse_duration)]
        delay: Option<Duration>,
        /// How long an unhandled message is kept.
        #[arg(long, value_parser = humantime::parse_duration)]
        retention: Option<Duration>,
    },
    /// List queues with their message counts.
    Ls,
    /// Show a queue's settings and counts.
    Describe { name: String },
    /// Remove a queue and its messages.
    Rm { name: String },
    /// Send a message (the body as text).
    Send {
        name: String,
        body: String,
        #[arg(long, value_parser = humantime::parse_duration)]
        delay: Option<Duration>,
        /// FIFO queues: the message group.
        #[arg(long)]
        group: Option<String>,
        /// FIFO queues: a second send with this id within 5 minutes is dropped.
        #[arg(long)]
        dedup_id: Option<String>,
    },
    /// Receive messages (they stay hidden for the visibility timeout until deleted).
    Receive {
        name: String,
        #[arg(long, default_value_t = 1)]
        max: usize,
        /// Wait up to this long for a message (long poll, at most 20s).
        #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
        wait: Duration,
        #[arg(long, value_parser = humantime::parse_duration)]
        visibility: Option<Duration>,
        /// Delete what was received at once (acknowledge).
        #[arg(long)]
        delete: bool,
    },
    /// Delete (acknowledge) messages by receipt.
    Delete { name: String, receipts: Vec<String> },
    /// Drop every message of a queue.
    Purge { name: String },
    /// Move every message of a dead-letter queue back to a queue.
    Redrive { dlq: String, to: String },
}

fn ms(d: Option<Duration>) -> Option<u64> {
    d.map(|d| d.as_millis() as u64)
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let client = Client::new(global)?;
    let v: Value = match args.command {
        QueueCommand::Create { name, visibility, max_receives, dlq, fifo, delay, retention } => {
            let mut config = serde_json::Map::new();
            let mut put = |k: &str, v: Option<Value>| {
                if let Some(v) = v {
                    config.insert(k.to_string(), v);
                }
            };
            put("visibility_ms", ms(visibility).map(Value::from));
            put("max_receives", max_receives.map(Value::from));
            put("dlq", dlq.map(Value::from));
            put("fifo", fifo.then_some(Value::Bool(true)));
            put("delay_ms", ms(delay).map(Value::from));
            put("retention_ms", ms(retention).map(Value::from));
            let v =
                client.call(client.request(Method::PUT, &format!("/v1/queues/{name}")).json(&config)).await?;
            if !global.json {
                println!("queue {name} ready");
            }
            v
        }
        QueueCommand::Ls => {
            let v = client.call(client.request(Method::GET, "/v1/queues")).await?;
            if !global.json {
                let queues = v["queues"].as_array().cloned().unwrap_or_default();
                if queues.is_empty() {
                    println!("no queues: create one with `yun queue create NAME`");
                }
                for q in queues {
                    let s = &q["stats"];
                    println!(
                        "{:<32} {:>8} visible {:>8} in flight {:>8} delayed{}",
                        q["name"].as_str().unwrap_or("-"),
                        s["visible"],
                        s["in_flight"],
                        s["delayed"],
                        if q["config"]["fifo"] == true { "  fifo" } else { "" }
                    );
                }
            }
            v
        }
        QueueCommand::Describe { name } => {
            let v = client.call(client.request(Method::GET, &format!("/v1/queues/{name}"))).await?;
            if !global.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            }
            v
        }
        QueueCommand::Rm { name } => {
            let v = client.call(client.request(Method::DELETE, &format!("/v1/queues/{name}"))).await?;
            if !global.json {
                println!("queue {name} removed");
            }
            v
        }
        QueueCommand::Send { name, body, delay, group, dedup_id } => {
            let msg = json!({ "body": body, "delay_ms": ms(delay), "group": group, "dedup_id": dedup_id });
            let v = client
                .call(client.request(Method::POST, &format!("/v1/queues/{name}/messages")).json(&msg))
                .await?;
            if !global.json {
                println!("{}", v["ids"][0].as_str().unwrap_or("-"));
            }
            v
        }
        QueueCommand::Receive { name, max, wait, visibility, delete } => {
            let req =
                json!({ "max": max, "wait_ms": wait.as_millis() as u64, "visibility_ms": ms(visibility) });
            let v = client
                .call(client.request(Method::POST, &format!("/v1/queues/{name}/receive")).json(&req))
                .await?;
            let messages = v["messages"].as_array().cloned().unwrap_or_default();
            if delete && !messages.is_empty() {
                let receipts: Vec<&Value> = messages.iter().map(|m| &m["receipt"]).collect();
                client
                    .call(
                        client
                            .request(Method::POST, &format!("/v1/queues/{name}/delete"))
                            .json(&json!({ "receipts": receipts })),
                    )
                    .await?;
            }
            if !global.json {
                for m in &messages {
                    println!(
                        "{}\t{}\t{}",
                        m["id"].as_str().unwrap_or("-"),
                        m["receipt"].as_str().unwrap_or("-"),
                        m["body"].as_str().unwrap_or("")
                    );
                }
            }
            v
        }
        QueueCommand::Delete { name, receipts } => {
            let v = client
                .call(
                    client
                        .request(Method::POST, &format!("/v1/queues/{name}/delete"))
                        .json(&json!({ "receipts": receipts })),
                )
                .await?;
            if !global.json {
                println!("deleted {}", v["deleted"]);
            }
            v
        }
        QueueCommand::Purge { name } => {
            let v = client.call(client.request(Method::POST, &format!("/v1/queues/{name}/purge"))).await?;
            if !global.json {
                println!("purged {}", v["purged"]);
            }
            v
        }
        QueueCommand::Redrive { dlq, to } => {
            let v = client
                .call(
                    client
                        .request(Method::POST, &format!("/v1/queues/{dlq}/redrive"))
                        .json(&json!({ "to": to })),
                )
                .await?;
            if !global.json {
                println!("moved {} messages from {dlq} to {to}", v["moved"]);
            }
            v
        }
    };
    if global.json {
        print_json(&v);
    }
    Ok(ExitCode::SUCCESS)
}
