//! Key-value stores through yun's API (`/v1/kv/...`): what `yun kv`, process functions (through
//! `YUN_API`) and wasm guests (`wasi:keyvalue`, in-process) use. The admin token reaches every
//! store; a function's token only the stores it was deployed with (`--kv`), checked in
//! `ControlPlane::handle` before any of this runs. A store comes into being on its first write.

use base64::Engine as _;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value as Json, json};
use yun_kv::{Db, Expire, KvError, SetCondition, SetItem, SetOptions};
use yun_types::ErrorCode;

use crate::api::{KvCondition, KvKey, KvList, KvPut};
use crate::{ApiError, ApiResult, ControlPlane, Incoming, bad, body, read_json_body};

/// The largest JSON body of a CAS or batch call: values travel inside it.
const MAX_KV_JSON: usize = 16 << 20;

impl From<KvError> for ApiError {
    fn from(e: KvError) -> Self {
        let code = match e.http_status() {
            404 => ErrorCode::NotFound,
            409 => ErrorCode::Conflict,
            413 => ErrorCode::PayloadTooLarge,
            400 => ErrorCode::BadRequest,
            503 => ErrorCode::Unavailable,
            _ => {
                tracing::error!("kv: {e}");
                ErrorCode::Internal
            }
        };
        ApiError::new(code, e.to_string())
    }
}

/// A value in JSON: a string when the bytes are UTF-8, else `{"base64": "..."}`.
pub(crate) fn to_json(bytes: &[u8]) -> Json {
    match std::str::from_utf8(bytes) {
        Ok(s) => Json::String(s.to_owned()),
        Err(_) => json!({ "base64": base64::engine::general_purpose::STANDARD.encode(bytes) }),
    }
}

/// The inverse of [`to_json`]; `what` names the field in errors.
pub(crate) fn from_json(v: &Json, what: &str) -> Result<Bytes, ApiError> {
    match v {
        Json::String(s) => Ok(Bytes::copy_from_slice(s.as_bytes())),
        Json::Object(m) if m.len() == 1 && m.get("base64").is_some_and(Json::is_string) => {
            let b64 = m["base64"].as_str().expect("checked");
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map(Bytes::from)
                .map_err(|e| bad(format!("{what}: invalid base64: {e}")))
        }
        _ => Err(bad(format!("{what} must be a string or {{\"base64\": \"...\"}}"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewStore {
    #[serde(default)]
    changes: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Cas {
    key: Json,
    /// `null`: swap only if the key is absent.
    expected: Json,
    value: Json,
    #[serde(default)]
    ttl_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchItem {
    key: Json,
    value: Json,
    #[serde(default)]
    ttl_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    #[serde(default)]
    get: Option<Vec<Json>>,
    #[serde(default)]
    set: Option<Vec<BatchItem>>,
    #[serde(default)]
    delete: Option<Vec<Json>>,
}

fn ttl(ms: Option<u64>) -> Result<Option<std::time::Duration>, ApiError> {
    match ms {
        Some(0) => Err(bad("ttl_ms must be more than zero")),
        other => Ok(other.map(std::time::Duration::from_millis)),
    }
}

impl ControlPlane {
    /// The store a Redis client may use with `token` (`AUTH [store] token`): the admin token
    /// any store (`default` without a name), a function's token the stores it was deployed
    /// with (its first without a name). The store is made on first use.
    pub fn redis_store(&self, user: Option<&str>, token: &str) -> Option<String> {
        let store = if self.auth.is_admin(token) {
            user.unwrap_or("default").to_string()
        } else {
            let function = self.auth.function_of_token(token)?;
            self.resolve_declared(&function, user, |s| &s.kv)?
        };
        yun_types::is_store_name(&store).then_some(store)
    }

    /// Whether `function`'s routed revisions declare key-value stores.
    pub fn uses_kv(&self, function: &str) -> bool {
        !self.declared(function, |s| &s.kv).is_empty()
    }

    fn kv(&self) -> Result<&yun_kv::Kv, ApiError> {
        self.kv.as_ref().ok_or_else(|| ApiError::new(ErrorCode::Unavailable, "the key-value service is off"))
    }

    /// A store's database; a write makes a missing store.
    async fn kv_db(&self, store: &str, db: u8, create: bool) -> Result<Db, ApiError> {
        let kv = self.kv()?;
        yun_kv::validate_store_name(store)?;
        match kv.db(store, db.into()) {
            Err(KvError::NoSuchStore(_)) if create => {
                match kv.create_store(store, false).await {
                    Ok(()) | Err(KvError::StoreExists(_)) => {}
                    Err(e) => return Err(e.into()),
                }
                Ok(kv.db(store, db.into())?)
            }
            other => Ok(other?),
        }
    }

    pub(crate) fn list_kv_stores(&self) -> ApiResult {
        let stores: Vec<_> = self
            .kv()?
            .stores()
            .into_iter()
            .map(|s| {
                json!({ "name": s.name, "keys": s.keys, "bytes": s.bytes, "changes": s.changes, "created_ms": s.created_ms })
            })
            .collect();
        Ok(body::json(200, &json!({ "stores": stores })))
    }

    pub(crate) async fn create_kv_store(&self, store: &str, incoming: Incoming) -> ApiResult {
        let bytes = read_json_body(incoming, self.limits.max_json_bytes).await?;
        let new: NewStore = if bytes.iter().all(u8::is_ascii_whitespace) {
            NewStore { changes: false }
        } else {
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("invalid JSON: {e}")))?
        };
        self.kv()?.create_store(store, new.changes).await?;
        Ok(body::json(201, &json!({ "store": store, "changes": new.changes })))
    }

    pub(crate) async fn delete_kv_store(&self, store: &str) -> ApiResult {
        let kv = self.kv()?;
        let _changing = self.changes.lock().await;
        let users = self.functions_declaring(|s| &s.kv, store)?;
        if !users.is_empty() {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("functions {} use store {store}: deploy them without it first", users.join(", ")),
            ));
        }
        kv.delete_store(store).await?;
        Ok(body::json(200, &json!({ "deleted": store })))
    }

    pub(crate) async fn kv_keys(&self, store: &str, q: &KvList) -> ApiResult {
        let db = self.kv_db(store, q.db, false).await?;
        let page = db.list(Bytes::from(q.prefix.clone()), q.after.clone().map(Bytes::from), q.limit).await?;
        let keys: Vec<_> = page.keys.iter().map(|k| to_json(k)).collect();
        Ok(body::json(200, &json!({ "keys": keys, "next": page.next.as_deref().map(to_json) })))
    }

    pub(crate) async fn kv_get(&self, store: &str, k: &KvKey) -> ApiResult {
        let db = self.kv_db(store, k.db, false).await?;
        let Some(value) = db.get(&k.key).await? else {
            return Err(ApiError::new(ErrorCode::NotFound, "no such key"));
        };
        let mut response = http::Response::builder()
            .status(200)
            .header(http::header::CONTENT_TYPE, "application/octet-stream");
        let ttl = db.pttl(Bytes::from(k.key.clone())).await?;
        if ttl >= 0 {
            response = response.header("x-yun-ttl-ms", ttl.to_string());
        }
        Ok(response.body(body::full(value)).expect("valid response"))
    }

    pub(crate) async fn kv_put(&self, store: &str, p: &KvPut, incoming: Incoming) -> ApiResult {
        self.kv()?;
        let max = yun_kv::DEFAULT_MAX_VALUE_BYTES;
        let value = read_json_body(incoming, max).await.map_err(|e| match e.code {
            ErrorCode::PayloadTooLarge => {
                ApiError::new(ErrorCode::PayloadTooLarge, format!("a value is at most {max} bytes"))
            }
            _ => e,
        })?;
        let db = self.kv_db(store, p.key.db, true).await?;
        let options = SetOptions {
            condition: match p.condition {
                KvCondition::Always => SetCondition::Always,
                KvCondition::Absent => SetCondition::IfAbsent,
                KvCondition::Present => SetCondition::IfExists,
            },
            expire: p.ttl_ms.map(|ms| Expire::Millis(ms.min(i64::MAX as u64) as i64)),
            ..SetOptions::default()
        };
        if db.set_with(Bytes::from(p.key.key.clone()), Bytes::from(value), options).await? {
            Ok(body::json(200, &json!({ "stored": true })))
        } else {
            let why =
                if p.condition == KvCondition::Absent { "the key exists" } else { "the key does not exist" };
            Err(ApiError::new(ErrorCode::PreconditionFailed, format!("not stored: {why}")))
        }
    }

    pub(crate) async fn kv_delete(&self, store: &str, k: &KvKey) -> ApiResult {
        let db = self.kv_db(store, k.db, false).await?;
        let deleted = db.delete(Bytes::from(k.key.clone())).await?;
        Ok(body::json(200, &json!({ "deleted": deleted })))
    }

    pub(crate) async fn kv_incr(&self, store: &str, k: &KvKey, by: i64) -> ApiResult {
        let db = self.kv_db(store, k.db, true).await?;
        let value = db.incr_by(Bytes::from(k.key.clone()), by).await?;
        Ok(body::json(200, &json!({ "value": value })))
    }

    pub(crate) async fn kv_cas(&self, store: &str, index: u8, incoming: Incoming) -> ApiResult {
        let bytes = read_json_body(incoming, MAX_KV_JSON).await?;
        let c: Cas = serde_json::from_slice(&bytes).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let key = from_json(&c.key, "key")?;
        let expected = match &c.expected {
            Json::Null => None,
            v => Some(from_json(v, "expected")?),
        };
        let value = from_json(&c.value, "value")?;
        let db = self.kv_db(store, index, true).await?;
        let swapped = db.cas(key.clone(), expected, value, ttl(c.ttl_ms)?).await?;
        // What the key holds now: the caller's retry starts from it.
        let current = db.get(&key).await?;
        Ok(body::json(200, &json!({ "swapped": swapped, "current": current.as_deref().map(to_json) })))
    }

    pub(crate) async fn kv_batch(&self, store: &str, index: u8, incoming: Incoming) -> ApiResult {
        let bytes = read_json_body(incoming, MAX_KV_JSON).await?;
        let b: Batch = serde_json::from_slice(&bytes).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let keys = |list: &[Json]| -> Result<Vec<Bytes>, ApiError> {
            list.iter().enumerate().map(|(i, k)| from_json(k, &format!("key {i}"))).collect()
        };
        match (b.get, b.set, b.delete) {
            (Some(get), None, None) => {
                let db = self.kv_db(store, index, false).await?;
                let values = db.mget(keys(&get)?).await?;
                let values: Vec<_> = values.iter().map(|v| v.as_deref().map(to_json)).collect();
                Ok(body::json(200, &json!({ "values": values })))
            }
            (None, Some(set), None) => {
                let mut items = Vec::with_capacity(set.len());
                for (i, item) in set.iter().enumerate() {
                    items.push(SetItem {
                        key: from_json(&item.key, &format!("set {i}: key"))?,
                        value: from_json(&item.value, &format!("set {i}: value"))?,
                        ttl: ttl(item.ttl_ms)?,
                    });
                }
                let n = items.len();
                let db = self.kv_db(store, index, true).await?;
                db.set_many(items).await?;
                Ok(body::json(200, &json!({ "stored": n })))
            }
            (None, None, Some(delete)) => {
                let db = self.kv_db(store, index, false).await?;
                let n = db.del(keys(&delete)?).await?;
                Ok(body::json(200, &json!({ "deleted": n })))
            }
            _ => Err(bad("a batch is one of {\"get\": [...]}, {\"set\": [...]} or {\"delete\": [...]}")),
        }
    }
}
