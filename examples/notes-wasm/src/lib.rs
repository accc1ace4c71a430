//! A wasm function that keeps notes in yun's object store through the `yun:storage/objects`
//! host interface (no S3 client, no credentials: the host acts as the function, on the buckets it
//! was deployed with).
//!
//!     yun deploy notes target/wasm32-wasip2/release/notes_wasm.wasm --bucket notes
//!     curl 'localhost:8080/fn/notes/?bucket=notes&put=todo.txt&text=milk'   # stores it
//!     curl 'localhost:8080/fn/notes/?bucket=notes&get=todo.txt'             # milk
//!     curl 'localhost:8080/fn/notes/?bucket=notes'                          # todo.txt (one key a line)
//!     curl 'localhost:8080/fn/notes/?bucket=notes&delete=todo.txt'          # deleted

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

wit_bindgen::generate!({
    path: "../../crates/runtime-wasm/wit/storage.wit",
    world: "imports",
});

use yun::storage::objects::{self, Error};

struct Notes;

impl Guest for Notes {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let query = path.split_once('?').map_or("", |(_, q)| q);
        let param = |name: &str| {
            query.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')).map(str::to_string)
        };
        let bucket = param("bucket").unwrap_or_else(|| "notes".into());
        let result = if let Some(key) = param("put") {
            let text = param("text").unwrap_or_default();
            objects::put(&bucket, &key, text.as_bytes(), Some("text/plain"))
                .map(|()| format!("stored {key}\n").into_bytes())
        } else if let Some(key) = param("get") {
            objects::get(&bucket, &key)
        } else if let Some(key) = param("delete") {
            objects::delete(&bucket, &key)
                .map(|existed| if existed { b"deleted\n".to_vec() } else { b"absent\n".to_vec() })
        } else {
            objects::list_keys(&bucket, "")
                .map(|keys| keys.iter().map(|k| format!("{k}\n")).collect::<String>().into_bytes())
        };
        let (status, body) = match result {
            Ok(body) => (200, body),
            Err(Error::AccessDenied) => (403, b"access denied\n".to_vec()),
            Err(Error::NoSuchBucket) => (404, b"no such bucket\n".to_vec()),
            Err(Error::NoSuchKey) => (404, b"no such key\n".to_vec()),
            Err(Error::TooLarge) => (413, b"too large\n".to_vec()),
            Err(Error::Other(message)) => (500, format!("{message}\n").into_bytes()),
        };
        let fields = Fields::new();
        let _ = fields.append("content-type", b"text/plain");
        let response = OutgoingResponse::new(fields);
        let _ = response.set_status_code(status);
        let out_body = response.body().expect("body is taken only once");
        ResponseOutparam::set(response_out, Ok(response));
        let out = out_body.write().expect("stream is taken only once");
        let _ = out.blocking_write_and_flush(&body);
        drop(out);
        let _ = OutgoingBody::finish(out_body, None);
    }
}

wasip2::http::proxy::export!(Notes);
