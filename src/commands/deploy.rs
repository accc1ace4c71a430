//! `yun deploy NAME FILE`: upload, validate and precompile a component, then make it the
//! function's new revision.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::json;
use yun_types::{InstanceMode, Limits};

use crate::Global;
use crate::client::{Client, print_json};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Function name (lowercase letters, digits, '-').
    name: String,
    /// The component (.wasm) built for the wasi:http/proxy world.
    file: PathBuf,
    /// Memory limit, e.g. 128Mi.
    #[arg(long, default_value = "128Mi", value_parser = parse_size)]
    memory: u64,
    /// Wall-clock limit per request, e.g. 30s.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Largest request body accepted, e.g. 6Mi.
    #[arg(long, default_value = "6Mi", value_parser = parse_size)]
    max_body: u64,
    /// Environment variable for the function (repeatable).
    #[arg(long = "env", value_name = "K=V", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// Host the function may call over HTTP (repeatable; `*.example.com`, `host:port`, `*`).
    #[arg(long = "allow-outbound", value_name = "HOST")]
    allow_outbound: Vec<String>,
    /// Require the admin token to invoke the function.
    #[arg(long)]
    private: bool,
    /// per-request: a fresh instance for every request; reuse: warm instances serve many.
    #[arg(long, default_value = "reuse")]
    instance: InstanceMode,
}

fn parse_size(s: &str) -> Result<u64, String> {
    yun_types::parse_size(s)
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| format!("{s:?} is not K=V"))
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    yun_types::FunctionName::new(args.name.clone())?;
    let wasm = std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    if wasm.is_empty() {
        bail!("{} is empty", args.file.display());
    }
    let client = Client::new(global)?;
    let artifact = client
        .call(
            client
                .request(Method::POST, "/v1/artifacts")
                .header("content-type", "application/wasm")
                .body(wasm),
        )
        .await?;
    let env: BTreeMap<String, String> = args.env.into_iter().collect();
    let spec = json!({
        "artifact": artifact["digest"],
        "limits": Limits {
            memory_bytes: args.memory,
            timeout_ms: args.timeout.as_millis() as u64,
            max_body_bytes: args.max_body,
        },
        "env": env,
        "allow_outbound": args.allow_outbound,
        "private": args.private,
        "instance": args.instance,
    });
    let revision = client
        .call(client.request(Method::POST, &format!("/v1/functions/{}/revisions", args.name)).json(&spec))
        .await?;
    if global.json {
        print_json(&revision);
    } else {
        println!("deployed {} revision {}", args.name, revision["revision"]);
        println!("  digest  {}", revision["digest"].as_str().unwrap_or("-"));
        println!("  url     {}", revision["url"].as_str().unwrap_or("-"));
    }
    Ok(ExitCode::SUCCESS)
}
