//! {{name}}: a yun function, a wasi:http component (the `wasi:http/proxy` world).
//!
//! Build it with `yun build` (cargo, for wasm32-wasip2) and deploy it with `yun deploy`.

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// The first line of every answer.
const GREETING: &str = "Hello from {{name}}!";

struct Function;

impl Guest for Function {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_else(|| "/".to_string());
        let text = format!("{GREETING}\n{} {}\n", method_name(&request.method()), path);

        let headers = Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())])
            .expect("content-type is a valid header");
        let response = OutgoingResponse::new(headers);
        let body = response.body().expect("the body is taken only once");
        ResponseOutparam::set(response_out, Ok(response));

        let stream = body.write().expect("the stream is taken only once");
        // A write error means the client went away: there is nobody left to tell.
        let written = stream.blocking_write_and_flush(text.as_bytes());
        // The stream belongs to the body and must be dropped before the body is finished.
        drop(stream);
        if written.is_ok() {
            let _ = OutgoingBody::finish(body, None);
        }
    }
}

fn method_name(method: &Method) -> &str {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Connect => "CONNECT",
        Method::Options => "OPTIONS",
        Method::Trace => "TRACE",
        Method::Patch => "PATCH",
        Method::Other(other) => other,
    }
}

wasip2::http::proxy::export!(Function);
