//! `yun topic create|ls|rm|subscribe|unsubscribe|publish`: fan-out: a message published to a
//! topic reaches every queue and function subscribed to it.

use std::process::ExitCode;

use anyhow::bail;
use reqwest::Method;
use serde_json::{Value, json};

use crate::Global;
use crate::client::{Client, print_json};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: TopicCommand,
}

#[derive(clap::Subcommand, Debug)]
enum TopicCommand {
    Create {
        name: String,
    },
    Ls,
    Rm {
        name: String,
    },
    /// Subscribe a queue (`queue:NAME`) or a function (`function:NAME`).
    Subscribe {
        name: String,
        target: String,
    },
    Unsubscribe {
        name: String,
        target: String,
    },
    /// Publish a message (the body as text).
    Publish {
        name: String,
        body: String,
    },
}

fn subscription(target: &str) -> anyhow::Result<Value> {
    match target.split_once(':') {
        Some(("queue", q)) => Ok(json!({ "queue": q })),
        Some(("function", f)) => Ok(json!({ "function": f })),
        _ => bail!("{target:?} is not a subscriber: use queue:NAME or function:NAME"),
    }
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let client = Client::new(global)?;
    let (v, text) = match args.command {
        TopicCommand::Create { name } => (
            client.call(client.request(Method::PUT, &format!("/v1/topics/{name}"))).await?,
            format!("topic {name} ready"),
        ),
        TopicCommand::Ls => {
            let v = client.call(client.request(Method::GET, "/v1/topics")).await?;
            let lines: Vec<String> = v["topics"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| format!("{}\t{}", t["name"].as_str().unwrap_or("-"), t["subscriptions"]))
                .collect();
            (v, if lines.is_empty() { "no topics".to_string() } else { lines.join("\n") })
        }
        TopicCommand::Rm { name } => (
            client.call(client.request(Method::DELETE, &format!("/v1/topics/{name}"))).await?,
            format!("topic {name} removed"),
        ),
        TopicCommand::Subscribe { name, target } => {
            let sub = subscription(&target)?;
            let v = client
                .call(client.request(Method::POST, &format!("/v1/topics/{name}/subscriptions")).json(&sub))
                .await?;
            (v, format!("{target} subscribed to {name}"))
        }
        TopicCommand::Unsubscribe { name, target } => {
            let sub = subscription(&target)?;
            let v = client
                .call(client.request(Method::DELETE, &format!("/v1/topics/{name}/subscriptions")).json(&sub))
                .await?;
            (v, format!("{target} unsubscribed from {name}"))
        }
        TopicCommand::Publish { name, body } => {
            let v = client
                .call(
                    client
                        .request(Method::POST, &format!("/v1/topics/{name}/publish"))
                        .json(&json!({ "body": body })),
                )
                .await?;
            let text = format!("{} ({} deliveries)", v["id"].as_str().unwrap_or("-"), v["deliveries"]);
            (v, text)
        }
    };
    if global.json {
        print_json(&v);
    } else {
        println!("{text}");
    }
    Ok(ExitCode::SUCCESS)
}
