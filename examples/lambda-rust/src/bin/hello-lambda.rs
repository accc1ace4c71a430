//! A plain `lambda_runtime` function: JSON in, JSON out.
//!
//! `{"name": "yun"}` → `{"hello": "yun", "requestId": "..."}`. With `"fail": true` it returns an
//! error, which the runtime reports to `/invocation/{id}/error` (an "Unhandled" function error).

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
struct Request {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    fail: bool,
}

#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused: {}", self.0)
    }
}

impl std::error::Error for Refused {}

async fn handler(event: LambdaEvent<Request>) -> Result<Value, Error> {
    let name = event.payload.name.unwrap_or_else(|| "world".to_owned());
    if event.payload.fail {
        return Err(Box::new(Refused(name)));
    }
    Ok(json!({
        "hello": name,
        "requestId": event.context.request_id,
        "functionArn": event.context.invoked_function_arn,
    }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
