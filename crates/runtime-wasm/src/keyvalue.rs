//! `wasi:keyvalue@0.2.0-draft2` (store, atomics, batch) over yun's KV stores. Each call is a
//! request to `/v1/kv/{store}/...` made in-process with the function's scoped token, so a
//! guest reaches the stores its function was deployed with (`--kv STORE`) and no other. Buckets
//! are logical database 0 of their store.
//!
//! Keys are WIT strings: keys of a store that are not UTF-8 (written over Redis, say) are left
//! out of `list-keys`, since the guest could not name them. Values are bytes either way.

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Value, json};
use wasmtime::component::Resource;

use crate::host::Host;
use crate::local::{CallError, Reply, is_plain_name, query};

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit/keyvalue",
        world: "wasi:keyvalue/imports",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": super::KvBucket,
            "wasi:keyvalue/atomics.cas": super::KvCas,
        },
    });
}

use bindings::wasi::keyvalue::atomics::{self, CasError};
use bindings::wasi::keyvalue::batch;
use bindings::wasi::keyvalue::store::{self, Error, KeyResponse};

/// An open bucket: the yun store it names.
pub struct KvBucket {
    store: String,
}

/// A compare-and-swap handle: the key and the value it saw.
pub struct KvCas {
    store: String,
    key: String,
    seen: Option<Vec<u8>>,
}

pub(crate) fn add_to_linker(linker: &mut wasmtime::component::Linker<Host>) -> wasmtime::Result<()> {
    type Me = wasmtime::component::HasSelf<Host>;
    store::add_to_linker::<Host, Me>(linker, |h| h)?;
    atomics::add_to_linker::<Host, Me>(linker, |h| h)?;
    batch::add_to_linker::<Host, Me>(linker, |h| h)
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Bytes in the API's JSON form: a string when they are UTF-8, `{"base64": ..}` otherwise.
fn to_json(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(s) => Value::String(s.to_owned()),
        Err(_) => json!({ "base64": B64.encode(bytes) }),
    }
}

/// The bytes of a value in the API's JSON form; `None` for `null` (or anything malformed).
fn from_json(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.clone().into_bytes()),
        Value::Object(o) => o.get("base64")?.as_str().and_then(|b| B64.decode(b).ok()),
        _ => None,
    }
}

/// A KV error from the API's reply: whose 404 says the store is missing, not the key.
fn error_of(reply: &Reply) -> Error {
    let message = reply.message();
    match reply.status {
        401 | 403 => Error::AccessDenied,
        404 if mentions_store(&message) => Error::NoSuchStore,
        _ => Error::Other(message),
    }
}

fn mentions_store(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("store") && !m.contains("key")
}

/// A store comes into being on its first write, and the function's token is refused (403)
/// any store it was not deployed with before the store is looked up: a missing store behind
/// it is one of the function's own that nothing has written yet, which reads as empty.
fn unwritten_store(reply: &Reply) -> bool {
    reply.status == 404 && mentions_store(&reply.message())
}

fn call_error(e: CallError) -> Error {
    match e {
        CallError::Unavailable => Error::Other("KV stores are not available here".into()),
        e => Error::Other(e.to_string()),
    }
}

/// The cursor a guest gets back is the JSON form of the API's `next` key, so keys that are not
/// UTF-8 page correctly too; a cursor that is not JSON is taken as a key to start after.
fn cursor_to_key(cursor: &str) -> Vec<u8> {
    serde_json::from_str::<Value>(cursor)
        .ok()
        .and_then(|v| from_json(&v))
        .unwrap_or_else(|| cursor.as_bytes().to_vec())
}

/// Keys a `list-keys` page asks for: the API's largest page, so a listing takes few calls.
const LIST_PAGE: usize = 1000;

fn store_path(store: &str, rest: &str) -> String {
    format!("/v1/kv/{store}/{rest}")
}

fn key_path(store: &str, key: &str) -> String {
    store_path(store, &format!("key?{}", query(&[("key", key.as_bytes())])))
}

/// How a KV request goes out.
enum Body {
    None,
    Raw(Vec<u8>),
    Json(Value),
}

impl Host {
    async fn kv_send(&mut self, method: http::Method, path: String, body: Body) -> Result<Reply, Error> {
        match body {
            Body::None => self.local_call(method, path, Bytes::new(), None).await,
            Body::Raw(raw) => {
                self.local_call(method, path, Bytes::from(raw), Some("application/octet-stream")).await
            }
            Body::Json(body) => self.local_json(method, path, &body).await,
        }
        .map_err(call_error)
    }

    /// A request that must succeed (2xx); anything else as a keyvalue error.
    async fn kv_call(&mut self, method: http::Method, path: String, body: Body) -> Result<Reply, Error> {
        let reply = self.kv_send(method, path, body).await?;
        if reply.ok() { Ok(reply) } else { Err(error_of(&reply)) }
    }

    /// A request that reads: `None` when the store has not been written yet.
    async fn kv_read(
        &mut self,
        method: http::Method,
        path: String,
        body: Body,
    ) -> Result<Option<Reply>, Error> {
        let reply = self.kv_send(method, path, body).await?;
        match reply.status {
            200..300 => Ok(Some(reply)),
            _ if unwritten_store(&reply) => Ok(None),
            _ => Err(error_of(&reply)),
        }
    }

    /// The value under `key`; `None` when absent.
    async fn kv_get(&mut self, store: &str, key: &str) -> Result<Option<Vec<u8>>, Error> {
        let reply = self.kv_send(http::Method::GET, key_path(store, key), Body::None).await?;
        match reply.status {
            200..300 => Ok(Some(reply.body.to_vec())),
            // "no such key", or a store nothing has written to.
            404 => Ok(None),
            _ => Err(error_of(&reply)),
        }
    }

    fn bucket_store(&self, bucket: &Resource<KvBucket>) -> wasmtime::Result<String> {
        Ok(self.table.get(bucket)?.store.clone())
    }
}

impl store::Host for Host {
    async fn open(&mut self, identifier: String) -> wasmtime::Result<Result<Resource<KvBucket>, Error>> {
        // `default` goes to the API as it is: the API resolves it to the function's first
        // declared store, as Spin does with its default database.
        if !is_plain_name(&identifier) {
            return Ok(Err(Error::NoSuchStore));
        }
        // Opening checks the store is the function's, with the cheapest request that does.
        let path = store_path(&identifier, "keys?limit=1");
        if let Err(e) = self.kv_read(http::Method::GET, path, Body::None).await {
            return Ok(Err(e));
        }
        Ok(Ok(self.table.push(KvBucket { store: identifier })?))
    }
}

impl store::HostBucket for Host {
    async fn get(
        &mut self,
        bucket: Resource<KvBucket>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        let store = self.bucket_store(&bucket)?;
        Ok(self.kv_get(&store, &key).await)
    }

    async fn set(
        &mut self,
        bucket: Resource<KvBucket>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let store = self.bucket_store(&bucket)?;
        Ok(self.kv_call(http::Method::PUT, key_path(&store, &key), Body::Raw(value)).await.map(|_| ()))
    }

    async fn delete(
        &mut self,
        bucket: Resource<KvBucket>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        let store = self.bucket_store(&bucket)?;
        Ok(self.kv_read(http::Method::DELETE, key_path(&store, &key), Body::None).await.map(|_| ()))
    }

    async fn exists(
        &mut self,
        bucket: Resource<KvBucket>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        let store = self.bucket_store(&bucket)?;
        let reply = self.kv_send(http::Method::GET, key_path(&store, &key), Body::None).await;
        Ok(reply.and_then(|reply| match reply.status {
            200..300 => Ok(true),
            // A key holding something other than a string (a list written over Redis) exists.
            409 => Ok(true),
            404 => Ok(false),
            _ => Err(error_of(&reply)),
        }))
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<KvBucket>,
        cursor: Option<String>,
    ) -> wasmtime::Result<Result<KeyResponse, Error>> {
        let store = self.bucket_store(&bucket)?;
        let limit = LIST_PAGE.to_string();
        let q = match cursor.as_deref().map(cursor_to_key) {
            Some(after) => query(&[("after", &after), ("limit", limit.as_bytes())]),
            None => query(&[("limit", limit.as_bytes())]),
        };
        let reply =
            match self.kv_read(http::Method::GET, store_path(&store, &format!("keys?{q}")), Body::None).await
            {
                Ok(Some(reply)) => reply,
                Ok(None) => return Ok(Ok(KeyResponse { keys: vec![], cursor: None })),
                Err(e) => return Ok(Err(e)),
            };
        let v = match reply.json() {
            Ok(v) => v,
            Err(e) => return Ok(Err(Error::Other(e))),
        };
        let keys = v["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(from_json)
            .filter_map(|k| String::from_utf8(k).ok())
            .collect();
        let cursor = match &v["next"] {
            Value::Null => None,
            next => Some(next.to_string()),
        };
        Ok(Ok(KeyResponse { keys, cursor }))
    }

    async fn drop(&mut self, bucket: Resource<KvBucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for Host {
    async fn increment(
        &mut self,
        bucket: Resource<KvBucket>,
        key: String,
        delta: i64,
    ) -> wasmtime::Result<Result<i64, Error>> {
        let store = self.bucket_store(&bucket)?;
        let by = delta.to_string();
        let q = query(&[("key", key.as_bytes()), ("by", by.as_bytes())]);
        let reply = match self
            .kv_call(http::Method::POST, store_path(&store, &format!("incr?{q}")), Body::None)
            .await
        {
            Ok(reply) => reply,
            Err(e) => return Ok(Err(e)),
        };
        Ok(reply.json().map_err(Error::Other).and_then(|v| {
            v["value"].as_i64().ok_or_else(|| Error::Other(format!("unexpected reply to incr: {v}")))
        }))
    }

    async fn swap(&mut self, cas: Resource<KvCas>, value: Vec<u8>) -> wasmtime::Result<Result<(), CasError>> {
        let KvCas { store, key, seen } = self.table.delete(cas)?;
        let body = json!({
            "key": key,
            "expected": seen.as_deref().map_or(Value::Null, to_json),
            "value": to_json(&value),
        });
        let v = match self.kv_call(http::Method::POST, store_path(&store, "cas"), Body::Json(body)).await {
            Ok(reply) => match reply.json() {
                Ok(v) => v,
                Err(e) => return Ok(Err(CasError::StoreError(Error::Other(e)))),
            },
            Err(e) => return Ok(Err(CasError::StoreError(e))),
        };
        if v["swapped"] == true {
            return Ok(Ok(()));
        }
        // The reply carries what is there now: the fresh handle needs no second read.
        let retry = self.table.push(KvCas { store, key, seen: from_json(&v["current"]) })?;
        Ok(Err(CasError::CasFailed(retry)))
    }
}

impl atomics::HostCas for Host {
    async fn new(
        &mut self,
        bucket: Resource<KvBucket>,
        key: String,
    ) -> wasmtime::Result<Result<Resource<KvCas>, Error>> {
        let store = self.bucket_store(&bucket)?;
        let seen = match self.kv_get(&store, &key).await {
            Ok(seen) => seen,
            Err(e) => return Ok(Err(e)),
        };
        Ok(Ok(self.table.push(KvCas { store, key, seen })?))
    }

    async fn current(&mut self, cas: Resource<KvCas>) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        Ok(Ok(self.table.get(&cas)?.seen.clone()))
    }

    async fn drop(&mut self, cas: Resource<KvCas>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl batch::Host for Host {
    async fn get_many(
        &mut self,
        bucket: Resource<KvBucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<Option<(String, Vec<u8>)>>, Error>> {
        let store = self.bucket_store(&bucket)?;
        let body = Body::Json(json!({ "get": keys }));
        let v = match self.kv_read(http::Method::POST, store_path(&store, "batch"), body).await {
            Ok(Some(reply)) => match reply.json() {
                Ok(v) => v,
                Err(e) => return Ok(Err(Error::Other(e))),
            },
            Ok(None) => return Ok(Ok(vec![None; keys.len()])),
            Err(e) => return Ok(Err(e)),
        };
        let Some(values) = v["values"].as_array().filter(|a| a.len() == keys.len()) else {
            return Ok(Err(Error::Other(format!("unexpected reply to a batch get: {v}"))));
        };
        Ok(Ok(keys.into_iter().zip(values).map(|(k, v)| from_json(v).map(|v| (k, v))).collect()))
    }

    async fn set_many(
        &mut self,
        bucket: Resource<KvBucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let store = self.bucket_store(&bucket)?;
        let set: Vec<Value> =
            key_values.iter().map(|(k, v)| json!({ "key": k, "value": to_json(v) })).collect();
        let body = Body::Json(json!({ "set": set }));
        Ok(self.kv_call(http::Method::POST, store_path(&store, "batch"), body).await.map(|_| ()))
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<KvBucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let store = self.bucket_store(&bucket)?;
        let body = Body::Json(json!({ "delete": keys }));
        Ok(self.kv_read(http::Method::POST, store_path(&store, "batch"), body).await.map(|_| ()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::fake::{self, error, json as reply};
    use atomics::{Host as _, HostCas as _};
    use batch::Host as _;
    use store::{Host as _, HostBucket as _};

    fn borrow<T: 'static>(r: &Resource<T>) -> Resource<T> {
        Resource::new_borrow(r.rep())
    }

    fn empty_page() -> (u16, Vec<u8>) {
        reply(200, json!({"keys": [], "next": null}))
    }

    #[tokio::test]
    async fn open_checks_the_store_as_the_function_and_passes_default_to_the_api() {
        let (mut host, api) = fake::host(|_| empty_page());
        let bucket = host.open("default".into()).await.unwrap().unwrap();
        host.open("counts".into()).await.unwrap().unwrap();
        let seen = api.requests();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].method, http::Method::GET);
        assert_eq!(seen[0].path_and_query, "/v1/kv/default/keys?limit=1");
        assert_eq!(seen[0].authorization, "Bearer yunf.fn1.mac");
        assert_eq!(seen[1].path_and_query, "/v1/kv/counts/keys?limit=1");
        assert_eq!(host.table.get(&bucket).unwrap().store, "default");
    }

    #[tokio::test]
    async fn names_that_are_not_plain_fail_without_a_request() {
        let (mut host, api) = fake::host(|_| empty_page());
        for name in ["", ".", "..", "a/b", "x?y=1", "a b", "%2e%2e"] {
            assert!(matches!(host.open(name.into()).await.unwrap(), Err(Error::NoSuchStore)), "{name}");
        }
        assert!(api.requests().is_empty());
    }

    #[tokio::test]
    async fn refusals_map_to_the_wit_errors() {
        let (mut host, _) = fake::host(|seen| {
            if seen.path_and_query.starts_with("/v1/kv/theirs/") {
                error(403, "function fn1 was not deployed with --kv theirs")
            } else {
                error(500, "disk on fire")
            }
        });
        assert!(matches!(host.open("theirs".into()).await.unwrap(), Err(Error::AccessDenied)));
        match host.open("x".into()).await.unwrap() {
            Err(Error::Other(m)) => assert_eq!(m, "disk on fire"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn get_set_delete_exists_speak_the_key_routes() {
        let (mut host, api) = fake::host(|seen| match (seen.method.as_str(), seen.path_and_query.as_str()) {
            (_, p) if p.starts_with("/v1/kv/s/keys") => empty_page(),
            ("GET", "/v1/kv/s/key?key=a+b%2Fc%3F") => (200, vec![0, 159, 146, 150]),
            ("GET", "/v1/kv/s/key?key=list") => {
                error(409, "Operation against a key holding the wrong kind of value")
            }
            ("GET", _) => error(404, "no such key"),
            ("PUT", _) => reply(200, json!({"stored": true})),
            ("DELETE", _) => reply(200, json!({"deleted": true})),
            _ => error(500, "unexpected"),
        });
        let b = host.open("s".into()).await.unwrap().unwrap();
        assert_eq!(
            host.get(borrow(&b), "a b/c?".into()).await.unwrap().unwrap(),
            Some(vec![0, 159, 146, 150])
        );
        assert_eq!(host.get(borrow(&b), "missing".into()).await.unwrap().unwrap(), None);
        match host.get(borrow(&b), "list".into()).await.unwrap() {
            Err(Error::Other(m)) => assert!(m.contains("wrong kind"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(host.exists(borrow(&b), "a b/c?".into()).await.unwrap().unwrap());
        assert!(host.exists(borrow(&b), "list".into()).await.unwrap().unwrap());
        assert!(!host.exists(borrow(&b), "missing".into()).await.unwrap().unwrap());
        host.set(borrow(&b), "k".into(), b"v\xff".to_vec()).await.unwrap().unwrap();
        host.delete(borrow(&b), "k".into()).await.unwrap().unwrap();
        let seen = api.requests();
        let put = seen.iter().find(|s| s.method == http::Method::PUT).unwrap();
        assert_eq!((put.path_and_query.as_str(), &put.body[..]), ("/v1/kv/s/key?key=k", &b"v\xff"[..]));
        assert!(
            seen.iter().any(|s| s.method == http::Method::DELETE && s.path_and_query == "/v1/kv/s/key?key=k")
        );
        let rep = b.rep();
        store::HostBucket::drop(&mut host, b).await.unwrap();
        assert!(host.table.get(&Resource::<KvBucket>::new_own(rep)).is_err(), "dropping frees the handle");
    }

    /// A declared store nothing has written yet does not exist in yun: it reads as empty and
    /// the first write makes it.
    #[tokio::test]
    async fn a_store_not_yet_written_reads_as_empty() {
        let (mut host, api) = fake::host(|seen| match seen.method.as_str() {
            "PUT" => reply(200, json!({"stored": true})),
            _ => error(404, "no such store: fresh"),
        });
        let b = host.open("fresh".into()).await.unwrap().unwrap();
        assert_eq!(host.get(borrow(&b), "k".into()).await.unwrap().unwrap(), None);
        assert!(!host.exists(borrow(&b), "k".into()).await.unwrap().unwrap());
        let page = host.list_keys(borrow(&b), None).await.unwrap().unwrap();
        assert_eq!((page.keys.len(), page.cursor), (0, None));
        assert_eq!(
            host.get_many(borrow(&b), vec!["a".into(), "b".into()]).await.unwrap().unwrap(),
            vec![None, None]
        );
        host.delete(borrow(&b), "k".into()).await.unwrap().unwrap();
        host.delete_many(borrow(&b), vec!["k".into()]).await.unwrap().unwrap();
        let cas = host.new(borrow(&b), "k".into()).await.unwrap().unwrap();
        assert_eq!(host.current(borrow(&cas)).await.unwrap().unwrap(), None);
        host.set(borrow(&b), "k".into(), b"v".to_vec()).await.unwrap().unwrap();
        assert_eq!(api.requests().len(), 9);
    }

    #[tokio::test]
    async fn list_keys_pages_with_an_opaque_cursor_even_past_keys_that_are_not_utf8() {
        let (mut host, api) = fake::host(|seen| match seen.path_and_query.as_str() {
            "/v1/kv/s/keys?limit=1" => reply(200, json!({"keys": ["a"], "next": "a"})),
            "/v1/kv/s/keys?limit=1000" => {
                reply(200, json!({"keys": ["a", {"base64": "/w=="}], "next": {"base64": "/w=="}}))
            }
            "/v1/kv/s/keys?after=%FF&limit=1000" => reply(200, json!({"keys": ["z"], "next": null})),
            "/v1/kv/s/keys?after=m&limit=1000" => reply(200, json!({"keys": ["z"], "next": null})),
            other => error(500, other),
        });
        let b = host.open("s".into()).await.unwrap().unwrap();
        let first = host.list_keys(borrow(&b), None).await.unwrap().unwrap();
        assert_eq!(first.keys, vec!["a".to_string()], "the key that is not UTF-8 is left out");
        let cursor = first.cursor.expect("more to come");
        let last = host.list_keys(borrow(&b), Some(cursor)).await.unwrap().unwrap();
        assert_eq!((last.keys, last.cursor), (vec!["z".to_string()], None));
        // A plain key works as a cursor too: listing resumes after it.
        assert_eq!(host.list_keys(borrow(&b), Some("m".into())).await.unwrap().unwrap().keys, vec!["z"]);
        assert_eq!(api.requests().len(), 4);
    }

    #[tokio::test]
    async fn increment_sends_the_delta_and_returns_the_sum() {
        let (mut host, api) = fake::host(|seen| match seen.path_and_query.as_str() {
            "/v1/kv/s/incr?key=n&by=-3" => reply(200, json!({"value": -2})),
            "/v1/kv/s/incr?key=text&by=1" => error(409, "value is not an integer or out of range"),
            _ => empty_page(),
        });
        let b = host.open("s".into()).await.unwrap().unwrap();
        assert_eq!(host.increment(borrow(&b), "n".into(), -3).await.unwrap().unwrap(), -2);
        match host.increment(borrow(&b), "text".into(), 1).await.unwrap() {
            Err(Error::Other(m)) => assert!(m.contains("not an integer"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(api.requests()[1].method, http::Method::POST);
    }

    #[tokio::test]
    async fn cas_swaps_against_what_it_saw_and_a_lost_race_returns_a_fresh_handle() {
        let (mut host, api) = fake::host(|seen| match (seen.method.as_str(), seen.path_and_query.as_str()) {
            ("GET", "/v1/kv/s/key?key=new") => error(404, "no such key"),
            ("GET", "/v1/kv/s/key?key=k") => (200, b"one".to_vec()),
            ("POST", "/v1/kv/s/cas") if seen.json()["key"] == "new" => {
                reply(200, json!({"swapped": true, "current": {"base64": "AP8="}}))
            }
            ("POST", "/v1/kv/s/cas") => reply(200, json!({"swapped": false, "current": "two"})),
            _ => empty_page(),
        });
        let b = host.open("s".into()).await.unwrap().unwrap();
        let cas = host.new(borrow(&b), "new".into()).await.unwrap().unwrap();
        assert_eq!(host.current(borrow(&cas)).await.unwrap().unwrap(), None);
        host.swap(cas, vec![0, 255]).await.unwrap().unwrap();
        let sent = api.requests().last().unwrap().json();
        assert_eq!(sent, json!({"key": "new", "expected": null, "value": {"base64": "AP8="}}));

        let cas = host.new(borrow(&b), "k".into()).await.unwrap().unwrap();
        assert_eq!(host.current(borrow(&cas)).await.unwrap().unwrap(), Some(b"one".to_vec()));
        let Err(CasError::CasFailed(retry)) = host.swap(cas, b"one!".to_vec()).await.unwrap() else {
            panic!("the swap should have lost")
        };
        assert_eq!(
            api.requests().last().unwrap().json(),
            json!({"key": "k", "expected": "one", "value": "one!"})
        );
        assert_eq!(host.current(borrow(&retry)).await.unwrap().unwrap(), Some(b"two".to_vec()));
    }

    #[tokio::test]
    async fn batches_are_one_request_each() {
        let (mut host, api) = fake::host(|seen| {
            let body = if seen.body.is_empty() { json!({}) } else { seen.json() };
            if body.get("get").is_some() {
                reply(200, json!({"values": ["x", null, {"base64": "AQ=="}]}))
            } else if body.get("set").is_some() {
                reply(200, json!({"stored": 2}))
            } else if body.get("delete").is_some() {
                reply(200, json!({"deleted": 1}))
            } else {
                empty_page()
            }
        });
        let b = host.open("s".into()).await.unwrap().unwrap();
        let got = host.get_many(borrow(&b), vec!["a".into(), "b".into(), "c".into()]).await.unwrap().unwrap();
        assert_eq!(got, vec![Some(("a".into(), b"x".to_vec())), None, Some(("c".into(), vec![1]))]);
        let pairs = vec![("a".into(), b"1".to_vec()), ("b".into(), vec![0xff])];
        host.set_many(borrow(&b), pairs).await.unwrap().unwrap();
        host.delete_many(borrow(&b), vec!["a".into(), "b".into()]).await.unwrap().unwrap();
        let seen = api.requests();
        assert!(
            seen[1..].iter().all(|s| s.path_and_query == "/v1/kv/s/batch" && s.method == http::Method::POST)
        );
        assert_eq!(
            seen[2].json(),
            json!({"set": [{"key": "a", "value": "1"}, {"key": "b", "value": {"base64": "/w=="}}]})
        );
        assert_eq!(seen[3].json(), json!({"delete": ["a", "b"]}));
        // A reply that does not answer every key is an error, not a misaligned list.
        let (mut host, _) = fake::host(|_| reply(200, json!({"values": [], "keys": [], "next": null})));
        let b = host.open("s".into()).await.unwrap().unwrap();
        assert!(matches!(host.get_many(borrow(&b), vec!["a".into()]).await.unwrap(), Err(Error::Other(_))));
    }

    #[tokio::test]
    async fn without_yun_s_api_calls_fail_cleanly() {
        let (mut host, _) = fake::host(|_| reply(200, json!({})));
        host.hooks.local = None;
        match host.open("s".into()).await.unwrap() {
            Err(Error::Other(m)) => assert!(m.contains("not available"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
