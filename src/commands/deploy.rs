//! `yun deploy NAME PATH`: upload a component (validated and precompiled) or, with
//! `--runtime process`, a directory or archive of code (unpacked read-only), then make it the
//! function's new revision, taking all traffic at once or, with `--rollout`, step by step.
//! `yun deploy` without arguments builds and applies the app in the current directory's
//! yun.toml.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::json;
use yun_types::{InstanceMode, Limits, ProcessMode};

use crate::Global;
use crate::client::{Client, print_json};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Function name (lowercase letters, digits, '-'). Without it, the app in yun.toml is
    /// built and applied.
    #[arg(requires = "file")]
    name: Option<String>,
    /// The component (.wasm) built for the wasi:http/proxy world; with `--runtime process`, a
    /// directory or a .tar.gz/.zip of the function's code.
    file: Option<PathBuf>,
    /// The app manifest deployed when no NAME is given.
    #[arg(short = 'f', long, default_value = "yun.toml", conflicts_with = "name")]
    manifest: PathBuf,
    /// wasm: a wasi:http component; process: a program run as a sandboxed OS process.
    #[arg(long, default_value = "wasm", value_parser = ["wasm", "process"])]
    runtime: String,
    /// Process functions: http (resident web server on $PORT), stdio (CGI, one process per
    /// request) or lambda (AWS Lambda runtime client).
    #[arg(long, required_if_eq("runtime", "process"))]
    mode: Option<ProcessMode>,
    /// Process functions: the command, run with /bin/sh -c in the code directory.
    #[arg(long, required_if_eq("runtime", "process"))]
    command: Option<String>,
    /// http mode: a path that answers 2xx once the app is ready (default: TCP connect to $PORT).
    #[arg(long)]
    health: Option<String>,
    /// lambda mode: the handler passed to the runtime client as _HANDLER.
    #[arg(long)]
    handler: Option<String>,
    /// Process functions: how long the process may take to become ready, e.g. 10s.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    startup_timeout: Duration,
    /// Resident process functions: stopped after this long without requests, e.g. 5m.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    idle_timeout: Duration,
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
    /// Object store bucket the function uses (repeatable): a process function gets
    /// AWS_ENDPOINT_URL_S3 and a key scoped to its buckets in its environment.
    #[arg(long = "bucket", value_name = "BUCKET")]
    buckets: Vec<String>,
    /// Key-value store the function uses (repeatable): its token reaches it over HTTP
    /// (`YUN_API`) and Redis (`REDIS_URL`, the first store).
    #[arg(long = "kv", value_name = "STORE")]
    kv: Vec<String>,
    /// SQL database the function uses (repeatable), through `YUN_API`.
    #[arg(long = "sql", value_name = "DB")]
    sql: Vec<String>,
    /// Require the admin token to invoke the function.
    #[arg(long)]
    private: bool,
    /// per-request: a fresh instance for every request; reuse: warm instances serve many.
    #[arg(long, default_value = "reuse")]
    instance: InstanceMode,
    /// A secret as an environment variable (repeatable): `DB_PASSWORD` (same name) or
    /// `DATABASE_URL=db-url`. Set secrets with `yun secret set`.
    #[arg(long = "secret", value_name = "ENV[=SECRET]")]
    secrets: Vec<String>,
    #[command(flatten)]
    rollout: super::traffic::RolloutArgs,
}

fn parse_size(s: &str) -> Result<u64, String> {
    yun_types::parse_size(s)
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| format!("{s:?} is not K=V"))
}

/// Uploads a function's artifact (a component, or a code directory or archive) and returns its
/// digest. The server keeps artifacts by digest, so sending one it has costs no compile.
pub async fn upload(client: &Client, file: &std::path::Path, process: bool) -> anyhow::Result<String> {
    let (bytes, content_type) = if process {
        (code_archive(file)?, "application/gzip")
    } else {
        if file.is_dir() {
            bail!("{} is a directory: deploy it with --runtime process", file.display());
        }
        (std::fs::read(file).with_context(|| format!("reading {}", file.display()))?, "application/wasm")
    };
    if bytes.is_empty() {
        bail!("{} is empty", file.display());
    }
    let artifact = client
        .call(client.request(Method::POST, "/v1/artifacts").header("content-type", content_type).body(bytes))
        .await?;
    Ok(artifact["digest"].as_str().unwrap_or_default().to_string())
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let (Some(name), Some(file)) = (args.name.clone(), args.file.clone()) else {
        return super::apply::apply(global, &args.manifest, false, false, true).await;
    };
    yun_types::FunctionName::new(name.clone())?;
    let process = args.runtime == "process";
    let client = Client::new(global)?;
    let digest = upload(&client, &file, process).await?;
    let env: BTreeMap<String, String> = args.env.into_iter().collect();
    let mut secrets = BTreeMap::new();
    for s in &args.secrets {
        let (var, secret) = s.split_once('=').unwrap_or((s, s));
        secrets.insert(var.to_string(), secret.to_string());
    }
    let spec = json!({
        "artifact": digest,
        "limits": Limits {
            memory_bytes: args.memory,
            timeout_ms: args.timeout.as_millis() as u64,
            max_body_bytes: args.max_body,
        },
        "env": env,
        "allow_outbound": args.allow_outbound,
        "buckets": args.buckets,
        "kv": args.kv,
        "sql": args.sql,
        "private": args.private,
        "instance": args.instance,
        "process": process.then(|| json!({
            "mode": args.mode,
            "command": args.command,
            "health": args.health,
            "handler": args.handler,
            "startup_timeout_ms": args.startup_timeout.as_millis() as u64,
            "idle_timeout_ms": args.idle_timeout.as_millis() as u64,
        })),
        "secrets": secrets,
    });
    let path = format!("/v1/functions/{name}/revisions{}", args.rollout.query());
    let revision = client.call(client.request(Method::POST, &path).json(&spec)).await?;
    if global.json {
        print_json(&revision);
    } else {
        println!("deployed {name} revision {}", revision["revision"]);
        if let Some(d) = args.rollout.rollout {
            println!(
                "  rollout {}% now, all of it over {} unless it fails (`yun describe {name}` shows progress)",
                revision["traffic_percent"],
                humantime::format_duration(d)
            );
        }
        println!("  digest  {}", revision["digest"].as_str().unwrap_or("-"));
        println!("  url     {}", revision["url"].as_str().unwrap_or("-"));
    }
    Ok(ExitCode::SUCCESS)
}

/// A directory is packed into a .tar.gz here; an archive file is sent as it is (the server
/// tells a .tar.gz from a .zip by its bytes).
fn code_archive(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    if path.is_dir() {
        let mut out = Vec::new();
        yun_archive::pack_dir(path, &mut out).with_context(|| format!("packing {}", path.display()))?;
        return Ok(out);
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if yun_archive::detect(&bytes).is_none() {
        bail!("{} is neither a directory nor a .tar.gz or .zip archive", path.display());
    }
    Ok(bytes)
}
