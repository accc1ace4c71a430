//! A wasm function that counts hits in a yun KV store (`wasi:keyvalue`) and records each one as
//! a row of a yun SQL database (the SQLite interface of Spin's SDK, `fermyon:spin/sqlite`). No
//! client library and no credentials: the host acts as the function, on the store and database
//! it was deployed with.
//!
//!     yun deploy counter counter_wasm.wasm --kv counts --sql app   # both made by their first write
//!     curl -X POST localhost:8080/fn/counter/incr     # {"count":1}
//!     curl localhost:8080/fn/counter/                 # {"count":1,"rows":1}
//!     curl -X PUT localhost:8080/fn/counter/kv/greeting -d hello
//!     curl localhost:8080/fn/counter/kv/greeting      # hello
//!
//! Every route takes `?store=NAME` and `?db=NAME` (both `default` unless given: the first store
//! and database the function was deployed with).
//!
//! - `POST /incr[?by=N]`: adds N (1) to the counter and inserts a row holding the new count
//! - `GET /`: the counter and the number of rows
//! - `GET|PUT|DELETE /kv/{key}`: one key's value (the request body is the value to store)
//! - `POST /append/{key}`: appends the body to the key's value with compare-and-swap, retrying
//!   when another writer got there first
//! - `GET /keys`: every key, page by page
//! - `GET /many?keys=a,b`: several keys in one call
//! - `POST /sql`: runs the body as one statement and returns its columns and typed rows

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

mod kv {
    wit_bindgen::generate!({
        path: "../../crates/runtime-wasm/wit/keyvalue",
        world: "wasi:keyvalue/imports",
    });
    pub use self::wasi::keyvalue::{atomics, batch, store};
}

mod sql {
    wit_bindgen::generate!({
        path: "../../crates/runtime-wasm/wit/sqlite",
        world: "fermyon:spin/imports",
    });
    pub use self::fermyon::spin::sqlite::*;
}

use kv::atomics::{self, CasError};
use kv::store::{self, Bucket};
use sql::{Connection, Value};

const COUNTER: &str = "hits";

/// What a failed call turns into: an HTTP status and a short machine-readable reason.
struct Failure(u16, String);

impl From<store::Error> for Failure {
    fn from(e: store::Error) -> Self {
        match e {
            store::Error::NoSuchStore => Failure(404, "no-such-store".into()),
            store::Error::AccessDenied => Failure(403, "access-denied".into()),
            store::Error::Other(m) => Failure(500, m),
        }
    }
}

impl From<sql::Error> for Failure {
    fn from(e: sql::Error) -> Self {
        match e {
            sql::Error::NoSuchDatabase => Failure(404, "no-such-database".into()),
            sql::Error::AccessDenied => Failure(403, "access-denied".into()),
            sql::Error::InvalidConnection => Failure(500, "invalid-connection".into()),
            sql::Error::DatabaseFull => Failure(507, "database-full".into()),
            sql::Error::Io(m) => Failure(400, m),
        }
    }
}

struct Counter;

impl Guest for Counter {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_default();
        let (path, query) = path_with_query.split_once('?').unwrap_or((path_with_query.as_str(), ""));
        let param = |name: &str| {
            query.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')).map(str::to_string)
        };
        let store_name = param("store").unwrap_or_else(|| "default".into());
        let db_name = param("db").unwrap_or_else(|| "default".into());
        let method = request.method();
        let result = route(&request, &method, path, &param, &store_name, &db_name);
        let (status, body) = match result {
            Ok(body) => (200, body),
            Err(Failure(status, reason)) => (status, format!("{{\"error\":{}}}", quote(&reason))),
        };
        respond(response_out, status, body.as_bytes());
    }
}

fn route(
    request: &IncomingRequest,
    method: &Method,
    path: &str,
    param: &dyn Fn(&str) -> Option<String>,
    store_name: &str,
    db_name: &str,
) -> Result<String, Failure> {
    match (method, path) {
        (Method::Post, "/incr") => {
            let by = param("by").and_then(|b| b.parse().ok()).unwrap_or(1);
            let bucket = store::open(store_name)?;
            let db = hits_table(db_name)?;
            let count = atomics::increment(&bucket, COUNTER, by)?;
            db.execute("INSERT INTO hits(count) VALUES (?)", &[Value::Integer(count)])?;
            Ok(format!("{{\"count\":{count}}}"))
        }
        (Method::Get, "/" | "") => {
            let bucket = store::open(store_name)?;
            let db = hits_table(db_name)?;
            let count = counter(&bucket)?;
            let rows = db.execute("SELECT COUNT(*) FROM hits", &[])?;
            let rows = match rows.rows.first().and_then(|r| r.values.first()) {
                Some(Value::Integer(n)) => *n,
                _ => return Err(Failure(500, "COUNT(*) returned no integer".into())),
            };
            Ok(format!("{{\"count\":{count},\"rows\":{rows}}}"))
        }
        (Method::Get, "/keys") => {
            let bucket = store::open(store_name)?;
            let (mut keys, mut pages, mut cursor) = (Vec::new(), 0, None);
            loop {
                let page = bucket.list_keys(cursor.as_deref())?;
                pages += 1;
                keys.extend(page.keys);
                cursor = page.cursor;
                if cursor.is_none() {
                    break;
                }
            }
            let keys: Vec<String> = keys.iter().map(|k| quote(k)).collect();
            Ok(format!("{{\"keys\":[{}],\"pages\":{pages}}}", keys.join(",")))
        }
        (Method::Get, "/many") => {
            let bucket = store::open(store_name)?;
            let wanted = param("keys").unwrap_or_default();
            let wanted: Vec<String> =
                wanted.split(',').filter(|k| !k.is_empty()).map(str::to_string).collect();
            let found = kv::batch::get_many(&bucket, &wanted)?;
            let fields: Vec<String> = wanted
                .iter()
                .zip(found)
                .map(|(k, v)| match v {
                    Some((_, v)) => format!("{}:{}", quote(k), quote(&String::from_utf8_lossy(&v))),
                    None => format!("{}:null", quote(k)),
                })
                .collect();
            Ok(format!("{{{}}}", fields.join(",")))
        }
        (Method::Post, "/sql") => {
            let db = Connection::open(db_name)?;
            let statement = String::from_utf8_lossy(&read_body(request)?).into_owned();
            let result = db.execute(&statement, &[])?;
            let columns: Vec<String> = result.columns.iter().map(|c| quote(c)).collect();
            let rows: Vec<String> = result
                .rows
                .iter()
                .map(|r| format!("[{}]", r.values.iter().map(typed).collect::<Vec<_>>().join(",")))
                .collect();
            Ok(format!("{{\"columns\":[{}],\"rows\":[{}]}}", columns.join(","), rows.join(",")))
        }
        (_, _) => {
            if let Some(key) = path.strip_prefix("/kv/") {
                return kv_key(request, method, store_name, key);
            }
            if let (Method::Post, Some(key)) = (method, path.strip_prefix("/append/")) {
                let bucket = store::open(store_name)?;
                return append(&bucket, key, &read_body(request)?);
            }
            Err(Failure(404, format!("no route {path}")))
        }
    }
}

fn kv_key(
    request: &IncomingRequest,
    method: &Method,
    store_name: &str,
    key: &str,
) -> Result<String, Failure> {
    let bucket = store::open(store_name)?;
    match method {
        Method::Get => match bucket.get(key)? {
            Some(value) => Ok(String::from_utf8_lossy(&value).into_owned()),
            None => Err(Failure(404, "no-such-key".into())),
        },
        Method::Put => {
            bucket.set(key, &read_body(request)?)?;
            Ok(format!("{{\"stored\":{}}}", quote(key)))
        }
        Method::Delete => {
            let existed = bucket.exists(key)?;
            bucket.delete(key)?;
            Ok(format!("{{\"deleted\":{existed}}}"))
        }
        _ => Err(Failure(405, "method not allowed".into())),
    }
}

/// Appends with compare-and-swap: a failed swap hands back a handle on the newer value, so
/// concurrent appenders each land exactly once.
fn append(bucket: &Bucket, key: &str, suffix: &[u8]) -> Result<String, Failure> {
    let mut cas = atomics::Cas::new(bucket, key)?;
    for attempt in 1..=1000 {
        let mut value = cas.current()?.unwrap_or_default();
        value.extend_from_slice(suffix);
        match atomics::swap(cas, &value) {
            Ok(()) => {
                let value = String::from_utf8_lossy(&value);
                return Ok(format!("{{\"value\":{},\"attempts\":{attempt}}}", quote(&value)));
            }
            Err(CasError::CasFailed(newer)) => cas = newer,
            Err(CasError::StoreError(e)) => return Err(e.into()),
        }
    }
    Err(Failure(409, "too much contention".into()))
}

fn counter(bucket: &Bucket) -> Result<i64, Failure> {
    match bucket.get(COUNTER)? {
        None => Ok(0),
        Some(v) => String::from_utf8_lossy(&v)
            .parse()
            .map_err(|_| Failure(500, "the counter is not an integer".into())),
    }
}

fn hits_table(db_name: &str) -> Result<Connection, Failure> {
    let db = Connection::open(db_name)?;
    db.execute(
        "CREATE TABLE IF NOT EXISTS hits(id INTEGER PRIMARY KEY, count INTEGER NOT NULL, at TEXT DEFAULT CURRENT_TIMESTAMP)",
        &[],
    )?;
    Ok(db)
}

/// A column value with its type, as JSON: `{"integer": 1}`, `{"blob": [0, 255]}`, `null`.
fn typed(v: &Value) -> String {
    match v {
        Value::Integer(i) => format!("{{\"integer\":{i}}}"),
        Value::Real(r) if r.is_finite() => format!("{{\"real\":{r:?}}}"),
        Value::Real(r) => format!("{{\"real\":{}}}", quote(&r.to_string())),
        Value::Text(s) => format!("{{\"text\":{}}}", quote(s)),
        Value::Blob(b) => {
            format!("{{\"blob\":[{}]}}", b.iter().map(u8::to_string).collect::<Vec<_>>().join(","))
        }
        Value::Null => "null".into(),
    }
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Values are small (this is a counter), so the body is read whole, up to 1 MiB.
fn read_body(request: &IncomingRequest) -> Result<Vec<u8>, Failure> {
    const MAX: usize = 1 << 20;
    let body = request.consume().map_err(|()| Failure(500, "the body was already taken".into()))?;
    let stream = body.stream().map_err(|()| Failure(500, "the body stream was already taken".into()))?;
    let mut out = Vec::new();
    while let Ok(chunk) = stream.blocking_read(64 * 1024) {
        out.extend_from_slice(&chunk);
        if out.len() > MAX {
            return Err(Failure(413, "the body is larger than 1 MiB".into()));
        }
    }
    Ok(out)
}

fn respond(response_out: ResponseOutparam, status: u16, body: &[u8]) {
    let fields = Fields::new();
    let _ = fields.append("content-type", b"application/json");
    let response = OutgoingResponse::new(fields);
    let _ = response.set_status_code(status);
    let out_body = response.body().expect("body is taken only once");
    ResponseOutparam::set(response_out, Ok(response));
    let out = out_body.write().expect("stream is taken only once");
    for chunk in body.chunks(4096) {
        if out.blocking_write_and_flush(chunk).is_err() {
            return;
        }
    }
    drop(out);
    let _ = OutgoingBody::finish(out_body, None);
}

wasip2::http::proxy::export!(Counter);
