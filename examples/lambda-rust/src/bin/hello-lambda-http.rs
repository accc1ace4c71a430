//! A `lambda_http` function: an ordinary HTTP handler behind API Gateway HTTP API v2 events.
//!
//! Answers `Hello from lambda_http, path=<path>` plus `, name=<name>` when the query has one, and
//! sets a cookie so the Set-Cookie mapping is exercised.

use lambda_http::{Body, Error, Request, RequestExt, Response, service_fn};

async fn handler(request: Request) -> Result<Response<Body>, Error> {
    let mut text = format!("Hello from lambda_http, path={}", request.uri().path());
    if let Some(name) = request.query_string_parameters_ref().and_then(|q| q.first("name")) {
        text.push_str(&format!(", name={name}"));
    }
    let response = Response::builder()
        .status(200)
        .header("content-type", "text/plain; charset=utf-8")
        .header("x-method", request.method().as_str())
        .header("set-cookie", "visited=yes; Path=/")
        .body(Body::from(text))?;
    Ok(response)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(handler)).await
}
