//! `yun apply [-f yun.toml] [--dry-run] [--prune]`: make the server's functions and routes what
//! the app manifest says. Artifacts are uploaded (content-addressed, so unchanged code is not
//! sent twice), then the server reconciles the whole description, checking all of it before
//! it changes anything, and one object at a time after. A second apply reports no change.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use reqwest::Method;
use serde_json::{Value, json};
use yun_manifest::{FunctionDef, Manifest, RevisionRef, Runtime};
use yun_types::FunctionName;

use crate::Global;
use crate::client::{Client, print_json};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The app manifest.
    #[arg(short = 'f', long, default_value = "yun.toml")]
    file: PathBuf,
    /// Only show what would change.
    #[arg(long)]
    dry_run: bool,
    /// Also remove functions and routes the manifest no longer names.
    #[arg(long)]
    prune: bool,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    apply(global, &args.file, args.dry_run, args.prune, false).await
}

/// Applies the manifest at `file`; with `build`, builds its functions first (`yun deploy`
/// without arguments).
pub async fn apply(
    global: &Global,
    file: &Path,
    dry_run: bool,
    prune: bool,
    build: bool,
) -> anyhow::Result<ExitCode> {
    let manifest = yun_manifest::load(file)?;
    if build {
        for (name, def) in &manifest.functions {
            super::build::build_function(name, def)?;
        }
    }
    let client = Client::new(global)?;
    let app = describe_app(&client, &manifest).await?;
    let mut path = String::from("/v1/apply");
    let flags: Vec<&str> = [(dry_run, "dry_run=true"), (prune, "prune=true")]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, f)| f)
        .collect();
    if !flags.is_empty() {
        path = format!("{path}?{}", flags.join("&"));
    }
    let v = client.call(client.request(Method::POST, &path).json(&app)).await?;
    if global.json {
        print_json(&v);
        return Ok(ExitCode::SUCCESS);
    }
    print_changes(&v, dry_run);
    Ok(ExitCode::SUCCESS)
}

fn print_changes(v: &Value, dry_run: bool) {
    let changes = v["changes"].as_array().cloned().unwrap_or_default();
    let unchanged = v["unchanged"].as_u64().unwrap_or(0);
    if changes.is_empty() {
        println!("no changes ({unchanged} objects up to date)");
        return;
    }
    for c in &changes {
        let sign = match c["action"].as_str() {
            Some("create") => "+",
            Some("delete") => "-",
            _ => "~",
        };
        let details: Vec<&str> =
            c["details"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let details = if details.is_empty() { String::new() } else { format!(": {}", details.join("; ")) };
        println!(
            "{sign} {} {}{details}",
            c["object"].as_str().unwrap_or("-"),
            c["name"].as_str().unwrap_or("-")
        );
    }
    let verb = if dry_run { "would change" } else { "changed" };
    println!("{} {verb}, {unchanged} unchanged", changes.len());
}

/// The manifest as the server's app description, with each function's artifact uploaded.
async fn describe_app(client: &Client, manifest: &Manifest) -> anyhow::Result<Value> {
    let mut functions = serde_json::Map::new();
    for (name, def) in &manifest.functions {
        let artifact = artifact_of(name, def)?;
        let process = def.runtime == Runtime::Process;
        let digest = super::deploy::upload(client, &artifact, process)
            .await
            .with_context(|| format!("function {name}: uploading {}", artifact.display()))?;
        functions.insert(name.to_string(), function_spec(def, &digest));
    }
    let routes: Vec<Value> = manifest
        .routes
        .iter()
        .map(|r| json!({ "host": r.host, "path": r.path, "function": r.function, "tag": r.tag }))
        .map(|mut r| {
            // The server's route record has no nulls: absent means "any host" / "no tag".
            r.as_object_mut().expect("object").retain(|_, v| !v.is_null());
            r
        })
        .collect();
    let queues: serde_json::Map<String, Value> = manifest
        .queues
        .iter()
        .map(|(name, q)| {
            let mut c = serde_json::Map::new();
            let mut put = |k: &str, v: Option<Value>| {
                if let Some(v) = v {
                    c.insert(k.to_string(), v);
                }
            };
            put("visibility_ms", q.visibility_ms.map(Value::from));
            put("max_receives", q.max_receives.map(Value::from));
            put("dlq", q.dlq.clone().map(Value::from));
            put("fifo", q.fifo.then_some(Value::Bool(true)));
            put("delay_ms", q.delay_ms.map(Value::from));
            put("retention_ms", q.retention_ms.map(Value::from));
            (name.clone(), Value::Object(c))
        })
        .collect();
    let topics: serde_json::Map<String, Value> = manifest
        .topics
        .iter()
        .map(|(name, subs)| {
            let subs: Vec<Value> = subs
                .iter()
                .filter_map(|s| s.split_once(':'))
                .map(|(kind, target)| json!({ kind: target }))
                .collect();
            (name.clone(), Value::Array(subs))
        })
        .collect();
    Ok(json!({ "functions": functions, "routes": routes, "queues": queues, "topics": topics }))
}

fn artifact_of(name: &FunctionName, def: &FunctionDef) -> anyhow::Result<PathBuf> {
    let path = super::build::artifact_path(name, def)?;
    if !path.exists() {
        anyhow::bail!(
            "function {name}: {} does not exist{}",
            path.display(),
            if def.build.is_some() { ": build it first with `yun build`" } else { "" }
        );
    }
    Ok(path)
}

fn revision_ref(r: &RevisionRef) -> Value {
    match r {
        RevisionRef::Latest => json!("latest"),
        RevisionRef::Number(n) => json!(n),
        RevisionRef::Tag(t) => json!(t),
    }
}

fn function_spec(def: &FunctionDef, digest: &str) -> Value {
    let defaults = yun_types::Limits::default();
    let process = def.process.as_ref().map(|p| {
        json!({
            "mode": p.mode,
            "command": p.command,
            "health": p.health,
            "handler": p.handler,
            "startup_timeout_ms": p.startup_timeout_ms.unwrap_or(10_000),
            "idle_timeout_ms": p.idle_timeout_ms.unwrap_or(5 * 60_000),
        })
    });
    let mut revision = json!({
        "artifact": digest,
        "limits": {
            "memory_bytes": def.memory_bytes.unwrap_or(defaults.memory_bytes),
            "timeout_ms": def.timeout_ms.unwrap_or(defaults.timeout_ms),
            "max_body_bytes": def.max_body_bytes.unwrap_or(defaults.max_body_bytes),
        },
        "env": def.env,
        "allow_outbound": def.allow_outbound,
        "buckets": def.buckets,
        "kv": def.kv,
        "sql": def.sql,
        "private": def.private,
        "instance": def.instance.unwrap_or_default(),
        "secrets": def.secrets,
    });
    if let Some(p) = process {
        revision["process"] = p;
    }
    let mut spec = json!({
        "revision": revision,
        "scale": def.scale,
        "tags": def.tags.iter().map(|(t, r)| (t.clone(), revision_ref(r))).collect::<serde_json::Map<_, _>>(),
    });
    if let Some(traffic) = &def.traffic {
        spec["traffic"] = json!(
            traffic
                .iter()
                .map(|(r, p)| json!({ "revision": revision_ref(r), "percent": p }))
                .collect::<Vec<_>>()
        );
    }
    if let Some(ms) = def.rollout_ms {
        spec["rollout"] = json!({ "duration_ms": ms });
    }
    if let Some(s) = &def.sticky {
        spec["sticky"] = json!(s);
    }
    if let Some(a) = &def.asynchronous {
        spec["async"] = json!(a);
    }
    if !def.triggers.is_empty() {
        spec["triggers"] = json!(def.triggers);
    }
    spec
}
