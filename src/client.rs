//! The CLI's side of the management API: where the server is, which token to send, and turning
//! API errors into one clear line.

use anyhow::{Context, anyhow, bail};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

use crate::Global;

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    pub fn new(global: &Global) -> anyhow::Result<Self> {
        let token = match &global.token {
            Some(t) => Some(t.clone()),
            None => {
                let path = global.data_dir()?.join(yun_control_plane::auth::TOKEN_FILE);
                std::fs::read_to_string(&path).ok().map(|t| t.trim().to_string())
            }
        };
        let http = reqwest::Client::builder().build().context("building the HTTP client")?;
        Ok(Self { http, base: global.url.trim_end_matches('/').to_string(), token })
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        req
    }

    /// Sends a management call and returns its JSON body, or the API's error as one line.
    pub async fn call(&self, req: RequestBuilder) -> anyhow::Result<Value> {
        let response = self.send(req).await?;
        let response = check(response).await?;
        response.json().await.context("the server sent a response that is not JSON")
    }

    pub async fn send(&self, req: RequestBuilder) -> anyhow::Result<Response> {
        req.send().await.map_err(|e| {
            if e.is_connect() {
                anyhow!("cannot reach yun at {} (is `yun up` running?)", self.base)
            } else {
                anyhow!("request to {} failed: {e}", self.base)
            }
        })
    }
}

/// Passes a successful response through; turns an error response into its message.
pub async fn check(response: Response) -> anyhow::Result<Response> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    match serde_json::from_str::<Value>(&text) {
        Ok(v) if v["error"]["message"].is_string() => {
            let hint = if status == 401 && v["error"]["code"] == "unauthorized" {
                " (pass --token or --data-dir of the server)"
            } else {
                ""
            };
            bail!(
                "{} ({}){hint}",
                v["error"]["message"].as_str().unwrap_or_default(),
                v["error"]["code"].as_str().unwrap_or("error")
            )
        }
        _ => bail!("the server answered {status}: {}", text.trim()),
    }
}

pub fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).expect("JSON values serialize"));
}

pub fn short_digest(d: &Value) -> String {
    d.as_str()
        .map(|s| s.trim_start_matches("sha256:").chars().take(12).collect())
        .unwrap_or_else(|| "-".into())
}

pub fn format_ms(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}
