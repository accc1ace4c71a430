//! `yun revisions NAME`: every revision with when it was made, its code and configuration, and
//! the traffic and tags it has.

use std::process::ExitCode;

use reqwest::Method;
use serde_json::Value;

use crate::Global;
use crate::client::{Client, format_ms, print_json, short_digest};

#[derive(clap::Args, Debug)]
pub struct Args {
    name: String,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let client = Client::new(global)?;
    let v =
        client.call(client.request(Method::GET, &format!("/v1/functions/{}/revisions", args.name))).await?;
    if global.json {
        print_json(&v);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>8}  {:<20}  {:<12}  {:>7}  {:<10}  CONFIGURATION",
        "REVISION", "CREATED", "DIGEST", "TRAFFIC", "TAGS"
    );
    for r in v["revisions"].as_array().into_iter().flatten() {
        let tags: Vec<&str> = r["tags"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        println!(
            "{:>8}  {:<20}  {:<12}  {:>6}%  {:<10}  {}",
            r["revision"],
            format_ms(r["created_at_ms"].as_u64().unwrap_or(0)),
            short_digest(&r["digest"]),
            r["traffic_percent"].as_u64().unwrap_or(0),
            if tags.is_empty() { "-".to_string() } else { tags.join(",") },
            configuration(r)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn configuration(r: &Value) -> String {
    let l = &r["limits"];
    let mut parts = vec![match r["process"].as_object() {
        Some(p) => format!("process {}", p.get("mode").and_then(Value::as_str).unwrap_or("-")),
        None => format!("wasm {}", r["instance"].as_str().unwrap_or("-")),
    }];
    parts.push(format!("{}Mi", l["memory_bytes"].as_u64().unwrap_or(0) >> 20));
    parts.push(format!("{}ms", l["timeout_ms"]));
    let list = |k: &str| -> Vec<String> {
        r[k].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect()
    };
    let env = list("env");
    if !env.is_empty() {
        parts.push(format!("env {}", env.join(",")));
    }
    if let Some(s) = r["secrets"].as_object().filter(|s| !s.is_empty()) {
        parts.push(format!("secrets {}", s.keys().cloned().collect::<Vec<_>>().join(",")));
    }
    if r["private"].as_bool() == Some(true) {
        parts.push("private".into());
    }
    parts.join(" ")
}
