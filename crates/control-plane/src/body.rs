//! Response bodies and JSON helpers shared by the management API and the gateway.

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use yun_types::{ErrorBody, ErrorCode};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The one response body type the server writes.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

pub fn json(status: u16, value: &impl serde::Serialize) -> Response<Body> {
    let bytes = serde_json::to_vec_pretty(value).expect("API values always serialize");
    Response::builder()
        .status(StatusCode::from_u16(status).expect("valid status"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(bytes))
        .expect("valid response")
}

pub fn error(code: ErrorCode, message: impl Into<String>) -> Response<Body> {
    error_body(ErrorBody::new(code, message))
}

pub fn error_body(body: ErrorBody) -> Response<Body> {
    let mut response = Response::builder()
        .status(StatusCode::from_u16(body.error.code.status()).expect("valid status"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(body.to_json()))
        .expect("valid response");
    if body.error.code == ErrorCode::Unauthorized {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    }
    response
}
