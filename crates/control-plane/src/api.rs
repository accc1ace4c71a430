//! The management API's surface: every route in one table, and parsing a request line into a
//! [`Command`]. The checked-in OpenAPI document is tested against [`ROUTES`].

use http::Method;
use yun_types::{ErrorCode, FunctionName};

/// Every management route as `(method, path pattern)`; `{name}` is a function name, `{tag}` a
/// tag, `{secret}` a secret's name.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/status"),
    ("POST", "/v1/artifacts"),
    ("GET", "/v1/functions"),
    ("GET", "/v1/functions/{name}"),
    ("DELETE", "/v1/functions/{name}"),
    ("GET", "/v1/functions/{name}/revisions"),
    ("POST", "/v1/functions/{name}/revisions"),
    ("GET", "/v1/functions/{name}/logs"),
    ("PATCH", "/v1/functions/{name}/scale"),
    ("PUT", "/v1/functions/{name}/traffic"),
    ("POST", "/v1/functions/{name}/rollback"),
    ("PUT", "/v1/functions/{name}/tags/{tag}"),
    ("DELETE", "/v1/functions/{name}/tags/{tag}"),
    ("GET", "/v1/routes"),
    ("POST", "/v1/routes"),
    ("DELETE", "/v1/routes"),
    ("GET", "/v1/secrets"),
    ("PUT", "/v1/secrets/{secret}"),
    ("DELETE", "/v1/secrets/{secret}"),
    ("POST", "/v1/apply"),
    ("PUT", "/v1/functions/{name}/async"),
    ("POST", "/v1/functions/{name}/triggers"),
    ("DELETE", "/v1/functions/{name}/triggers/{id}"),
    ("GET", "/v1/functions/{name}/invocations"),
    ("POST", "/v1/functions/{name}/dlq/redrive"),
    ("GET", "/v1/invocations/{id}"),
    ("GET", "/v1/queues"),
    ("PUT", "/v1/queues/{queue}"),
    ("GET", "/v1/queues/{queue}"),
    ("DELETE", "/v1/queues/{queue}"),
    ("POST", "/v1/queues/{queue}/messages"),
    ("POST", "/v1/queues/{queue}/receive"),
    ("POST", "/v1/queues/{queue}/delete"),
    ("POST", "/v1/queues/{queue}/visibility"),
    ("POST", "/v1/queues/{queue}/purge"),
    ("POST", "/v1/queues/{queue}/redrive"),
    ("GET", "/v1/topics"),
    ("PUT", "/v1/topics/{topic}"),
    ("DELETE", "/v1/topics/{topic}"),
    ("POST", "/v1/topics/{topic}/subscriptions"),
    ("DELETE", "/v1/topics/{topic}/subscriptions"),
    ("POST", "/v1/topics/{topic}/publish"),
    ("GET", "/v1/usage"),
    ("GET", "/v1/storage/buckets"),
    ("PUT", "/v1/storage/buckets/{bucket}"),
    ("DELETE", "/v1/storage/buckets/{bucket}"),
    ("GET", "/v1/storage/buckets/{bucket}/objects"),
    ("PUT", "/v1/storage/buckets/{bucket}/object"),
    ("GET", "/v1/storage/buckets/{bucket}/object"),
    ("DELETE", "/v1/storage/buckets/{bucket}/object"),
    ("GET", "/v1/storage/keys"),
    ("POST", "/v1/storage/keys"),
    ("DELETE", "/v1/storage/keys/{key}"),
    ("GET", "/v1/kv"),
    ("PUT", "/v1/kv/{store}"),
    ("DELETE", "/v1/kv/{store}"),
    ("GET", "/v1/kv/{store}/keys"),
    ("GET", "/v1/kv/{store}/key"),
    ("PUT", "/v1/kv/{store}/key"),
    ("DELETE", "/v1/kv/{store}/key"),
    ("POST", "/v1/kv/{store}/incr"),
    ("POST", "/v1/kv/{store}/cas"),
    ("POST", "/v1/kv/{store}/batch"),
    ("GET", "/v1/sql"),
    ("POST", "/v1/sql/{db}"),
    ("DELETE", "/v1/sql/{db}"),
    ("GET", "/v1/sql/{db}/schema"),
];

/// What a management request asks for, parsed once at the boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Status,
    UploadArtifact,
    ListFunctions,
    DescribeFunction(FunctionName),
    DeleteFunction(FunctionName),
    ListRevisions(FunctionName),
    CreateRevision(FunctionName),
    Logs(FunctionName, LogQuery),
    /// Changes how the function scales (the fields given; the rest stay as they are).
    SetScale(FunctionName),
    /// Divides traffic among revisions, sets stickiness, or starts a rollout.
    SetTraffic(FunctionName),
    Rollback(FunctionName),
    SetTag(FunctionName, String),
    DeleteTag(FunctionName, String),
    ListRoutes,
    AddRoute,
    /// The route with this host (None: any host) and path pattern.
    DeleteRoute {
        host: Option<String>,
        path: String,
    },
    ListSecrets,
    SetSecret(String),
    DeleteSecret(String),
    /// Reconciles the app described in the body: with `dry_run`, only says what would change;
    /// with `prune`, also removes what the description no longer names.
    Apply {
        dry_run: bool,
        prune: bool,
    },
    SetAsync(FunctionName),
    AddTrigger(FunctionName),
    DeleteTrigger(FunctionName, String),
    ListInvocations(FunctionName),
    RedriveFunction(FunctionName),
    Invocation(String),
    ListQueues,
    CreateQueue(String),
    DescribeQueue(String),
    DeleteQueue(String),
    SendMessages(String),
    ReceiveMessages(String),
    DeleteMessages(String),
    ChangeVisibility(String),
    PurgeQueue(String),
    RedriveQueue(String),
    ListTopics,
    CreateTopic(String),
    DeleteTopic(String),
    Subscribe(String),
    Unsubscribe(String),
    Publish(String),
    /// Metered use per function and day.
    Usage,
    ListBuckets,
    CreateBucket(String),
    DeleteBucket(String),
    ListObjects(String, ObjectQuery),
    /// A bucket and an object key (`?key=`; keys have slashes, so they are not path segments).
    PutObject(String, String),
    GetObject(String, String),
    DeleteObject(String, String),
    ListStorageKeys,
    CreateStorageKey,
    DeleteStorageKey(String),
    ListKvStores,
    CreateKvStore(String),
    DeleteKvStore(String),
    /// A store's keys by prefix, a page at a time.
    KvKeys(String, KvList),
    KvGet(String, KvKey),
    KvPut(String, KvPut),
    KvDelete(String, KvKey),
    KvIncr(String, KvKey, i64),
    /// A store and a database index; the JSON body says what.
    KvCas(String, u8),
    KvBatch(String, u8),
    ListDatabases,
    SqlExecute(String),
    DeleteDatabase(String),
    SqlSchema(String),
}

/// One key of a store's database: `?key=K&db=N`. Keys are bytes: percent-encoded in the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvKey {
    pub db: u8,
    pub key: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvList {
    pub db: u8,
    pub prefix: Vec<u8>,
    pub after: Option<Vec<u8>>,
    pub limit: usize,
}

/// `PUT ?key=K[&ttl=30s][&if=absent|present]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvPut {
    pub key: KvKey,
    pub ttl_ms: Option<u64>,
    pub condition: KvCondition,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvCondition {
    Always,
    Absent,
    Present,
}

/// The query of a KV route: only the parameters `allowed` names, each at most once.
struct KvParams {
    db: u8,
    key: Option<Vec<u8>>,
    prefix: Vec<u8>,
    after: Option<Vec<u8>>,
    limit: usize,
    ttl_ms: Option<u64>,
    condition: KvCondition,
    by: i64,
}

fn kv_params(query: Option<&str>, allowed: &[&str]) -> Result<KvParams, ApiError> {
    let bad = |m: String| ApiError::new(ErrorCode::BadRequest, m);
    let mut p = KvParams {
        db: 0,
        key: None,
        prefix: Vec::new(),
        after: None,
        limit: 100,
        ttl_ms: None,
        condition: KvCondition::Always,
        by: 1,
    };
    // Raw bytes: a key need not be UTF-8, so the query is decoded without form_urlencoded's
    // lossy conversion.
    for pair in query.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |v: &str| -> Vec<u8> {
            let v = v.replace('+', " ");
            percent_encoding::percent_decode_str(&v).collect()
        };
        let text = || String::from_utf8(decode(v)).map_err(|_| bad(format!("{k} must be UTF-8")));
        if !allowed.contains(&k) {
            return Err(bad(format!("unknown query parameter {k:?}")));
        }
        match k {
            "db" => {
                p.db = text()?
                    .parse()
                    .ok()
                    .filter(|n| *n < 16)
                    .ok_or_else(|| bad("db must be a database index, 0 to 15".into()))?
            }
            "key" => p.key = Some(decode(v)),
            "prefix" => p.prefix = decode(v),
            "after" => p.after = Some(decode(v)).filter(|a| !a.is_empty()),
            "limit" => {
                p.limit = text()?
                    .parse()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| bad("limit must be 1 to 1000".into()))?
            }
            "ttl" => {
                let t = text()?;
                let d = humantime::parse_duration(&t)
                    .map_err(|_| bad(format!("ttl {t:?} is not a duration such as 30s or 1500ms")))?;
                if d.is_zero() {
                    return Err(bad("ttl must be more than zero".into()));
                }
                p.ttl_ms = Some(d.as_millis().min(u64::MAX as u128) as u64);
            }
            "if" => {
                p.condition = match text()?.as_str() {
                    "absent" => KvCondition::Absent,
                    "present" => KvCondition::Present,
                    other => return Err(bad(format!("if must be absent or present, not {other:?}"))),
                }
            }
            "by" => p.by = text()?.parse().map_err(|_| bad("by must be a 64-bit integer".into()))?,
            _ => unreachable!("allowed names only known parameters"),
        }
    }
    Ok(p)
}

fn kv_key(p: &KvParams) -> Result<KvKey, ApiError> {
    match &p.key {
        Some(k) if !k.is_empty() => Ok(KvKey { db: p.db, key: k.clone() }),
        _ => Err(ApiError::new(ErrorCode::BadRequest, "say which key: ?key=KEY")),
    }
}

/// A listing of a bucket's objects: `?prefix=&delimiter=&start_after=&max=`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectQuery {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub start_after: Option<String>,
    pub max: usize,
}

fn parse_object_query(query: Option<&str>) -> Result<ObjectQuery, ApiError> {
    let mut q = ObjectQuery { max: 1000, ..ObjectQuery::default() };
    for (k, v) in query_pairs(query) {
        match k.as_str() {
            "prefix" => q.prefix = v,
            "delimiter" if !v.is_empty() => q.delimiter = Some(v),
            "delimiter" => {}
            "start_after" => q.start_after = Some(v),
            "max" => {
                q.max = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| ApiError::new(ErrorCode::BadRequest, "max must be 1 to 1000"))?
            }
            _ => return Err(ApiError::new(ErrorCode::BadRequest, format!("unknown query parameter {k:?}"))),
        }
    }
    Ok(q)
}

fn object_key(query: Option<&str>) -> Result<String, ApiError> {
    let mut key = None;
    for (k, v) in query_pairs(query) {
        match k.as_str() {
            "key" => key = Some(v),
            _ => return Err(ApiError::new(ErrorCode::BadRequest, format!("unknown query parameter {k:?}"))),
        }
    }
    key.filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::new(ErrorCode::BadRequest, "say which object: ?key=KEY"))
}

impl Command {
    /// What a function may do with its scoped token (from inside, through yun's local API):
    /// use queues and topics. Functions invoke each other through `/fn/`, not `/v1`.
    pub fn open_to_functions(&self) -> bool {
        matches!(
            self,
            Command::SendMessages(_)
                | Command::ReceiveMessages(_)
                | Command::DeleteMessages(_)
                | Command::ChangeVisibility(_)
                | Command::DescribeQueue(_)
                | Command::Publish(_)
                | Command::ListObjects(..)
                | Command::PutObject(..)
                | Command::GetObject(..)
                | Command::DeleteObject(..)
                | Command::KvKeys(..)
                | Command::KvGet(..)
                | Command::KvPut(..)
                | Command::KvDelete(..)
                | Command::KvIncr(..)
                | Command::KvCas(..)
                | Command::KvBatch(..)
                | Command::SqlExecute(..)
                | Command::SqlSchema(..)
        )
    }

    /// The key-value store a data command is about (a function may only use those it declared).
    pub fn kv_store(&self) -> Option<&str> {
        match self {
            Command::KvKeys(s, _)
            | Command::KvGet(s, _)
            | Command::KvPut(s, _)
            | Command::KvDelete(s, _)
            | Command::KvIncr(s, ..)
            | Command::KvCas(s, _)
            | Command::KvBatch(s, _) => Some(s),
            _ => None,
        }
    }

    /// The SQL database a command is about.
    pub fn sql_db(&self) -> Option<&str> {
        match self {
            Command::SqlExecute(d) | Command::SqlSchema(d) => Some(d),
            _ => None,
        }
    }

    /// Where a function's "default" store or database is resolved to its first declared one.
    pub fn rename_store(&mut self, to: String) {
        match self {
            Command::KvKeys(s, _)
            | Command::KvGet(s, _)
            | Command::KvPut(s, _)
            | Command::KvDelete(s, _)
            | Command::KvIncr(s, ..)
            | Command::KvCas(s, _)
            | Command::KvBatch(s, _)
            | Command::SqlExecute(s)
            | Command::SqlSchema(s) => *s = to,
            _ => {}
        }
    }

    /// The bucket an object command is about (a function may only use those it declared).
    pub fn bucket(&self) -> Option<&str> {
        match self {
            Command::ListObjects(b, _)
            | Command::PutObject(b, _)
            | Command::GetObject(b, _)
            | Command::DeleteObject(b, _) => Some(b),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogQuery {
    /// Only entries at or after this time (ms since the Unix epoch).
    pub since_ms: u64,
    pub limit: usize,
    pub follow: bool,
    /// Only this revision's lines.
    pub revision: Option<u64>,
    /// Only this invocation's lines.
    pub invocation: Option<String>,
    /// Only lines containing this text.
    pub contains: Option<String>,
    /// As server-sent events (`text/event-stream`) rather than JSON lines.
    pub sse: bool,
}

impl LogQuery {
    pub fn matches(&self, e: &yun_telemetry::LogEntry) -> bool {
        self.revision.is_none_or(|r| e.revision == r)
            && self.invocation.as_deref().is_none_or(|i| e.invocation_id == i)
            && self.contains.as_deref().is_none_or(|t| e.line.contains(t))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// The path's `{name}` and the other `{...}` segment, when it matches the pattern.
fn matches<'a>(pattern: &str, path: &'a str) -> Option<(Option<&'a str>, Option<&'a str>)> {
    let (mut name, mut other) = (None, None);
    let mut p = pattern.split('/');
    let mut s = path.split('/');
    loop {
        match (p.next(), s.next()) {
            (None, None) => return Some((name, other)),
            (Some("{name}"), Some(seg)) if !seg.is_empty() => name = Some(seg),
            (Some(a), Some(seg)) if a.starts_with('{') && !seg.is_empty() => other = Some(seg),
            (Some(a), Some(b)) if a == b => {}
            _ => return None,
        }
    }
}

/// Maps a method and path (and query) to a command, or to the 404/405/400 a client should get.
pub fn parse(method: &Method, path: &str, query: Option<&str>) -> Result<Command, ApiError> {
    let path = path.strip_suffix('/').filter(|p| !p.is_empty()).unwrap_or(path);
    let mut path_matched = false;
    for (m, pattern) in ROUTES {
        let Some((name, other)) = matches(pattern, path) else { continue };
        path_matched = true;
        if method.as_str() != *m {
            continue;
        }
        let name = name
            .map(|n| FunctionName::new(n).map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string())))
            .transpose()?;
        let need = || name.clone().expect("pattern has {name}");
        let other = || other.expect("pattern has a second parameter").to_string();
        return Ok(match (*m, *pattern) {
            ("GET", "/v1/status") => Command::Status,
            ("POST", "/v1/artifacts") => Command::UploadArtifact,
            ("GET", "/v1/functions") => Command::ListFunctions,
            ("GET", "/v1/functions/{name}") => Command::DescribeFunction(need()),
            ("DELETE", "/v1/functions/{name}") => Command::DeleteFunction(need()),
            ("GET", "/v1/functions/{name}/revisions") => Command::ListRevisions(need()),
            ("POST", "/v1/functions/{name}/revisions") => Command::CreateRevision(need()),
            ("GET", "/v1/functions/{name}/logs") => Command::Logs(need(), parse_log_query(query)?),
            ("PATCH", "/v1/functions/{name}/scale") => Command::SetScale(need()),
            ("PUT", "/v1/functions/{name}/traffic") => Command::SetTraffic(need()),
            ("POST", "/v1/functions/{name}/rollback") => Command::Rollback(need()),
            ("PUT", "/v1/functions/{name}/tags/{tag}") => Command::SetTag(need(), other()),
            ("DELETE", "/v1/functions/{name}/tags/{tag}") => Command::DeleteTag(need(), other()),
            ("GET", "/v1/routes") => Command::ListRoutes,
            ("POST", "/v1/routes") => Command::AddRoute,
            ("DELETE", "/v1/routes") => parse_route_key(query)?,
            ("GET", "/v1/secrets") => Command::ListSecrets,
            ("PUT", "/v1/secrets/{secret}") => Command::SetSecret(other()),
            ("DELETE", "/v1/secrets/{secret}") => Command::DeleteSecret(other()),
            ("POST", "/v1/apply") => parse_apply(query)?,
            ("PUT", "/v1/functions/{name}/async") => Command::SetAsync(need()),
            ("POST", "/v1/functions/{name}/triggers") => Command::AddTrigger(need()),
            ("DELETE", "/v1/functions/{name}/triggers/{id}") => Command::DeleteTrigger(need(), other()),
            ("GET", "/v1/functions/{name}/invocations") => Command::ListInvocations(need()),
            ("POST", "/v1/functions/{name}/dlq/redrive") => Command::RedriveFunction(need()),
            ("GET", "/v1/invocations/{id}") => Command::Invocation(other()),
            ("GET", "/v1/queues") => Command::ListQueues,
            ("PUT", "/v1/queues/{queue}") => Command::CreateQueue(other()),
            ("GET", "/v1/queues/{queue}") => Command::DescribeQueue(other()),
            ("DELETE", "/v1/queues/{queue}") => Command::DeleteQueue(other()),
            ("POST", "/v1/queues/{queue}/messages") => Command::SendMessages(other()),
            ("POST", "/v1/queues/{queue}/receive") => Command::ReceiveMessages(other()),
            ("POST", "/v1/queues/{queue}/delete") => Command::DeleteMessages(other()),
            ("POST", "/v1/queues/{queue}/visibility") => Command::ChangeVisibility(other()),
            ("POST", "/v1/queues/{queue}/purge") => Command::PurgeQueue(other()),
            ("POST", "/v1/queues/{queue}/redrive") => Command::RedriveQueue(other()),
            ("GET", "/v1/topics") => Command::ListTopics,
            ("PUT", "/v1/topics/{topic}") => Command::CreateTopic(other()),
            ("DELETE", "/v1/topics/{topic}") => Command::DeleteTopic(other()),
            ("POST", "/v1/topics/{topic}/subscriptions") => Command::Subscribe(other()),
            ("DELETE", "/v1/topics/{topic}/subscriptions") => Command::Unsubscribe(other()),
            ("POST", "/v1/topics/{topic}/publish") => Command::Publish(other()),
            ("GET", "/v1/usage") => Command::Usage,
            ("GET", "/v1/storage/buckets") => Command::ListBuckets,
            ("PUT", "/v1/storage/buckets/{bucket}") => Command::CreateBucket(other()),
            ("DELETE", "/v1/storage/buckets/{bucket}") => Command::DeleteBucket(other()),
            ("GET", "/v1/storage/buckets/{bucket}/objects") => {
                Command::ListObjects(other(), parse_object_query(query)?)
            }
            ("PUT", "/v1/storage/buckets/{bucket}/object") => Command::PutObject(other(), object_key(query)?),
            ("GET", "/v1/storage/buckets/{bucket}/object") => Command::GetObject(other(), object_key(query)?),
            ("DELETE", "/v1/storage/buckets/{bucket}/object") => {
                Command::DeleteObject(other(), object_key(query)?)
            }
            ("GET", "/v1/storage/keys") => Command::ListStorageKeys,
            ("POST", "/v1/storage/keys") => Command::CreateStorageKey,
            ("DELETE", "/v1/storage/keys/{key}") => Command::DeleteStorageKey(other()),
            ("GET", "/v1/kv") => Command::ListKvStores,
            ("PUT", "/v1/kv/{store}") => Command::CreateKvStore(other()),
            ("DELETE", "/v1/kv/{store}") => Command::DeleteKvStore(other()),
            ("GET", "/v1/kv/{store}/keys") => {
                let p = kv_params(query, &["db", "prefix", "after", "limit"])?;
                Command::KvKeys(
                    other(),
                    KvList { db: p.db, prefix: p.prefix, after: p.after, limit: p.limit },
                )
            }
            ("GET", "/v1/kv/{store}/key") => {
                Command::KvGet(other(), kv_key(&kv_params(query, &["db", "key"])?)?)
            }
            ("PUT", "/v1/kv/{store}/key") => {
                let p = kv_params(query, &["db", "key", "ttl", "if"])?;
                Command::KvPut(other(), KvPut { key: kv_key(&p)?, ttl_ms: p.ttl_ms, condition: p.condition })
            }
            ("DELETE", "/v1/kv/{store}/key") => {
                Command::KvDelete(other(), kv_key(&kv_params(query, &["db", "key"])?)?)
            }
            ("POST", "/v1/kv/{store}/incr") => {
                let p = kv_params(query, &["db", "key", "by"])?;
                Command::KvIncr(other(), kv_key(&p)?, p.by)
            }
            ("POST", "/v1/kv/{store}/cas") => Command::KvCas(other(), kv_params(query, &["db"])?.db),
            ("POST", "/v1/kv/{store}/batch") => Command::KvBatch(other(), kv_params(query, &["db"])?.db),
            ("GET", "/v1/sql") => Command::ListDatabases,
            ("POST", "/v1/sql/{db}") => Command::SqlExecute(other()),
            ("DELETE", "/v1/sql/{db}") => Command::DeleteDatabase(other()),
            ("GET", "/v1/sql/{db}/schema") => Command::SqlSchema(other()),
            _ => unreachable!("every route in ROUTES has a command"),
        });
    }
    if path_matched {
        Err(ApiError::new(ErrorCode::MethodNotAllowed, format!("{method} is not allowed on {path}")))
    } else {
        Err(ApiError::new(ErrorCode::NotFound, format!("no API route {path}")))
    }
}

fn query_pairs(query: Option<&str>) -> impl Iterator<Item = (String, String)> + '_ {
    form_urlencoded::parse(query.unwrap_or("").as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned()))
}

fn parse_route_key(query: Option<&str>) -> Result<Command, ApiError> {
    let (mut host, mut path) = (None, None);
    for (k, v) in query_pairs(query) {
        match k.as_str() {
            "host" if !v.is_empty() => host = Some(v),
            "host" => {}
            "path" => path = Some(v),
            _ => return Err(ApiError::new(ErrorCode::BadRequest, format!("unknown query parameter {k:?}"))),
        }
    }
    let path = path.ok_or_else(|| {
        ApiError::new(
            ErrorCode::BadRequest,
            "say which route: ?path=PATTERN (and &host=HOST for a host route)",
        )
    })?;
    Ok(Command::DeleteRoute { host, path })
}

fn parse_apply(query: Option<&str>) -> Result<Command, ApiError> {
    let (mut dry_run, mut prune) = (false, false);
    for (k, v) in query_pairs(query) {
        let on = matches!(v.as_str(), "" | "true" | "1");
        match k.as_str() {
            "dry_run" => dry_run = on,
            "prune" => prune = on,
            _ => return Err(ApiError::new(ErrorCode::BadRequest, format!("unknown query parameter {k:?}"))),
        }
    }
    Ok(Command::Apply { dry_run, prune })
}

fn parse_log_query(query: Option<&str>) -> Result<LogQuery, ApiError> {
    let mut q = LogQuery { since_ms: 0, limit: 1000, ..LogQuery::default() };
    for (k, v) in query_pairs(query) {
        let bad = |what: &str| ApiError::new(ErrorCode::BadRequest, format!("invalid {what}: {v:?}"));
        match k.as_str() {
            "since" => {
                q.since_ms = v.parse().map_err(|_| bad("since (milliseconds since the Unix epoch)"))?
            }
            "limit" => q.limit = v.parse().map_err(|_| bad("limit"))?,
            "follow" => q.follow = matches!(v.as_str(), "" | "true" | "1"),
            "revision" => q.revision = Some(v.parse().map_err(|_| bad("revision"))?),
            "invocation" if !v.is_empty() => q.invocation = Some(v),
            "contains" if !v.is_empty() => q.contains = Some(v),
            "invocation" | "contains" => {}
            "format" if v == "sse" => q.sse = true,
            "format" if v == "ndjson" => q.sse = false,
            _ => return Err(ApiError::new(ErrorCode::BadRequest, format!("unknown query parameter {k:?}"))),
        }
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> FunctionName {
        FunctionName::new(n).unwrap()
    }

    #[test]
    fn parses_every_route() {
        assert_eq!(parse(&Method::GET, "/v1/status", None), Ok(Command::Status));
        assert_eq!(parse(&Method::POST, "/v1/artifacts", None), Ok(Command::UploadArtifact));
        assert_eq!(parse(&Method::GET, "/v1/functions/", None), Ok(Command::ListFunctions));
        assert_eq!(
            parse(&Method::GET, "/v1/functions/hello", None),
            Ok(Command::DescribeFunction(name("hello")))
        );
        assert_eq!(
            parse(&Method::DELETE, "/v1/functions/hello", None),
            Ok(Command::DeleteFunction(name("hello")))
        );
        assert_eq!(
            parse(&Method::POST, "/v1/functions/a/revisions", None),
            Ok(Command::CreateRevision(name("a")))
        );
        assert_eq!(
            parse(&Method::GET, "/v1/functions/a/revisions", None),
            Ok(Command::ListRevisions(name("a")))
        );
        assert_eq!(
            parse(&Method::GET, "/v1/functions/a/logs", Some("since=5&follow=true&limit=3")),
            Ok(Command::Logs(
                name("a"),
                LogQuery { since_ms: 5, limit: 3, follow: true, ..LogQuery::default() }
            ))
        );
        assert_eq!(
            parse(&Method::PUT, "/v1/functions/a/tags/prod", None),
            Ok(Command::SetTag(name("a"), "prod".into()))
        );
        assert_eq!(
            parse(&Method::DELETE, "/v1/routes", Some("path=%2Fapi%2Fusers%2F*&host=x.example.com")),
            Ok(Command::DeleteRoute { host: Some("x.example.com".into()), path: "/api/users/*".into() })
        );
        assert_eq!(
            parse(&Method::DELETE, "/v1/routes", Some("path=/a/*")),
            Ok(Command::DeleteRoute { host: None, path: "/a/*".into() })
        );
        assert_eq!(
            parse(&Method::POST, "/v1/apply", Some("dry_run=true&prune")),
            Ok(Command::Apply { dry_run: true, prune: true })
        );
        assert_eq!(parse(&Method::PUT, "/v1/secrets/db-url", None), Ok(Command::SetSecret("db-url".into())));
        assert_eq!(parse(&Method::DELETE, "/v1/routes", None).unwrap_err().code, ErrorCode::BadRequest);
        assert_eq!(
            parse(&Method::POST, "/v1/apply", Some("force=1")).unwrap_err().code,
            ErrorCode::BadRequest
        );
    }

    #[test]
    fn wrong_method_path_and_name_are_distinguished() {
        assert_eq!(parse(&Method::PUT, "/v1/status", None).unwrap_err().code, ErrorCode::MethodNotAllowed);
        assert_eq!(parse(&Method::GET, "/v1/nothing", None).unwrap_err().code, ErrorCode::NotFound);
        assert_eq!(parse(&Method::GET, "/v1/functions/a/b/c", None).unwrap_err().code, ErrorCode::NotFound);
        assert_eq!(
            parse(&Method::GET, "/v1/functions/Bad_Name", None).unwrap_err().code,
            ErrorCode::BadRequest
        );
        assert_eq!(
            parse(&Method::GET, "/v1/functions//revisions", None).unwrap_err().code,
            ErrorCode::NotFound
        );
        assert_eq!(
            parse(&Method::GET, "/v1/functions/a/logs", Some("since=yesterday")).unwrap_err().code,
            ErrorCode::BadRequest
        );
    }

    /// The OpenAPI document a user reads must describe exactly the routes the server serves.
    #[test]
    fn storage_routes_take_the_key_from_the_query() {
        assert_eq!(
            parse(&Method::PUT, "/v1/storage/buckets/b/object", Some("key=a%2Fb%2F..%2Fc")),
            Ok(Command::PutObject("b".into(), "a/b/../c".into()))
        );
        assert_eq!(
            parse(&Method::GET, "/v1/storage/buckets/b/object", None).unwrap_err().code,
            ErrorCode::BadRequest
        );
        assert_eq!(
            parse(&Method::GET, "/v1/storage/buckets/b/objects", Some("prefix=in/&delimiter=/&max=10")),
            Ok(Command::ListObjects(
                "b".into(),
                ObjectQuery { prefix: "in/".into(), delimiter: Some("/".into()), start_after: None, max: 10 }
            ))
        );
        assert_eq!(
            parse(&Method::GET, "/v1/storage/buckets/b/objects", Some("max=0")).unwrap_err().code,
            ErrorCode::BadRequest
        );
        assert_eq!(
            parse(&Method::DELETE, "/v1/storage/keys/AKYN1", None),
            Ok(Command::DeleteStorageKey("AKYN1".into()))
        );
    }

    #[test]
    fn openapi_document_matches_routes() {
        let doc: serde_json::Value = serde_json::from_str(include_str!("../../../docs/openapi.json"))
            .expect("docs/openapi.json parses");
        let mut documented = Vec::new();
        for (path, ops) in doc["paths"].as_object().expect("paths object") {
            for method in ops.as_object().unwrap().keys() {
                if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                    documented.push((method.to_uppercase(), path.clone()));
                }
            }
        }
        documented.sort();
        let mut served: Vec<(String, String)> =
            ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
        served.sort();
        assert_eq!(documented, served);
    }
}
