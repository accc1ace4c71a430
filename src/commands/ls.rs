//! `yun ls`: every function with its serving revision and URL.

use std::process::ExitCode;

use reqwest::Method;

use crate::Global;
use crate::client::{Client, print_json, short_digest};

pub async fn run(global: &Global) -> anyhow::Result<ExitCode> {
    let client = Client::new(global)?;
    let v = client.call(client.request(Method::GET, "/v1/functions")).await?;
    if global.json {
        print_json(&v);
        return Ok(ExitCode::SUCCESS);
    }
    let functions = v["functions"].as_array().cloned().unwrap_or_default();
    if functions.is_empty() {
        println!("no functions yet: deploy one with `yun deploy NAME FILE.wasm`");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<24} {:>8}  {:<12}  URL", "NAME", "REVISION", "DIGEST");
    for f in functions {
        println!(
            "{:<24} {:>8}  {:<12}  {}",
            f["name"].as_str().unwrap_or("-"),
            f["active_revision"].to_string(),
            short_digest(&f["digest"]),
            f["url"].as_str().unwrap_or("-")
        );
    }
    Ok(ExitCode::SUCCESS)
}
