//! `yun:storage/objects`, the object store as a host interface for wasm guests. Each call is a
//! request to yun's own API (`/v1/storage/...`) made in-process with the function's scoped
//! token, so a guest reaches exactly the buckets its function was deployed with, by the same
//! checks as the S3 API and `yun.internal`.

use bytes::Bytes;

use crate::host::Host;
use crate::local::CallError;

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit/storage.wit",
        world: "imports",
        imports: { default: async },
    });
}

use bindings::yun::storage::objects::{self, Error};

pub(crate) fn add_to_linker(linker: &mut wasmtime::component::Linker<Host>) -> wasmtime::Result<()> {
    objects::add_to_linker::<Host, wasmtime::component::HasSelf<Host>>(linker, |h| h)
}

fn query(key_or_prefix: (&str, &str)) -> String {
    crate::local::query(&[(key_or_prefix.0, key_or_prefix.1.as_bytes())])
}

impl Host {
    /// One call to yun's storage API as this function.
    async fn storage_call(
        &mut self,
        method: http::Method,
        path_and_query: String,
        body: Bytes,
        content_type: Option<String>,
    ) -> Result<Bytes, Error> {
        let reply = match self.local_call(method, path_and_query, body, content_type.as_deref()).await {
            Ok(reply) => reply,
            Err(CallError::TooLarge) => return Err(Error::TooLarge),
            Err(CallError::Unavailable) => {
                return Err(Error::Other("object storage is not available here".into()));
            }
            Err(e) => return Err(Error::Other(e.to_string())),
        };
        if reply.ok() {
            return Ok(reply.body);
        }
        let message = reply.message();
        Err(match reply.status {
            401 | 403 => Error::AccessDenied,
            404 if message.contains("bucket") && !message.contains("key") => Error::NoSuchBucket,
            404 => Error::NoSuchKey,
            413 => Error::TooLarge,
            _ => Error::Other(message),
        })
    }
}

impl objects::Host for Host {
    async fn get(&mut self, bucket: String, key: String) -> Result<Vec<u8>, Error> {
        let path = format!("/v1/storage/buckets/{bucket}/object?{}", query(("key", &key)));
        self.storage_call(http::Method::GET, path, Bytes::new(), None).await.map(|b| b.to_vec())
    }

    async fn put(
        &mut self,
        bucket: String,
        key: String,
        data: Vec<u8>,
        content_type: Option<String>,
    ) -> Result<(), Error> {
        let path = format!("/v1/storage/buckets/{bucket}/object?{}", query(("key", &key)));
        self.storage_call(http::Method::PUT, path, Bytes::from(data), content_type).await.map(|_| ())
    }

    async fn delete(&mut self, bucket: String, key: String) -> Result<bool, Error> {
        let path = format!("/v1/storage/buckets/{bucket}/object?{}", query(("key", &key)));
        let body = self.storage_call(http::Method::DELETE, path, Bytes::new(), None).await?;
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| Error::Other(e.to_string()))?;
        Ok(v["deleted"] == true)
    }

    async fn list_keys(&mut self, bucket: String, prefix: String) -> Result<Vec<String>, Error> {
        let path = format!("/v1/storage/buckets/{bucket}/objects?{}", query(("prefix", &prefix)));
        let body = self.storage_call(http::Method::GET, path, Bytes::new(), None).await?;
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| Error::Other(e.to_string()))?;
        Ok(v["objects"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o["key"].as_str().map(str::to_owned))
            .collect())
    }
}
