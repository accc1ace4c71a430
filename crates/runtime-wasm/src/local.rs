//! Requests from yun's host interfaces to yun's own API, made in-process as the calling function
//! (its scoped token), so a guest's rights through a WIT interface are exactly those it has over
//! `http://yun.internal/`.

use bytes::Bytes;

use crate::host::Host;

/// What the API answered.
pub(crate) struct Reply {
    pub status: u16,
    pub body: Bytes,
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// yun's error message (`{"error": {"message": ..}}`), or the body as text.
    pub fn message(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).into_owned())
    }

    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("yun's API answered with invalid JSON: {e}"))
    }
}

/// Why no request was made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    #[error("yun's API is not reachable from this runtime")]
    Unavailable,
    #[error("the request is larger than a call carries ({} bytes)", yun_types::local::MAX_LOCAL_BODY)]
    TooLarge,
    #[error("cannot build the request: {0}")]
    Request(String),
}

/// A query string from pairs whose values may be any bytes (KV keys need not be UTF-8).
pub(crate) fn query(pairs: &[(&str, &[u8])]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let v: String = form_urlencoded::byte_serialize(v).collect();
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Store and database names go into the request path: anything but a plain name is refused
/// before a request is made, so a guest cannot steer the path to another route.
pub(crate) fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name != "."
        && name != ".."
}

impl Host {
    /// One request to yun's API as this function.
    pub(crate) async fn local_call(
        &mut self,
        method: http::Method,
        path_and_query: String,
        body: Bytes,
        content_type: Option<&str>,
    ) -> Result<Reply, CallError> {
        let Some(local) = self.hooks.local.clone() else {
            return Err(CallError::Unavailable);
        };
        if body.len() > yun_types::local::MAX_LOCAL_BODY {
            return Err(CallError::TooLarge);
        }
        let caller = self.hooks.function.clone();
        let request = http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path_and_query}", yun_types::local::LOCAL_HOST))
            .header(http::header::HOST, yun_types::local::LOCAL_HOST)
            .header(http::header::AUTHORIZATION, format!("Bearer {}", local.token_for(&caller)));
        let request = match content_type {
            Some(ct) => request.header(http::header::CONTENT_TYPE, ct),
            None => request,
        }
        .body(body)
        .map_err(|e| CallError::Request(e.to_string()))?;
        let response = local.call(&caller, request).await;
        Ok(Reply { status: response.status().as_u16(), body: response.into_body() })
    }

    /// `local_call` with a JSON body.
    pub(crate) async fn local_json(
        &mut self,
        method: http::Method,
        path_and_query: String,
        body: &serde_json::Value,
    ) -> Result<Reply, CallError> {
        let body = serde_json::to_vec(body).map_err(|e| CallError::Request(e.to_string()))?;
        self.local_call(method, path_and_query, Bytes::from(body), Some("application/json")).await
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! A stand-in for yun's API: it records each request and answers from a closure, so the
    //! host interfaces are tested for what they send and how they read what comes back.

    use std::future::Future;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use wasmtime_wasi::WasiCtxBuilder;
    use wasmtime_wasi_http::WasiHttpCtx;

    use crate::host::{Host, InstanceShared, Limiter, OutboundPolicy};

    /// A request as the fake saw it.
    #[derive(Clone, Debug)]
    pub struct Seen {
        pub method: http::Method,
        pub path_and_query: String,
        pub authorization: String,
        pub body: Bytes,
    }

    impl Seen {
        pub fn json(&self) -> serde_json::Value {
            serde_json::from_slice(&self.body).unwrap()
        }
    }

    type Answer = dyn Fn(&Seen) -> (u16, Vec<u8>) + Send + Sync;

    pub struct FakeApi {
        pub seen: Mutex<Vec<Seen>>,
        answer: Box<Answer>,
    }

    impl FakeApi {
        pub fn requests(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }
    }

    impl yun_types::local::LocalApi for FakeApi {
        fn call(
            &self,
            caller: &str,
            request: http::Request<Bytes>,
        ) -> Pin<Box<dyn Future<Output = http::Response<Bytes>> + Send + 'static>> {
            assert_eq!(caller, "fn1");
            let seen = Seen {
                method: request.method().clone(),
                path_and_query: request.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default(),
                authorization: request
                    .headers()
                    .get(http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string(),
                body: request.into_body(),
            };
            let (status, body) = (self.answer)(&seen);
            self.seen.lock().unwrap().push(seen);
            let response = http::Response::builder().status(status).body(Bytes::from(body)).unwrap();
            Box::pin(async move { response })
        }

        fn token_for(&self, function: &str) -> String {
            format!("yunf.{function}.mac")
        }
    }

    pub fn json(status: u16, v: serde_json::Value) -> (u16, Vec<u8>) {
        (status, serde_json::to_vec(&v).unwrap())
    }

    pub fn error(status: u16, message: &str) -> (u16, Vec<u8>) {
        json(status, serde_json::json!({"error": {"code": "x", "message": message}}))
    }

    /// A host for function `fn1`, whose API answers with `answer`.
    pub fn host(answer: impl Fn(&Seen) -> (u16, Vec<u8>) + Send + Sync + 'static) -> (Host, Arc<FakeApi>) {
        let api = Arc::new(FakeApi { seen: Mutex::new(vec![]), answer: Box::new(answer) });
        let sink: Arc<dyn yun_telemetry::LogSink> = Arc::new(Discard);
        let shared = Arc::new(InstanceShared::new(sink, "fn1".into(), 1));
        let host = Host {
            table: wasmtime::component::ResourceTable::new(),
            wasi: WasiCtxBuilder::new().build(),
            http: WasiHttpCtx::new(),
            hooks: OutboundPolicy {
                allowed: Arc::from(Vec::<String>::new()),
                local: Some(api.clone()),
                function: "fn1".into(),
                shared: shared.clone(),
            },
            limiter: Limiter { memory_limit: 1 << 30, shared },
        };
        (host, api)
    }

    struct Discard;
    impl yun_telemetry::LogSink for Discard {
        fn emit(&self, _: yun_telemetry::LogEntry) {}
    }
}
