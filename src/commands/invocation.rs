//! `yun invocation ID`: one invocation of any trigger: the record of each run (durations,
//! billed time, memory, bytes, trace), every log line it wrote, and for an asynchronous one its
//! status and attempts.

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
    for r in v["runs"].as_array().into_iter().flatten() {
        let f = |k: &str| r[k].as_f64().map_or("-".to_string(), |x| format!("{x:.2}"));
        println!(
            "run:       attempt {} by {} at {}: revision {}, {} start, {} ms (billed {} ms at {} MB{}){}, status {}{}",
            r["attempt"],
            r["trigger"].as_str().unwrap_or("-"),
            format_ms(r["start_ms"].as_u64().unwrap_or(0)),
            r["revision"],
            r["start"].as_str().unwrap_or("-"),
            f("duration_ms"),
            r["billed_ms"],
            r["memory_limit_bytes"].as_u64().unwrap_or(0) >> 20,
            r["max_memory_bytes"]
                .as_u64()
                .map(|m| format!(", max used {} MB", m.div_ceil(1 << 20)))
                .unwrap_or_default(),
            r["init_ms"].as_f64().map(|i| format!(", init {i:.2} ms")).unwrap_or_default(),
            r["status"],
            r["error"].as_str().map(|e| format!(" ({e})")).unwrap_or_default(),
        );
        println!(
            "           {} bytes in, {} bytes out{}",
            r["bytes_in"],
            r["bytes_out"],
            r["trace_id"].as_str().map(|t| format!(", trace {t}")).unwrap_or_default()
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
