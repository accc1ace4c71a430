//! `yun invoke NAME`: call a function the way any HTTP client would, through the gateway.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use reqwest::Method;

use crate::Global;
use crate::client::Client;

#[derive(clap::Args, Debug)]
pub struct Args {
    name: String,
    /// Path inside the function, e.g. /users?id=1.
    #[arg(long, default_value = "/")]
    path: String,
    /// HTTP method.
    #[arg(short = 'X', long = "request", default_value = "GET")]
    method: String,
    /// Request header `K: V` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "K:V")]
    headers: Vec<String>,
    /// Request body, or @FILE to send a file's contents.
    #[arg(short = 'd', long = "data")]
    data: Option<String>,
    /// Print the response status and headers before the body.
    #[arg(short = 'i', long = "include")]
    include: bool,
    /// Invoke asynchronously: the event is stored and retried, and the answer is its id.
    #[arg(long = "async")]
    asynchronous: bool,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let client = Client::new(global)?;
    let method = Method::from_bytes(args.method.to_uppercase().as_bytes())
        .with_context(|| format!("{:?} is not an HTTP method", args.method))?;
    let path = if args.path.starts_with('/') { args.path.clone() } else { format!("/{}", args.path) };
    // The token goes along so private functions work from the CLI.
    let mut req = client.request(method, &format!("/fn/{}{path}", args.name));
    for h in &args.headers {
        let Some((k, v)) = h.split_once(':') else { bail!("header {h:?} is not K:V") };
        req = req.header(k.trim(), v.trim());
    }
    if args.asynchronous {
        req = req.header("x-yun-invocation-type", "event");
    }
    if let Some(data) = &args.data {
        let body = match data.strip_prefix('@') {
            Some(file) => std::fs::read(file).with_context(|| format!("reading {file}"))?,
            None => data.clone().into_bytes(),
        };
        req = req.body(body);
    }
    let mut response = client.send(req).await?;
    let status = response.status();
    if args.include {
        println!("{:?} {}", response.version(), status);
        for (k, v) in response.headers() {
            println!("{k}: {}", v.to_str().unwrap_or("<binary>"));
        }
        println!();
    }
    if !status.is_success() && !args.include {
        let id =
            response.headers().get("x-yun-invocation-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| {
                let e = &v["error"];
                Some(format!("{} ({})", e["message"].as_str()?, e["code"].as_str()?))
            })
            .unwrap_or_else(|| text.trim().to_string());
        eprintln!(
            "error: {status}: {message}{}",
            id.map(|i| format!(" [invocation {i}]")).unwrap_or_default()
        );
        return Ok(ExitCode::FAILURE);
    }
    let mut stdout = std::io::stdout().lock();
    while let Some(chunk) = response.chunk().await.context("reading the response body")? {
        stdout.write_all(&chunk)?;
    }
    stdout.flush()?;
    Ok(if status.is_success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
