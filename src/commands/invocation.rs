//! `yun invocation ID`: one invocation of any trigger, with what its REPORT line says and every
//! log line it wrote (and, for an asynchronous one, its status and attempts).

use std::process::ExitCode;

use reqwest::Method;

use crate::Global;
use crate::client::{Client, format_ms, print_json};

#[derive(clap::Args, Debug)]
pub struct Args {
    id: String,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let client = Client::new(global)?;
    let v = client.call(client.request(Method::GET, &format!("/v1/invocations/{}", args.id))).await?;
    if global.json {
        print_json(&v);
        return Ok(ExitCode::SUCCESS);
    }
    println!("invocation {} of {}", args.id, v["function"].as_str().unwrap_or("-"));
    let a = &v["async"];
    if a.is_object() {
        println!(
            "async:     {} after {} attempt(s){}",
            a["status"].as_str().unwrap_or("-"),
            a["attempts"],
            a["last_error"].as_str().map(|e| format!(", last error: {e}")).unwrap_or_default()
        );
    }
    for r in v["reports"].as_array().into_iter().flatten() {
        println!(
            "report:    revision {}, start {}, {} ms (billed {} ms at {} MB), status {}{}{}",
            r["revision"],
            r["start"].as_str().unwrap_or("-"),
            r["duration_ms"],
            r["billed_duration_ms"],
            r["memory_mb"],
            r["status"],
            r["init_duration_ms"].as_f64().map(|i| format!(", init {i} ms")).unwrap_or_default(),
            r["trace"].as_str().map(|t| format!(", trace {t}")).unwrap_or_default()
        );
    }
    for l in v["logs"].as_array().into_iter().flatten() {
        println!(
            "{}  {:<8} {}",
            format_ms(l["ts_ms"].as_u64().unwrap_or(0)),
            l["stream"].as_str().unwrap_or("-"),
            l["line"].as_str().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}
