//! The vocabulary every yun crate shares: function names, revisions, limits, and the error codes
//! users see on the wire.
//!
//! This crate holds data and the pure rules about it (validation, size parsing). It does no I/O
//! and knows nothing about HTTP servers, storage engines or wasmtime.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
pub use yun_traffic::{Rollout, RolloutSpec, RolloutStatus, Split, Sticky, TrafficTarget};

/// A function's name: lowercase DNS label rules, because it doubles as the host label in
/// `NAME.<base-domain>` routing.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FunctionName(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("function name must not be empty")]
    Empty,
    #[error("function name {0:?} is longer than 63 characters")]
    TooLong(String),
    #[error(
        "function name {0:?} is invalid: use lowercase letters, digits and '-', starting with a letter and not ending with '-'"
    )]
    Invalid(String),
}

impl FunctionName {
    pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
        let name = name.into();
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.len() > 63 {
            return Err(NameError::TooLong(name));
        }
        let bytes = name.as_bytes();
        let valid = bytes[0].is_ascii_lowercase()
            && bytes[bytes.len() - 1] != b'-'
            && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
        if !valid {
            return Err(NameError::Invalid(name));
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for FunctionName {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<FunctionName> for String {
    fn from(value: FunctionName) -> Self {
        value.0
    }
}

impl fmt::Display for FunctionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A sha256 digest in lowercase hex: the identity of an uploaded artifact.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

#[derive(Debug, thiserror::Error)]
#[error(
    "{0:?} is not a sha256 digest (expected 64 lowercase hex characters, optionally prefixed by 'sha256:')"
)]
pub struct DigestError(String);

impl Digest {
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        let hex = s.strip_prefix("sha256:").unwrap_or(s);
        if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            Ok(Self(hex.to_string()))
        } else {
            Err(DigestError(s.to_string()))
        }
    }

    /// The bare hex form, safe to use as a file name.
    pub fn hex(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Digest {
    type Error = DigestError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Digest> for String {
    fn from(value: Digest) -> Self {
        format!("sha256:{}", value.0)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.0)
    }
}

/// How instances of a wasm function are used across requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceMode {
    /// A fresh instance and store for every request; nothing survives between requests.
    PerRequest,
    /// An instance serves requests one after another while warm, like a warm Lambda
    /// environment. The default: interpreted guests (JavaScript, Python) pay milliseconds per
    /// instantiation, which reuse pays once.
    #[default]
    Reuse,
}

impl InstanceMode {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceMode::PerRequest => "per-request",
            InstanceMode::Reuse => "reuse",
        }
    }
}

impl std::str::FromStr for InstanceMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "per-request" => Ok(Self::PerRequest),
            "reuse" => Ok(Self::Reuse),
            other => Err(format!("unknown instance mode {other:?}: expected per-request or reuse")),
        }
    }
}

pub const DEFAULT_MEMORY_BYTES: u64 = 128 * 1024 * 1024;
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
pub const DEFAULT_MAX_BODY_BYTES: u64 = 6 * 1024 * 1024;
/// Upper bounds a deploy may ask for; they keep one function from reserving the whole host.
pub const MAX_MEMORY_BYTES: u64 = 4 * 1024 * 1024 * 1024;
pub const MAX_TIMEOUT_MS: u64 = 15 * 60 * 1000;
pub const MAX_BODY_BYTES: u64 = 1024 * 1024 * 1024;
pub const MAX_ENV_VARS: usize = 256;
pub const MAX_ENV_BYTES: usize = 64 * 1024;

/// Per-function limits enforced on every invocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub memory_bytes: u64,
    pub timeout_ms: u64,
    pub max_body_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: DEFAULT_MEMORY_BYTES,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// What a deploy asks for: everything that makes up an immutable revision except its number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevisionSpec {
    pub artifact: Digest,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub allow_outbound: Vec<String>,
    #[serde(default)]
    pub private: bool,
    #[serde(default)]
    pub instance: InstanceMode,
    /// Present for a process function (the artifact is a code archive); absent for wasm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessSpec>,
    /// Environment variable → secret name. The revision names its secrets; their values are
    /// resolved when an instance starts, so a rotated secret needs no new revision.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, String>,
    /// Buckets of the object store the function uses: a process function gets an S3 endpoint and
    /// a key scoped to them in its environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buckets: Vec<String>,
    /// Key-value stores the function uses (its token reaches them over HTTP and Redis).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kv: Vec<String>,
    /// SQL databases the function uses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sql: Vec<String>,
}

/// How a process function runs and talks to yun.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessSpec {
    pub mode: ProcessMode,
    /// Run with `/bin/sh -c` in the code directory.
    pub command: String,
    /// `http` mode: a path that answers 2xx once the app is ready; without it, readiness is a
    /// TCP connect to `PORT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// `lambda` mode: the handler name given to the runtime client as `_HANDLER`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    /// How long a resident instance may take to become ready.
    #[serde(default = "default_startup_timeout_ms")]
    pub startup_timeout_ms: u64,
    /// How long a resident instance stays up without requests.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
}

fn default_startup_timeout_ms() -> u64 {
    10_000
}

fn default_idle_timeout_ms() -> u64 {
    5 * 60_000
}

/// The process models: resident HTTP server, CGI-style run-once, or AWS Lambda runtime client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProcessMode {
    /// A resident web server on `PORT`, started on demand and stopped when idle.
    Http,
    /// One process per request, CGI/1.1 on stdin/stdout.
    Stdio,
    /// A resident AWS Lambda runtime client talking to yun's Runtime API.
    Lambda,
}

impl ProcessMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessMode::Http => "http",
            ProcessMode::Stdio => "stdio",
            ProcessMode::Lambda => "lambda",
        }
    }
}

impl std::str::FromStr for ProcessMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "http" => Ok(ProcessMode::Http),
            "stdio" => Ok(ProcessMode::Stdio),
            "lambda" => Ok(ProcessMode::Lambda),
            other => Err(format!("unknown process mode {other:?}: expected http, stdio or lambda")),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("memory limit must be between 1 MiB and 4 GiB, got {0} bytes")]
    Memory(u64),
    #[error("timeout must be between 1 ms and 15 min, got {0} ms")]
    Timeout(u64),
    #[error("request body limit must be between 1 byte and 1 GiB, got {0} bytes")]
    Body(u64),
    #[error("too many environment variables: {0} (at most 256)")]
    TooManyEnv(usize),
    #[error("environment variables take {0} bytes (at most 64 KiB)")]
    EnvTooLarge(usize),
    #[error(
        "environment variable name {0:?} is invalid: use letters, digits and '_', not starting with a digit"
    )]
    EnvName(String),
    #[error("environment variable {0:?} has a value containing a NUL byte")]
    EnvValue(String),
    #[error("outbound host {0:?} is invalid: give a host name or host:port, or '*' for any host")]
    Outbound(String),
    #[error("the command must be 1 to 4096 bytes without NUL bytes")]
    Command,
    #[error("the health check path must start with '/' and be at most 1024 bytes, got {0:?}")]
    Health(String),
    #[error("the handler must be 1 to 256 bytes without NUL bytes, got {0:?}")]
    Handler(String),
    #[error("the startup timeout must be between 100 ms and 15 min, got {0} ms")]
    StartupTimeout(u64),
    #[error("the idle timeout must be between 1 s and 24 h, got {0} ms")]
    IdleTimeout(u64),
    #[error("{0}")]
    Scale(String),
    #[error("environment variable {0:?} is set both by --env and from a secret")]
    EnvAndSecret(String),
    #[error("too many secrets: {0} (at most 64)")]
    TooManySecrets(usize),
}

impl RevisionSpec {
    /// Checks everything a client could get wrong, so a bad deploy fails with a 400 instead of
    /// a revision that can never serve.
    pub fn validate(&self) -> Result<(), SpecError> {
        let l = &self.limits;
        if !(1024 * 1024..=MAX_MEMORY_BYTES).contains(&l.memory_bytes) {
            return Err(SpecError::Memory(l.memory_bytes));
        }
        if !(1..=MAX_TIMEOUT_MS).contains(&l.timeout_ms) {
            return Err(SpecError::Timeout(l.timeout_ms));
        }
        if !(1..=MAX_BODY_BYTES).contains(&l.max_body_bytes) {
            return Err(SpecError::Body(l.max_body_bytes));
        }
        if self.env.len() > MAX_ENV_VARS {
            return Err(SpecError::TooManyEnv(self.env.len()));
        }
        let env_bytes: usize = self.env.iter().map(|(k, v)| k.len() + v.len()).sum();
        if env_bytes > MAX_ENV_BYTES {
            return Err(SpecError::EnvTooLarge(env_bytes));
        }
        for (k, v) in &self.env {
            if !valid_env_name(k) {
                return Err(SpecError::EnvName(k.clone()));
            }
            if v.contains('\0') {
                return Err(SpecError::EnvValue(k.clone()));
            }
        }
        if self.secrets.len() > 64 {
            return Err(SpecError::TooManySecrets(self.secrets.len()));
        }
        for k in self.secrets.keys() {
            if !valid_env_name(k) {
                return Err(SpecError::EnvName(k.clone()));
            }
            if self.env.contains_key(k) {
                return Err(SpecError::EnvAndSecret(k.clone()));
            }
        }
        for host in &self.allow_outbound {
            if !valid_outbound(host) {
                return Err(SpecError::Outbound(host.clone()));
            }
        }
        if let Some(p) = &self.process {
            if p.command.is_empty() || p.command.len() > 4096 || p.command.contains('\0') {
                return Err(SpecError::Command);
            }
            if let Some(h) = &p.health
                && (!h.starts_with('/') || h.len() > 1024 || h.contains(['\0', ' ', '\r', '\n']))
            {
                return Err(SpecError::Health(h.clone()));
            }
            if let Some(h) = &p.handler
                && (h.is_empty() || h.len() > 256 || h.contains('\0'))
            {
                return Err(SpecError::Handler(h.clone()));
            }
            if !(100..=MAX_TIMEOUT_MS).contains(&p.startup_timeout_ms) {
                return Err(SpecError::StartupTimeout(p.startup_timeout_ms));
            }
            if !(1000..=24 * 3600 * 1000).contains(&p.idle_timeout_ms) {
                return Err(SpecError::IdleTimeout(p.idle_timeout_ms));
            }
        }
        Ok(())
    }
}

/// Letters, digits and '_', not starting with a digit: what every shell and runtime accepts.
pub fn valid_env_name(k: &str) -> bool {
    let first_ok = k.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    first_ok && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn valid_outbound(host: &str) -> bool {
    if host == "*" {
        return true;
    }
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok());
    let name = name.strip_prefix("*.").unwrap_or(name);
    port_ok
        && !name.is_empty()
        && name.len() <= 253
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// An immutable revision of a function.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    pub function: FunctionName,
    pub number: u64,
    pub spec: RevisionSpec,
    /// Milliseconds since the Unix epoch.
    pub created_at_ms: u64,
}

/// A function: a name, its revisions, and how its traffic is divided among them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Function {
    pub name: FunctionName,
    pub latest_revision: u64,
    /// The stable revision: the one all traffic went to last (during a split or a rollout, the
    /// one being moved away from). `yun rollback` returns here.
    pub active_revision: u64,
    /// The stable revision before `active_revision`: where `yun rollback` goes when nothing is
    /// in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_revision: Option<u64>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    /// How it scales; it belongs to the function, so it holds across deploys.
    #[serde(default)]
    pub scale: ScaleSpec,
    /// How requests divide among revisions; absent means all go to `active_revision` (records
    /// written before traffic splitting existed read this way too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<Split>,
    /// What keeps one client on one revision while traffic is split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky: Option<Sticky>,
    /// Named revisions, each with its own URL.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, u64>,
    /// The latest gradual rollout, in progress or ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// How its asynchronous invocations are retried and where their results go.
    #[serde(default, rename = "async", skip_serializing_if = "AsyncSpec::is_default")]
    pub asynchronous: AsyncSpec,
    /// Queues it consumes and schedules it runs on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<Trigger>,
}

/// Where an asynchronous invocation's outcome is sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Destination {
    /// Invoked asynchronously with the outcome as its body.
    Function(FunctionName),
    Queue(String),
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Function(n) => write!(f, "function:{n}"),
            Destination::Queue(q) => write!(f, "queue:{q}"),
        }
    }
}

impl std::str::FromStr for Destination {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some(("function", n)) => {
                FunctionName::new(n).map(Destination::Function).map_err(|e| e.to_string())
            }
            Some(("queue", q)) if !q.is_empty() => Ok(Destination::Queue(q.to_string())),
            _ => Err(format!("{s:?} is not a destination: use function:NAME or queue:NAME")),
        }
    }
}

pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
pub const DEFAULT_MAX_EVENT_AGE_MS: u64 = 6 * 3600 * 1000;

/// Retries and destinations of a function's asynchronous invocations (Lambda's
/// `EventInvokeConfig`, without its cap of two retries).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsyncSpec {
    /// Attempts in all, the first included.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// An event older than this is not tried again.
    #[serde(default = "default_max_age")]
    pub max_age_ms: u64,
    /// The first retry's delay; each next one doubles (with jitter), up to 5 minutes.
    #[serde(default = "default_retry_base")]
    pub retry_base_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_success: Option<Destination>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<Destination>,
}

fn default_attempts() -> u32 {
    DEFAULT_MAX_ATTEMPTS
}
fn default_max_age() -> u64 {
    DEFAULT_MAX_EVENT_AGE_MS
}
fn default_retry_base() -> u64 {
    1000
}

impl Default for AsyncSpec {
    fn default() -> Self {
        AsyncSpec {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            max_age_ms: DEFAULT_MAX_EVENT_AGE_MS,
            retry_base_ms: default_retry_base(),
            on_success: None,
            on_failure: None,
        }
    }
}

impl AsyncSpec {
    pub fn is_default(&self) -> bool {
        *self == AsyncSpec::default()
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(1..=100).contains(&self.max_attempts) {
            return Err(format!("max attempts must be 1 to 100, got {}", self.max_attempts));
        }
        if !(60_000..=14 * 24 * 3600 * 1000).contains(&self.max_age_ms) {
            return Err(format!("the max event age must be 1 min to 14 days, got {} ms", self.max_age_ms));
        }
        if !(10..=300_000).contains(&self.retry_base_ms) {
            return Err(format!("the retry delay must be 10 ms to 5 min, got {} ms", self.retry_base_ms));
        }
        Ok(())
    }
}

/// Something that invokes a function besides a request: a queue it consumes, or a schedule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Trigger {
    Queue {
        /// Names the trigger within its function.
        id: String,
        queue: String,
        /// Messages per invocation.
        #[serde(default = "default_batch")]
        batch_size: u32,
        /// How long to wait for a batch to fill once its first message is there.
        #[serde(default)]
        window_ms: u64,
        /// Batches in flight at once.
        #[serde(default = "default_trigger_concurrency")]
        concurrency: u32,
    },
    Cron {
        id: String,
        /// Five fields, or six with seconds first.
        expression: String,
        /// An IANA time zone; UTC when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timezone: Option<String>,
        /// What a tick missed while yun was down does: `run-once` or `skip`.
        #[serde(default = "default_missed")]
        missed: String,
        /// When the schedule was made: ticks before it never fire.
        #[serde(default)]
        created_ms: u64,
    },
    /// Changes to a bucket's objects (S3 bucket notifications).
    Storage {
        id: String,
        bucket: String,
        /// S3 event names, as in a bucket notification: `s3:ObjectCreated:*`,
        /// `s3:ObjectRemoved:*`, or one kind (`s3:ObjectCreated:Put`).
        #[serde(default = "default_storage_events")]
        events: Vec<String>,
        /// Only keys starting with this.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
        /// Only keys ending with this.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        suffix: Option<String>,
    },
}

fn default_storage_events() -> Vec<String> {
    vec!["s3:ObjectCreated:*".into(), "s3:ObjectRemoved:*".into()]
}

/// The S3 event kinds a storage trigger can name (with `*` for all of a family).
pub const STORAGE_EVENTS: [&str; 6] = [
    "s3:ObjectCreated:*",
    "s3:ObjectCreated:Put",
    "s3:ObjectCreated:Copy",
    "s3:ObjectCreated:CompleteMultipartUpload",
    "s3:ObjectRemoved:*",
    "s3:ObjectRemoved:Delete",
];

/// `created`, `removed`, `ObjectCreated:Put`, `s3:ObjectRemoved:*` ... as an S3 event name.
pub fn storage_event_name(s: &str) -> Result<String, String> {
    let name = match s.trim() {
        "created" => "s3:ObjectCreated:*".to_string(),
        "removed" => "s3:ObjectRemoved:*".to_string(),
        other if other.starts_with("s3:") => other.to_string(),
        other => format!("s3:{other}"),
    };
    if STORAGE_EVENTS.contains(&name.as_str()) {
        Ok(name)
    } else {
        Err(format!(
            "unknown storage event {s:?}; expected created, removed or one of {}",
            STORAGE_EVENTS.join(", ")
        ))
    }
}

impl Trigger {
    /// Whether a storage trigger wants this change (`event` is S3's name without `s3:`, like
    /// `ObjectCreated:Put`).
    pub fn wants_object(&self, bucket_name: &str, event: &str, key: &str) -> bool {
        let Trigger::Storage { bucket, events, prefix, suffix, .. } = self else { return false };
        bucket == bucket_name
            && events.iter().any(|e| {
                let e = e.trim_start_matches("s3:");
                e == event || e.strip_suffix('*').is_some_and(|family| event.starts_with(family))
            })
            && prefix.as_deref().is_none_or(|p| key.starts_with(p))
            && suffix.as_deref().is_none_or(|s| key.ends_with(s))
    }
}

fn default_batch() -> u32 {
    1
}
fn default_trigger_concurrency() -> u32 {
    2
}
fn default_missed() -> String {
    "run-once".into()
}

impl Trigger {
    pub fn id(&self) -> &str {
        match self {
            Trigger::Queue { id, .. } | Trigger::Cron { id, .. } | Trigger::Storage { id, .. } => id,
        }
    }

    /// The shape checks; whether the queue exists or the expression parses is the caller's.
    pub fn validate(&self) -> Result<(), String> {
        validate_tag(self.id()).map_err(|e| e.replace("tag", "trigger id"))?;
        match self {
            Trigger::Queue { batch_size, window_ms, concurrency, .. } => {
                if !(1..=10).contains(batch_size) {
                    return Err(format!("the batch size must be 1 to 10, got {batch_size}"));
                }
                if *window_ms > 300_000 {
                    return Err(format!("the batching window must be at most 5 min, got {window_ms} ms"));
                }
                if !(1..=100).contains(concurrency) {
                    return Err(format!("the trigger's concurrency must be 1 to 100, got {concurrency}"));
                }
            }
            Trigger::Cron { missed, .. } => {
                if missed != "run-once" && missed != "skip" {
                    return Err(format!("missed must be run-once or skip, got {missed:?}"));
                }
            }
            Trigger::Storage { bucket, events, .. } => {
                if bucket.is_empty() {
                    return Err("a storage trigger needs a bucket".into());
                }
                if events.is_empty() {
                    return Err("a storage trigger needs at least one event".into());
                }
                for e in events {
                    if !STORAGE_EVENTS.contains(&e.as_str()) {
                        return Err(format!(
                            "unknown storage event {e:?}; expected one of {}",
                            STORAGE_EVENTS.join(", ")
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

impl Function {
    /// A function's first revision, taking all traffic.
    pub fn new(name: FunctionName, now_ms: u64) -> Self {
        Function {
            name,
            latest_revision: 0,
            active_revision: 0,
            previous_revision: None,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            scale: ScaleSpec::default(),
            traffic: None,
            sticky: None,
            tags: BTreeMap::new(),
            rollout: None,
            asynchronous: AsyncSpec::default(),
            triggers: Vec::new(),
        }
    }

    /// The split in force.
    pub fn split(&self) -> Split {
        self.traffic.clone().unwrap_or_else(|| Split::single(self.active_revision))
    }

    /// Whether revision `n` exists (revisions are numbered from 1 and never removed alone).
    pub fn has_revision(&self, n: u64) -> bool {
        (1..=self.latest_revision).contains(&n)
    }

    /// Every revision something routes to: the split's and the tags'.
    pub fn routed_revisions(&self) -> std::collections::BTreeSet<u64> {
        let mut out: std::collections::BTreeSet<u64> = self.split().revisions().collect();
        out.extend(self.tags.values().copied());
        out
    }

    /// Sends all traffic to `revision`, ending any rollout in progress, and remembers the
    /// stable revision it replaces for `yun rollback`.
    pub fn route_all_to(&mut self, revision: u64) {
        if revision != self.active_revision && self.active_revision != 0 {
            self.previous_revision = Some(self.active_revision);
        }
        self.active_revision = revision;
        self.traffic = None;
    }

    pub fn rollout_in_progress(&self) -> bool {
        self.rollout.as_ref().is_some_and(|r| matches!(r.status, RolloutStatus::Progressing))
    }
}

/// Tag names follow function-name rules (they are host labels in `TAG.NAME.<domain>`).
pub fn validate_tag(tag: &str) -> Result<(), String> {
    FunctionName::new(tag).map(|_| ()).map_err(|e| e.to_string().replace("function name", "tag"))
}

/// How long an idle function's instances stay warm.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeepAliveKind {
    /// A fixed window after the last request.
    #[default]
    Fixed,
    /// Learned from the function's own idle times (the hybrid histogram policy of "Serverless in
    /// the Wild"), falling back to the fixed window until the history is representative.
    Adaptive,
}

impl KeepAliveKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeepAliveKind::Fixed => "fixed",
            KeepAliveKind::Adaptive => "adaptive",
        }
    }
}

impl std::str::FromStr for KeepAliveKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fixed" => Ok(Self::Fixed),
            "adaptive" => Ok(Self::Adaptive),
            other => Err(format!("unknown keep-alive policy {other:?}: expected fixed or adaptive")),
        }
    }
}

/// What `yun scale` sets; an unset field takes the runtime's default (see [`ScaleSettings`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_instances: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_instances: Option<u32>,
    /// Requests one instance serves at once (process functions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// The fixed keep-alive window, and the fallback of the adaptive one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<KeepAliveKind>,
    /// Requests that may wait for an instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queue: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_timeout_ms: Option<u64>,
    /// Process functions: how long an instance scaled in stays frozen (no CPU, memory kept)
    /// before it is stopped; 0 stops it at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freeze_ms: Option<u64>,
    /// The autoscaler's stable window (its panic window is a tenth of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_ms: Option<u64>,
}

/// Scaling with every default filled in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleSettings {
    pub min_instances: u32,
    pub max_instances: u32,
    pub concurrency: u32,
    pub idle_ms: u64,
    pub keep_alive: KeepAliveKind,
    pub max_queue: u32,
    pub queue_timeout_ms: u64,
    pub freeze_ms: u64,
    pub window_ms: u64,
}

pub const MAX_INSTANCES: u32 = 1000;
pub const MAX_CONCURRENCY: u32 = 1000;
pub const MAX_QUEUE: u32 = 10_000;

impl ScaleSpec {
    /// Fields set in `patch` replace these; the others stay.
    pub fn merge(&mut self, patch: &ScaleSpec) {
        fn take<T: Clone>(to: &mut Option<T>, from: &Option<T>) {
            if from.is_some() {
                to.clone_from(from);
            }
        }
        take(&mut self.min_instances, &patch.min_instances);
        take(&mut self.max_instances, &patch.max_instances);
        take(&mut self.concurrency, &patch.concurrency);
        take(&mut self.idle_ms, &patch.idle_ms);
        take(&mut self.keep_alive, &patch.keep_alive);
        take(&mut self.max_queue, &patch.max_queue);
        take(&mut self.queue_timeout_ms, &patch.queue_timeout_ms);
        take(&mut self.freeze_ms, &patch.freeze_ms);
        take(&mut self.window_ms, &patch.window_ms);
    }

    pub fn resolve(&self, defaults: &ScaleSettings) -> ScaleSettings {
        ScaleSettings {
            min_instances: self.min_instances.unwrap_or(defaults.min_instances),
            max_instances: self.max_instances.unwrap_or(defaults.max_instances),
            concurrency: self.concurrency.unwrap_or(defaults.concurrency),
            idle_ms: self.idle_ms.unwrap_or(defaults.idle_ms),
            keep_alive: self.keep_alive.unwrap_or(defaults.keep_alive),
            max_queue: self.max_queue.unwrap_or(defaults.max_queue),
            queue_timeout_ms: self.queue_timeout_ms.unwrap_or(defaults.queue_timeout_ms),
            freeze_ms: self.freeze_ms.unwrap_or(defaults.freeze_ms),
            window_ms: self.window_ms.unwrap_or(defaults.window_ms),
        }
    }

    /// Checks the values that are set, and that min and max agree once defaults fill the rest.
    pub fn validate(&self, defaults: &ScaleSettings) -> Result<(), SpecError> {
        let s = self.resolve(defaults);
        if !(1..=MAX_INSTANCES).contains(&s.max_instances) {
            return Err(SpecError::Scale(format!(
                "max instances must be between 1 and {MAX_INSTANCES}, got {}",
                s.max_instances
            )));
        }
        if s.min_instances > s.max_instances {
            return Err(SpecError::Scale(format!(
                "min instances ({}) must not exceed max instances ({})",
                s.min_instances, s.max_instances
            )));
        }
        if !(1..=MAX_CONCURRENCY).contains(&s.concurrency) {
            return Err(SpecError::Scale(format!(
                "concurrency must be between 1 and {MAX_CONCURRENCY}, got {}",
                s.concurrency
            )));
        }
        if !(1_000..=24 * 3_600_000).contains(&s.idle_ms) {
            return Err(SpecError::Scale(format!("idle must be between 1 s and 24 h, got {} ms", s.idle_ms)));
        }
        if s.max_queue > MAX_QUEUE {
            return Err(SpecError::Scale(format!(
                "the queue may hold at most {MAX_QUEUE} requests, got {}",
                s.max_queue
            )));
        }
        if !(1..=MAX_TIMEOUT_MS).contains(&s.queue_timeout_ms) {
            return Err(SpecError::Scale(format!(
                "the queue timeout must be between 1 ms and 15 min, got {} ms",
                s.queue_timeout_ms
            )));
        }
        if !(6_000..=3_600_000).contains(&s.window_ms) {
            return Err(SpecError::Scale(format!(
                "the autoscaling window must be between 6 s and 1 h, got {} ms",
                s.window_ms
            )));
        }
        if s.freeze_ms > 24 * 3_600_000 {
            return Err(SpecError::Scale(format!("freeze must be at most 24 h, got {} ms", s.freeze_ms)));
        }
        if s.freeze_ms > 24 * 3_600_000 {
            return Err(SpecError::Scale(format!("freeze must be at most 24 h, got {} ms", s.freeze_ms)));
        }
        Ok(())
    }
}

/// The machine-readable code of every error yun returns, with its HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    InvalidComponent,
    /// An uploaded code archive that is corrupt or unsafe to unpack.
    InvalidArchive,
    Unauthorized,
    /// A valid token without the right: a function using a store it was not deployed with.
    Forbidden,
    NotFound,
    MethodNotAllowed,
    /// The change clashes with what exists (a route another route already claims, a secret a
    /// function still uses).
    Conflict,
    PayloadTooLarge,
    /// A conditional write whose condition does not hold.
    PreconditionFailed,
    /// Every instance is busy at the function's maximum and its queue is full.
    TooManyRequests,
    FunctionError,
    MemoryLimitExceeded,
    Timeout,
    Unavailable,
    /// The function's process broke the connection or answered with something that is not HTTP.
    BadGateway,
    Internal,
}

impl ErrorCode {
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::BadRequest | ErrorCode::InvalidComponent | ErrorCode::InvalidArchive => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Conflict => 409,
            ErrorCode::PreconditionFailed => 412,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::TooManyRequests => 429,
            ErrorCode::FunctionError | ErrorCode::MemoryLimitExceeded | ErrorCode::Internal => 500,
            ErrorCode::BadGateway => 502,
            ErrorCode::Unavailable => 503,
            ErrorCode::Timeout => 504,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::InvalidComponent => "invalid_component",
            ErrorCode::InvalidArchive => "invalid_archive",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::PreconditionFailed => "precondition_failed",
            ErrorCode::TooManyRequests => "too_many_requests",
            ErrorCode::FunctionError => "function_error",
            ErrorCode::MemoryLimitExceeded => "memory_limit_exceeded",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::BadGateway => "bad_gateway",
            ErrorCode::Internal => "internal",
        }
    }
}

/// The JSON error body: `{"error":{"code":"...","message":"..."}}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocation_id: Option<String>,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { error: ErrorDetail { code, message: message.into(), invocation_id: None } }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("error bodies always serialize")
    }
}

/// Parses sizes as users write them: `134217728`, `128Mi`, `128MiB`, `1Gi`, `512Ki`, `100M`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("invalid size {s:?}: expected e.g. 128Mi"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KB" | "k" | "kB" => 1000,
        "Ki" | "KiB" => 1 << 10,
        "M" | "MB" => 1000 * 1000,
        "Mi" | "MiB" => 1 << 20,
        "G" | "GB" => 1000 * 1000 * 1000,
        "Gi" | "GiB" => 1 << 30,
        other => return Err(format!("invalid size unit {other:?} in {s:?}: use Ki, Mi or Gi")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("size {s:?} is too large"))
}

/// What one run of a function used, as its runtime measured it (where it can), carried in the
/// response's extensions to the gateway's report.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Used {
    /// The most memory the instance had used by the end of the run.
    pub max_memory_bytes: Option<u64>,
    /// CPU time the instance used during the run.
    pub cpu_ms: Option<f64>,
}

/// Whether `name` is a bucket name by S3's rules: 3-63 characters, lowercase letters, digits,
/// dots and hyphens, starting and ending with a letter or digit, no `..`, `.-` or `-.`, not an
/// IP address, not starting `xn--`.
pub fn is_bucket_name(name: &str) -> bool {
    let b = name.as_bytes();
    let edge = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    (3..=63).contains(&b.len())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
        && edge(b[0])
        && edge(b[b.len() - 1])
        && !name.contains("..")
        && !name.contains(".-")
        && !name.contains("-.")
        && name.parse::<std::net::Ipv4Addr>().is_err()
        && !name.starts_with("xn--")
}

/// Whether `name` names a key-value store or a SQL database: 1-63 of `[a-z0-9-]`, so it is a
/// file name and a Redis user name as it is.
pub fn is_store_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
}

/// The time a UUIDv7 (an invocation id) was made, its first 48 bits, if `id` is one.
pub fn uuid_v7_ms(id: &str) -> Option<u64> {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || hex.as_bytes().get(12) != Some(&b'7') {
        return None;
    }
    u64::from_str_radix(&hex[..12], 16).ok()
}

/// Milliseconds since the Unix epoch, the one timestamp format yun stores.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {

    #[test]
    fn storage_triggers_match_bucket_event_family_prefix_and_suffix() {
        let t = Trigger::Storage {
            id: "thumbs".into(),
            bucket: "photos".into(),
            events: vec![storage_event_name("created").unwrap()],
            prefix: Some("in/".into()),
            suffix: Some(".jpg".into()),
        };
        assert!(t.validate().is_ok());
        assert!(t.wants_object("photos", "ObjectCreated:Put", "in/a.jpg"));
        assert!(t.wants_object("photos", "ObjectCreated:CompleteMultipartUpload", "in/b.jpg"));
        assert!(!t.wants_object("photos", "ObjectRemoved:Delete", "in/a.jpg"));
        assert!(!t.wants_object("other", "ObjectCreated:Put", "in/a.jpg"));
        assert!(!t.wants_object("photos", "ObjectCreated:Put", "out/a.jpg"));
        assert!(!t.wants_object("photos", "ObjectCreated:Put", "in/a.png"));
        let exact = Trigger::Storage {
            id: "d".into(),
            bucket: "photos".into(),
            events: vec![storage_event_name("ObjectRemoved:Delete").unwrap()],
            prefix: None,
            suffix: None,
        };
        assert!(exact.wants_object("photos", "ObjectRemoved:Delete", "x"));
        assert!(!exact.wants_object("photos", "ObjectCreated:Put", "x"));
        assert!(storage_event_name("ObjectCreated:Nope").unwrap_err().contains("unknown storage event"));
        let json: Trigger = serde_json::from_str(r#"{"kind":"storage","id":"a","bucket":"b"}"#).unwrap();
        assert!(json.wants_object("b", "ObjectRemoved:Delete", "k"), "both families by default");
    }

    use super::*;

    #[test]
    fn names_follow_dns_label_rules() {
        assert!(FunctionName::new("hello").is_ok());
        assert!(FunctionName::new("hello-2").is_ok());
        assert_eq!(FunctionName::new(""), Err(NameError::Empty));
        for bad in ["Hello", "2hello", "hello-", "hel_lo", "hel.lo", "héllo"] {
            assert!(matches!(FunctionName::new(bad), Err(NameError::Invalid(_))), "{bad}");
        }
        assert!(matches!(FunctionName::new("a".repeat(64)), Err(NameError::TooLong(_))));
    }

    #[test]
    fn digests_round_trip_with_prefix() {
        let hex = "a".repeat(64);
        let d = Digest::parse(&format!("sha256:{hex}")).unwrap();
        assert_eq!(d.hex(), hex);
        assert_eq!(d.to_string(), format!("sha256:{hex}"));
        assert!(Digest::parse("sha256:xyz").is_err());
        assert!(Digest::parse(&"A".repeat(64)).is_err());
        assert!(Digest::parse("../../etc/passwd").is_err());
    }

    #[test]
    fn sizes_parse_binary_and_decimal_units() {
        assert_eq!(parse_size("128Mi"), Ok(128 << 20));
        assert_eq!(parse_size("128MiB"), Ok(128 << 20));
        assert_eq!(parse_size("1Gi"), Ok(1 << 30));
        assert_eq!(parse_size("100M"), Ok(100_000_000));
        assert_eq!(parse_size("42"), Ok(42));
        assert!(parse_size("12Qi").is_err());
        assert!(parse_size("Mi").is_err());
        assert!(parse_size("99999999999999Gi").is_err());
    }

    fn spec() -> RevisionSpec {
        RevisionSpec {
            artifact: Digest::parse(&"0".repeat(64)).unwrap(),
            limits: Limits::default(),
            env: BTreeMap::new(),
            allow_outbound: vec![],
            private: false,
            instance: InstanceMode::default(),
            process: None,
            secrets: BTreeMap::new(),
            buckets: vec![],
            kv: vec![],
            sql: vec![],
        }
    }

    #[test]
    fn process_specs_are_validated_and_defaulted() {
        let parsed: ProcessSpec = serde_json::from_str(r#"{"mode":"stdio","command":"sh run.sh"}"#).unwrap();
        assert_eq!((parsed.startup_timeout_ms, parsed.idle_timeout_ms), (10_000, 300_000));
        let with = |f: &dyn Fn(&mut ProcessSpec)| {
            let mut s = spec();
            let mut p = parsed.clone();
            f(&mut p);
            s.process = Some(p);
            s.validate()
        };
        assert_eq!(with(&|_| {}), Ok(()));
        assert_eq!(with(&|p| p.command.clear()), Err(SpecError::Command));
        assert_eq!(with(&|p| p.command = "a\0b".into()), Err(SpecError::Command));
        assert_eq!(with(&|p| p.health = Some("health".into())), Err(SpecError::Health("health".into())));
        assert_eq!(with(&|p| p.handler = Some(String::new())), Err(SpecError::Handler(String::new())));
        assert_eq!(with(&|p| p.startup_timeout_ms = 10), Err(SpecError::StartupTimeout(10)));
        assert_eq!(with(&|p| p.idle_timeout_ms = 10), Err(SpecError::IdleTimeout(10)));
        assert_eq!("lambda".parse::<ProcessMode>(), Ok(ProcessMode::Lambda));
        assert!("fargate".parse::<ProcessMode>().is_err());
    }

    #[test]
    fn spec_validation_rejects_what_cannot_serve() {
        assert_eq!(spec().validate(), Ok(()));
        let mut s = spec();
        s.limits.memory_bytes = 10;
        assert_eq!(s.validate(), Err(SpecError::Memory(10)));
        let mut s = spec();
        s.limits.timeout_ms = 0;
        assert_eq!(s.validate(), Err(SpecError::Timeout(0)));
        let mut s = spec();
        s.env.insert("1BAD".into(), "x".into());
        assert_eq!(s.validate(), Err(SpecError::EnvName("1BAD".into())));
        let mut s = spec();
        s.allow_outbound = vec!["example.com:443".into(), "*.example.org".into(), "*".into()];
        assert_eq!(s.validate(), Ok(()));
        s.allow_outbound = vec!["http://example.com".into()];
        assert!(matches!(s.validate(), Err(SpecError::Outbound(_))));
    }

    #[test]
    fn error_codes_map_to_statuses() {
        assert_eq!(ErrorCode::Timeout.status(), 504);
        assert_eq!(ErrorCode::MemoryLimitExceeded.status(), 500);
        let body = ErrorBody::new(ErrorCode::NotFound, "no function named x");
        let json: serde_json::Value = serde_json::from_slice(&body.to_json()).unwrap();
        assert_eq!(json["error"]["code"], "not_found");
    }
}

/// yun's own API as functions reach it from inside: a wasm guest's outbound request to
/// [`LOCAL_HOST`], or a process function's request to its `YUN_API`. The gateway implements it,
/// in-process, so one function invoking another or sending to a queue takes no network hop.
pub mod glob;

pub mod local {
    use std::future::Future;
    use std::pin::Pin;

    use bytes::Bytes;

    /// The host name a wasm guest calls yun by: `http://yun.internal/fn/other/` or
    /// `http://yun.internal/v1/queues/q/messages`.
    pub const LOCAL_HOST: &str = "yun.internal";

    /// The largest request or response body a local call carries (bodies are whole: these
    /// are API calls and function-to-function calls, not bulk transfers).
    pub const MAX_LOCAL_BODY: usize = 6 * 1024 * 1024;

    pub trait LocalApi: Send + Sync + 'static {
        /// Serves `request` made by function `caller`, with the rights of the bearer token it
        /// carries (a function's scoped token, never the administrator's).
        fn call(
            &self,
            caller: &str,
            request: http::Request<Bytes>,
        ) -> Pin<Box<dyn Future<Output = http::Response<Bytes>> + Send + 'static>>;

        /// The bearer token function `function` calls with: it may invoke functions and use
        /// queues and topics, nothing more.
        fn token_for(&self, function: &str) -> String;

        /// How `function`'s revision reaches the object store with a key scoped to `buckets`;
        /// `None` when object storage is off.
        fn storage_for(&self, function: &str, revision: u64, buckets: &[String]) -> Option<StorageAccess> {
            let _ = (function, revision, buckets);
            None
        }

        /// The Redis endpoint's address on the host, when `function` has key-value stores to
        /// use there (with its token, as user `default`: its first store).
        fn redis_for(&self, function: &str) -> Option<std::net::SocketAddr> {
            let _ = function;
            None
        }
    }

    /// The S3 endpoint on the host and the credentials a function signs with.
    #[derive(Clone, Debug)]
    pub struct StorageAccess {
        pub endpoint: std::net::SocketAddr,
        pub access_key_id: String,
        pub secret_access_key: String,
        pub region: String,
    }
}
