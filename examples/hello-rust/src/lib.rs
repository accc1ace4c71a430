//! The smallest useful yun function: answers every request with a fixed greeting.

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

struct Hello;

impl Guest for Hello {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        let headers = Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())])
            .expect("content-type is a valid header");
        let response = OutgoingResponse::new(headers);
        let body = response.body().expect("body is taken only once");
        ResponseOutparam::set(response_out, Ok(response));

        let stream = body.write().expect("stream is taken only once");
        // A write error means the client went away; there is nobody left to tell.
        let written = stream.blocking_write_and_flush(b"Hello, world!\n");
        // The stream is a child of the body and must be gone before the body is finished.
        drop(stream);
        if written.is_ok() {
            let _ = OutgoingBody::finish(body, None);
        }
    }
}

wasip2::http::proxy::export!(Hello);
