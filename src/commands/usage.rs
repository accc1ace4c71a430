//! `yun usage [--since 30d] [--by function|day] [--prices FILE]`: what each function used,
//! metered per invocation (requests, billed milliseconds, GB-seconds, bytes out), with what it
//! would cost at a price table, by default AWS Lambda's public on-demand x86 prices, for
//! comparison.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Global;
use crate::client::{Client, print_json};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// How far back, e.g. 7d.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30d")]
    since: Duration,
    /// Rows per function (summed over the days) or per function and day.
    #[arg(long, default_value = "function", value_parser = ["function", "day"])]
    by: String,
    /// A JSON price table: {"per_million_requests": 0.2, "per_gb_second": 0.0000166667,
    /// "per_gb_egress": 0.09, "per_gb_month_stored": 0.023}.
    #[arg(long)]
    prices: Option<PathBuf>,
}

/// Prices in USD. The defaults are AWS Lambda's (x86, us-east-1, first tier), AWS's internet
/// egress and S3 Standard storage, as published; yun costs nothing, this is what the same use would cost there.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Prices {
    #[serde(default = "per_million")]
    per_million_requests: f64,
    #[serde(default = "per_gb_second")]
    per_gb_second: f64,
    #[serde(default = "per_gb_egress")]
    per_gb_egress: f64,
    /// S3 Standard storage.
    #[serde(default = "per_gb_month_stored")]
    per_gb_month_stored: f64,
}

fn per_million() -> f64 {
    0.20
}
fn per_gb_second() -> f64 {
    0.000_016_666_7
}
fn per_gb_egress() -> f64 {
    0.09
}
fn per_gb_month_stored() -> f64 {
    0.023
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let prices: Prices = match &args.prices {
        Some(p) => {
            serde_json::from_slice(&std::fs::read(p).with_context(|| format!("reading {}", p.display()))?)
                .with_context(|| format!("{} is not a price table", p.display()))?
        }
        None => Prices {
            per_million_requests: per_million(),
            per_gb_second: per_gb_second(),
            per_gb_egress: per_gb_egress(),
            per_gb_month_stored: per_gb_month_stored(),
        },
    };
    let days = args.since.as_secs().div_ceil(86_400).max(1);
    let client = Client::new(global)?;
    let v = client.call(client.request(Method::GET, &format!("/v1/usage?since_days={days}"))).await?;
    let mut rows: BTreeMap<(String, String), [f64; 6]> = BTreeMap::new();
    for r in v["usage"].as_array().into_iter().flatten() {
        let day = if args.by == "day" { r["day"].as_str().unwrap_or("-").to_string() } else { String::new() };
        let key = (r["function"].as_str().unwrap_or("-").to_string(), day);
        let e = rows.entry(key).or_default();
        for (i, k) in
            ["requests", "errors", "billed_ms", "gb_seconds", "egress_bytes", "cpu_ms"].iter().enumerate()
        {
            e[i] += r[*k].as_f64().unwrap_or(0.0);
        }
    }
    let cost = |r: &[f64; 6]| {
        r[0] / 1e6 * prices.per_million_requests
            + r[3] * prices.per_gb_second
            + r[4] / 1e9 * prices.per_gb_egress
    };
    // Stored data (object storage, key-value, SQL), per store: GB-months at the storage price.
    let mut stored: BTreeMap<(String, String), f64> = BTreeMap::new();
    for r in v["stored"].as_array().into_iter().flatten() {
        let day = if args.by == "day" { r["day"].as_str().unwrap_or("-").to_string() } else { String::new() };
        *stored.entry((r["store"].as_str().unwrap_or("-").to_string(), day)).or_default() +=
            r["gb_months"].as_f64().unwrap_or(0.0);
    }
    if global.json {
        let stored: Vec<Value> = stored
            .iter()
            .map(|((s, d), gb_months)| {
                json!({ "store": s, "day": d, "gb_months": gb_months, "cost_usd": gb_months * prices.per_gb_month_stored })
            })
            .collect();
        let out: Vec<Value> = rows
            .iter()
            .map(|((f, d), r)| {
                json!({ "function": f, "day": d, "requests": r[0], "errors": r[1], "billed_ms": r[2], "gb_seconds": r[3], "egress_bytes": r[4], "cpu_ms": r[5], "cost_usd": cost(r) })
            })
            .collect();
        print_json(&json!({ "usage": out, "stored": stored }));
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<24} {:<10} {:>10} {:>8} {:>12} {:>14} {:>12} {:>10} {:>12}",
        "FUNCTION", "DAY", "REQUESTS", "ERRORS", "BILLED S", "GB-SECONDS", "EGRESS MB", "CPU S", "COST USD"
    );
    let mut total = [0.0; 6];
    for ((f, d), r) in &rows {
        println!(
            "{:<24} {:<10} {:>10} {:>8} {:>12.3} {:>14.6} {:>12.3} {:>10.3} {:>12.6}",
            f,
            if d.is_empty() { "-" } else { d },
            r[0],
            r[1],
            r[2] / 1000.0,
            r[3],
            r[4] / 1e6,
            r[5] / 1000.0,
            cost(r)
        );
        for i in 0..6 {
            total[i] += r[i];
        }
    }
    let mut stored_cost = 0.0;
    if !stored.is_empty() {
        println!();
        println!("{:<35} {:<10} {:>14} {:>12}", "STORED", "DAY", "GB-MONTHS", "COST USD");
        for ((s, d), gb_months) in &stored {
            let c = gb_months * prices.per_gb_month_stored;
            stored_cost += c;
            println!("{:<35} {:<10} {:>14.9} {:>12.6}", s, if d.is_empty() { "-" } else { d }, gb_months, c);
        }
    }
    println!(
        "total: {} requests, {:.6} GB-s, {:.6} USD at the price table",
        total[0],
        total[3],
        cost(&total) + stored_cost
    );
    Ok(ExitCode::SUCCESS)
}
