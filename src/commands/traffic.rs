//! `yun traffic NAME [REV=PERCENT...] [--sticky header:X|cookie:X] [--rollout 10m]`: divide a
//! function's traffic among its revisions, keep clients on one, or move traffic gradually.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use reqwest::Method;
use serde_json::{Value, json};

use crate::Global;
use crate::client::{Client, print_json};

#[derive(clap::Args, Debug)]
pub struct Args {
    name: String,
    /// The split, e.g. `3=90 4=10` (percentages summing to 100).
    #[arg(value_name = "REV=PERCENT")]
    split: Vec<String>,
    /// Keep each client on one revision by this request header or cookie: `header:x-user-id`
    /// or `cookie:session`.
    #[arg(long, conflicts_with = "no_sticky")]
    sticky: Option<String>,
    /// Turn stickiness off.
    #[arg(long)]
    no_sticky: bool,
    #[command(flatten)]
    rollout: RolloutArgs,
}

/// Gradual rollout settings, shared with `yun deploy`.
#[derive(clap::Args, Debug, Clone)]
pub struct RolloutArgs {
    /// Move traffic to the new revision step by step over this long (e.g. 10m), rolling back
    /// automatically if it fails.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub rollout: Option<Duration>,
    /// Roll back when more than this share of the new revision's invocations fail (e.g. 5%).
    #[arg(long, value_parser = parse_rate, requires = "rollout")]
    pub max_error_rate: Option<f64>,
    /// Roll back when the new revision's p99 latency exceeds this (e.g. 500ms).
    #[arg(long, value_parser = humantime::parse_duration, requires = "rollout")]
    pub max_p99: Option<Duration>,
    /// Steps the rollout takes (default 10).
    #[arg(long, requires = "rollout")]
    pub steps: Option<u32>,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let (n, scale) = match s.strip_suffix('%') {
        Some(n) => (n, 100.0),
        None => (s, 1.0),
    };
    n.trim().parse::<f64>().map(|v| v / scale).map_err(|_| format!("{s:?} is not a rate like 5% or 0.05"))
}

impl RolloutArgs {
    pub fn spec(&self) -> Option<Value> {
        let d = self.rollout?;
        let mut spec = json!({ "duration_ms": d.as_millis() as u64 });
        if let Some(r) = self.max_error_rate {
            spec["max_error_rate"] = json!(r);
        }
        if let Some(p) = self.max_p99 {
            spec["max_p99_ms"] = json!(p.as_millis() as u64);
        }
        if let Some(s) = self.steps {
            spec["steps"] = json!(s);
        }
        Some(spec)
    }

    /// The same, as the deploy API's query string.
    pub fn query(&self) -> String {
        let Some(spec) = self.spec() else { return String::new() };
        let mut q = vec![format!("rollout_ms={}", spec["duration_ms"])];
        for (k, v) in [("max_error_rate", "max_error_rate"), ("max_p99_ms", "max_p99_ms"), ("steps", "steps")]
        {
            if !spec[k].is_null() {
                q.push(format!("{v}={}", spec[k]));
            }
        }
        format!("?{}", q.join("&"))
    }
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let mut body = json!({});
    if !args.split.is_empty() {
        let mut targets = Vec::new();
        for item in &args.split {
            let Some((rev, pct)) = item.split_once('=') else { bail!("{item:?} is not REV=PERCENT") };
            let revision: u64 =
                rev.trim().parse().map_err(|_| anyhow::anyhow!("{rev:?} is not a revision number"))?;
            let percent: u8 = pct
                .trim()
                .trim_end_matches('%')
                .parse()
                .map_err(|_| anyhow::anyhow!("{pct:?} is not a percentage"))?;
            targets.push(json!({ "revision": revision, "percent": percent }));
        }
        body["split"] = json!(targets);
    }
    if let Some(s) = &args.sticky {
        body["sticky"] = json!(s);
    }
    if args.no_sticky {
        body["sticky"] = json!("");
    }
    if let Some(spec) = args.rollout.spec() {
        body["rollout"] = spec;
    }
    if body.as_object().is_some_and(|o| o.is_empty()) {
        // Nothing to change: show what is in force.
        let client = Client::new(global)?;
        let v = client.call(client.request(Method::GET, &format!("/v1/functions/{}", args.name))).await?;
        print_traffic(global, &v);
        return Ok(ExitCode::SUCCESS);
    }
    let client = Client::new(global)?;
    let v = client
        .call(client.request(Method::PUT, &format!("/v1/functions/{}/traffic", args.name)).json(&body))
        .await?;
    print_traffic(global, &v);
    Ok(ExitCode::SUCCESS)
}

/// The traffic in force, as `describe`, `traffic` and `rollback` show it.
pub fn print_traffic(global: &Global, v: &Value) {
    if global.json {
        print_json(v);
        return;
    }
    let split: Vec<String> = v["traffic"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| format!("revision {} {}%", t["revision"], t["percent"]))
        .collect();
    println!("traffic:   {}", split.join(", "));
    if let Some(s) = v["sticky"].as_str() {
        println!("sticky:    {s}");
    }
    if let Some(tags) = v["tags"].as_object().filter(|t| !t.is_empty()) {
        for (tag, t) in tags {
            println!("tag:       {tag} -> revision {} ({})", t["revision"], t["url"].as_str().unwrap_or("-"));
        }
    }
    print_rollout(&v["rollout"]);
}

pub fn print_rollout(r: &Value) {
    if !r.is_object() {
        return;
    }
    let d = |ms: &Value| humantime::format_duration(Duration::from_millis(ms.as_u64().unwrap_or(0)));
    let o = &r["observed"];
    let state = r["state"].as_str().unwrap_or("-");
    println!(
        "rollout:   {state}: revision {} -> {}, {}% over {} ({} steps); seen {} requests, {} errors{}",
        r["from"],
        r["to"],
        r["percent"],
        d(&r["duration_ms"]),
        r["steps"],
        o["requests"],
        o["errors"],
        o["p99_ms"].as_f64().map(|p| format!(", p99 {p:.1} ms")).unwrap_or_default(),
    );
    if let Some(reason) = r["reason"].as_str() {
        println!("           {reason}");
    }
}
