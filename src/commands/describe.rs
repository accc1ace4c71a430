//! `yun describe NAME`: revisions, digests, limits and the URL of one function.

use std::process::ExitCode;

use reqwest::Method;
use serde_json::Value;

use crate::Global;
use crate::client::{Client, format_ms, print_json};

#[derive(clap::Args, Debug)]
pub struct Args {
    name: String,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let client = Client::new(global)?;
    let v = client.call(client.request(Method::GET, &format!("/v1/functions/{}", args.name))).await?;
    if global.json {
        print_json(&v);
        return Ok(ExitCode::SUCCESS);
    }
    println!("name:      {}", v["name"].as_str().unwrap_or("-"));
    println!("url:       {}", v["url"].as_str().unwrap_or("-"));
    println!("serving:   revision {}", v["active_revision"]);
    println!("created:   {}", format_ms(v["created_at_ms"].as_u64().unwrap_or(0)));
    super::traffic::print_traffic(global, &v);
    super::trigger::print_triggers(&v);
    print_scale(&v["scale"]);
    println!("revisions:");
    for r in v["revisions"].as_array().into_iter().flatten() {
        let l = &r["limits"];
        let marker = if r["revision"] == v["active_revision"] { "*" } else { " " };
        println!(
            " {marker}{:>4}  {}  {}",
            r["revision"],
            format_ms(r["created_at_ms"].as_u64().unwrap_or(0)),
            r["digest"].as_str().unwrap_or("-")
        );
        let runtime = match r["process"].as_object() {
            Some(p) => format!(
                "process ({} mode: {})",
                p.get("mode").and_then(Value::as_str).unwrap_or("-"),
                p.get("command").and_then(Value::as_str).unwrap_or("-")
            ),
            None => format!("wasm, instance {}", r["instance"].as_str().unwrap_or("-")),
        };
        println!(
            "        {runtime}, memory {} MiB, timeout {} ms, body {} bytes, {}",
            l["memory_bytes"].as_u64().unwrap_or(0) >> 20,
            l["timeout_ms"],
            l["max_body_bytes"],
            if r["private"].as_bool() == Some(true) { "private" } else { "public" }
        );
        let env: Vec<&str> = r["env"].as_array().into_iter().flatten().filter_map(|e| e.as_str()).collect();
        if !env.is_empty() {
            println!("        env {}", env.join(", "));
        }
        let out: Vec<&str> =
            r["allow_outbound"].as_array().into_iter().flatten().filter_map(|e| e.as_str()).collect();
        if !out.is_empty() {
            println!("        outbound {}", out.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The scaling settings in force and the instances right now.
pub(crate) fn print_scale(scale: &Value) {
    let s = &scale["settings"];
    if s.is_object() {
        println!(
            "scale:     min {}, max {}, concurrency {}, keep-alive {} {}, queue {} (timeout {}), window {}",
            s["min_instances"],
            s["max_instances"],
            s["concurrency"],
            s["keep_alive"].as_str().unwrap_or("-"),
            humantime::format_duration(std::time::Duration::from_millis(s["idle_ms"].as_u64().unwrap_or(0))),
            s["max_queue"],
            humantime::format_duration(std::time::Duration::from_millis(
                s["queue_timeout_ms"].as_u64().unwrap_or(0)
            )),
            humantime::format_duration(std::time::Duration::from_millis(
                s["window_ms"].as_u64().unwrap_or(0)
            )),
        );
        if let Some(f) = s["freeze_ms"].as_u64().filter(|f| *f > 0) {
            println!(
                "freeze:    scaled-in instances stay frozen for {}",
                humantime::format_duration(std::time::Duration::from_millis(f))
            );
        }
    }
    let i = &scale["instances"];
    if i.is_object() {
        println!(
            "instances: {} current, {} ready, {} starting, {} desired, {} frozen; {} in flight, {} queued",
            i["current"], i["ready"], i["starting"], i["desired"], i["frozen"], i["in_flight"], i["queued"]
        );
    }
    let a = &scale["autoscaler"];
    if a.is_object() {
        let learned = a["keep_alive_learned"].as_bool() == Some(true);
        println!(
            "autoscaler: concurrency {:.2} (stable) {:.2} (panic){}; keep-alive {}{}",
            a["stable_concurrency"].as_f64().unwrap_or(0.0),
            a["panic_concurrency"].as_f64().unwrap_or(0.0),
            if a["panicking"].as_bool() == Some(true) { ", panicking" } else { "" },
            humantime::format_duration(std::time::Duration::from_millis(
                a["keep_alive_ms"].as_u64().unwrap_or(0)
            )),
            match a["prewarm_after_ms"].as_u64() {
                Some(p) if p > 0 && learned => format!(
                    " after a pre-warm at {} (learned)",
                    humantime::format_duration(std::time::Duration::from_millis(p))
                ),
                _ if learned => " (learned)".to_string(),
                _ => String::new(),
            }
        );
    }
}
