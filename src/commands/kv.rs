//! `yun kv ls|mk|rm-store|get|set|del|keys|incr`: yun's key-value stores through the management
//! API. The same stores answer on the Redis endpoint (`redis-cli -p 6380 --user STORE --pass TOKEN`).

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::bail;
use reqwest::Method;
use serde_json::{Value, json};

use crate::Global;
use crate::client::{Client, check, format_ms, print_json};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: KvCommand,
}

#[derive(clap::Subcommand, Debug)]
enum KvCommand {
    /// The stores, with their keys and bytes.
    Ls,
    /// Make a store (a store is also made by its first write).
    Mk {
        store: String,
        /// Record every write in the store's change stream (for change triggers).
        #[arg(long)]
        changes: bool,
    },
    /// Remove a store and every key in it.
    RmStore { store: String },
    /// Print a key's value.
    Get {
        store: String,
        key: String,
        #[arg(long, default_value_t = 0)]
        db: u8,
    },
    /// Set a key: the value as an argument, or `-` for stdin.
    Set {
        store: String,
        key: String,
        value: String,
        /// Expire after this long (30s, 10m, 1h).
        #[arg(long)]
        ttl: Option<String>,
        /// Only if the key does not exist yet.
        #[arg(long, conflicts_with = "if_exists")]
        if_absent: bool,
        /// Only if the key exists.
        #[arg(long)]
        if_exists: bool,
        #[arg(long, default_value_t = 0)]
        db: u8,
    },
    /// Delete a key.
    Del {
        store: String,
        key: String,
        #[arg(long, default_value_t = 0)]
        db: u8,
    },
    /// List keys by prefix.
    Keys {
        store: String,
        #[arg(default_value = "")]
        prefix: String,
        /// At most this many keys.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        #[arg(long, default_value_t = 0)]
        db: u8,
    },
    /// Add to an integer key atomically and print the new value.
    Incr {
        store: String,
        key: String,
        #[arg(long, default_value_t = 1, allow_hyphen_values = true)]
        by: i64,
        #[arg(long, default_value_t = 0)]
        db: u8,
    },
}

fn query(pairs: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    q.finish()
}

/// A key or value as the API shows it: text, or base64 for other bytes.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(m) => format!("base64:{}", m.get("base64").and_then(Value::as_str).unwrap_or("")),
        _ => "-".into(),
    }
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let client = Client::new(global)?;
    let v: Value = match args.command {
        KvCommand::Ls => {
            let v = client.call(client.request(Method::GET, "/v1/kv")).await?;
            if !global.json {
                for s in v["stores"].as_array().into_iter().flatten() {
                    println!(
                        "{}  {:<32} {:>10} keys {:>14} bytes{}",
                        format_ms(s["created_ms"].as_u64().unwrap_or(0)),
                        s["name"].as_str().unwrap_or("-"),
                        s["keys"],
                        s["bytes"],
                        if s["changes"] == true { "  (change stream)" } else { "" }
                    );
                }
            }
            v
        }
        KvCommand::Mk { store, changes } => {
            let v = client
                .call(
                    client
                        .request(Method::PUT, &format!("/v1/kv/{store}"))
                        .json(&json!({ "changes": changes })),
                )
                .await?;
            if !global.json {
                println!("made store {store}");
            }
            v
        }
        KvCommand::RmStore { store } => {
            let v = client.call(client.request(Method::DELETE, &format!("/v1/kv/{store}"))).await?;
            if !global.json {
                println!("removed store {store}");
            }
            v
        }
        KvCommand::Get { store, key, db } => {
            let q = query(&[("key", &key), ("db", &db.to_string())]);
            let response =
                client.send(client.request(Method::GET, &format!("/v1/kv/{store}/key?{q}"))).await?;
            let response = check(response).await?;
            let ttl = response.headers().get("x-yun-ttl-ms").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let bytes = response.bytes().await?;
            if global.json {
                print_json(&json!({ "key": key, "value": String::from_utf8_lossy(&bytes), "ttl_ms": ttl }));
            } else {
                let mut out = std::io::stdout().lock();
                out.write_all(&bytes)?;
                if !bytes.ends_with(b"\n") && std::io::IsTerminal::is_terminal(&out) {
                    writeln!(out)?;
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        KvCommand::Set { store, key, value, ttl, if_absent, if_exists, db } => {
            let body = if value == "-" {
                let mut buf = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)?;
                buf
            } else {
                value.into_bytes()
            };
            let db = db.to_string();
            let mut pairs = vec![("key", key.as_str()), ("db", db.as_str())];
            if let Some(t) = &ttl {
                pairs.push(("ttl", t));
            }
            if if_absent {
                pairs.push(("if", "absent"));
            } else if if_exists {
                pairs.push(("if", "present"));
            }
            let path = format!("/v1/kv/{store}/key?{}", query(&pairs));
            let v = client.call(client.request(Method::PUT, &path).body(body)).await?;
            if !global.json {
                println!("set {key}");
            }
            v
        }
        KvCommand::Del { store, key, db } => {
            let q = query(&[("key", &key), ("db", &db.to_string())]);
            let v = client.call(client.request(Method::DELETE, &format!("/v1/kv/{store}/key?{q}"))).await?;
            if !global.json {
                println!("{}", if v["deleted"] == true { "deleted" } else { "no such key" });
            }
            v
        }
        KvCommand::Keys { store, prefix, limit, db } => {
            if limit == 0 {
                bail!("--limit must be at least 1");
            }
            let mut keys = Vec::new();
            let mut after: Option<String> = None;
            let db = db.to_string();
            while keys.len() < limit {
                let page = (limit - keys.len()).min(1000).to_string();
                let mut pairs =
                    vec![("prefix", prefix.as_str()), ("limit", page.as_str()), ("db", db.as_str())];
                if let Some(a) = &after {
                    pairs.push(("after", a));
                }
                let v = client
                    .call(client.request(Method::GET, &format!("/v1/kv/{store}/keys?{}", query(&pairs))))
                    .await?;
                keys.extend(v["keys"].as_array().cloned().unwrap_or_default());
                match v["next"].as_str() {
                    Some(n) => after = Some(n.to_owned()),
                    // A binary cursor cannot go back into a query string as text: stop there.
                    None => break,
                }
            }
            if !global.json {
                for k in &keys {
                    println!("{}", text(k));
                }
            }
            json!({ "keys": keys })
        }
        KvCommand::Incr { store, key, by, db } => {
            let q = query(&[("key", &key), ("by", &by.to_string()), ("db", &db.to_string())]);
            let v = client.call(client.request(Method::POST, &format!("/v1/kv/{store}/incr?{q}"))).await?;
            if !global.json {
                println!("{}", v["value"]);
            }
            v
        }
    };
    if global.json {
        print_json(&v);
    }
    Ok(ExitCode::SUCCESS)
}
