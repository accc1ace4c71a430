//! The app manifest, `yun.toml`: which functions an app has, how each is built and run, and
//! which custom routes lead to them. `yun apply`, `yun deploy` (without arguments) and
//! `yun build` read it through [`load`].
//!
//! This crate parses and validates the file into typed values ([`Manifest`]), or fails with an
//! error a user can fix at once: every [`ManifestError::Invalid`] names the file, the line and
//! column, and the field, e.g.
//! `yun.toml:9:10: functions.hello.memory: "12 parsecs" is not a size like 128Mi`.
//! It does not build, upload or deploy anything, does not touch the file system beyond reading
//! the manifest (paths are resolved lexically, never checked for existence), and cannot know
//! which functions are already deployed: a route may name a function the manifest does not
//! declare.
//!
//! # Format
//!
//! Unknown keys are errors at every level.
//!
//! ```toml
//! [app]                       # optional
//! name = "shop"               # optional, informational
//!
//! [functions.hello]           # the key is the function's name
//! path = "."                  # the function's project directory, relative to yun.toml (default ".")
//! build = "cargo"             # optional: "cargo" builds a Rust wasi:http component for
//!                             # wasm32-wasip2; any other string is a shell command run in `path`
//! source = "target/wasm32-wasip2/release/hello.wasm"
//!                             # the artifact, relative to `path`: a .wasm component, or for a
//!                             # process function a directory, .tar.gz or .zip; optional only
//!                             # with build = "cargo" (the built component is used)
//! runtime = "wasm"            # "wasm" | "process"; default "process" when `command` is set
//! instance = "reuse"          # wasm only: reuse | per-request
//! memory = "128Mi"            # sizes: 128Mi, 1Gi, 512Ki, 100M, or a number of bytes
//! timeout = "30s"             # durations: 30s, 10m, 1h 30m, 250ms
//! max_body = "6Mi"
//! private = false
//! allow_outbound = ["api.example.com"]
//! buckets = ["uploads"]       # object store buckets the function uses
//! kv = ["sessions"]           # key-value stores it uses (HTTP through YUN_API, Redis)
//! sql = ["shop"]              # SQL databases it uses
//! env = { GREETING = "hello" }
//! secrets = ["DB_PASSWORD"]   # env var DB_PASSWORD gets secret DB_PASSWORD; or a table
//!                             # of env var -> secret name: { DATABASE_URL = "db-url" }
//! tags = { prod = "latest", stable = 3 }   # tag -> revision ref
//! traffic = { latest = 90, stable = 10 }   # revision ref -> percent, summing to 100
//!                                          # (default: all to latest)
//! # rollout = "10m"           # or: move traffic to the new revision step by step over this
//!                             # long (not together with `traffic`)
//! sticky = "cookie:session"   # keep a client on one revision: "header:NAME" or "cookie:NAME"
//!
//! [functions.hello.scale]     # optional, every field optional
//! min = 0
//! max = 10
//! concurrency = 1
//! idle = "60s"
//! keep_alive = "fixed"        # fixed | adaptive
//! queue = 100
//! queue_timeout = "30s"
//! freeze = "0s"
//! window = "60s"
//!
//! [functions.api]             # a process function
//! command = "python3 app.py"  # required for process functions; implies runtime = "process"
//! source = "."                # a directory, .tar.gz or .zip
//! mode = "http"               # http | stdio | lambda (default http)
//! health = "/healthz"         # mode http only
//! # handler = "app.handler"   # mode lambda only
//! startup_timeout = "10s"
//! idle_timeout = "5m"
//!
//! [[routes]]
//! path = "/api/users/*"
//! host = "api.example.com"    # optional
//! function = "users"          # a function of this manifest or one already deployed
//! tag = "prod"                # optional
//! ```
//!
//! A revision ref is `"latest"` (the revision this apply ends with), a revision number (an
//! integer from 1), or, in `traffic`, a tag declared in the same function's `tags`. A tag
//! cannot refer to another tag. Tag names follow the function-name rules (lowercase letters,
//! digits and '-', starting with a letter), and `latest` is reserved.

mod locate;
mod raw;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use yun_types::{FunctionName, InstanceMode, KeepAliveKind, ProcessMode, ScaleSpec};

use raw::{Int, RawAsync, RawFunction, RawManifest, RawQueue, RawRoute, RawScale, RawTrigger, Scalar};

/// A parsed, validated `yun.toml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The manifest's path, as given.
    pub file: PathBuf,
    /// Its parent directory, which relative paths in it start from.
    pub dir: PathBuf,
    /// `app.name`, informational.
    pub app: Option<String>,
    pub functions: BTreeMap<FunctionName, FunctionDef>,
    /// In file order.
    pub routes: Vec<RouteDef>,
    /// `[queues.NAME]`, by name.
    pub queues: BTreeMap<String, QueueDef>,
    /// `[topics.NAME] subscribers = ["queue:Q", "function:F"]`, by name.
    pub topics: BTreeMap<String, Vec<String>>,
}

/// One `[functions.NAME]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionDef {
    /// The project directory: the manifest's directory joined with `path` (default ".").
    pub path: PathBuf,
    pub build: Option<Build>,
    /// The artifact, resolved against [`FunctionDef::path`]. `None` only with [`Build::Cargo`],
    /// where the component cargo builds is the artifact.
    pub source: Option<PathBuf>,
    pub runtime: Runtime,
    /// `Some` exactly when `runtime` is [`Runtime::Process`].
    pub process: Option<ProcessDef>,
    /// Wasm functions only; `None` takes the server's default.
    pub instance: Option<InstanceMode>,
    pub memory_bytes: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub max_body_bytes: Option<u64>,
    pub private: bool,
    pub allow_outbound: Vec<String>,
    /// Object store buckets the function uses (a key scoped to them reaches process functions).
    pub buckets: Vec<String>,
    /// Key-value stores the function uses.
    pub kv: Vec<String>,
    /// SQL databases the function uses.
    pub sql: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Environment variable -> secret name; the array form maps each name to itself.
    pub secrets: BTreeMap<String, String>,
    /// Tag -> the revision it points at; never [`RevisionRef::Tag`].
    pub tags: BTreeMap<String, RevisionRef>,
    /// Revision -> percent, summing to 100. `None` when not given: everything to the new
    /// revision, unless `rollout_ms` says to move there gradually.
    pub traffic: Option<BTreeMap<RevisionRef, u8>>,
    pub rollout_ms: Option<u64>,
    /// As written, e.g. `cookie:session`; checked for the `header:`/`cookie:` prefix and a name.
    pub sticky: Option<String>,
    pub scale: ScaleSpec,
    /// `[functions.NAME.async]`: retries and destinations of its asynchronous invocations.
    pub asynchronous: Option<yun_types::AsyncSpec>,
    /// `[[functions.NAME.triggers]]`: queues it consumes, schedules it runs on.
    pub triggers: Vec<yun_types::Trigger>,
}

/// `[queues.NAME]`: a queue the app needs; unset fields take the server's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueDef {
    pub visibility_ms: Option<u64>,
    pub max_receives: Option<u32>,
    pub dlq: Option<String>,
    pub fifo: bool,
    pub delay_ms: Option<u64>,
    pub retention_ms: Option<u64>,
}

/// How a function's artifact is made before deploying.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Build {
    /// `cargo build --release --target wasm32-wasip2` of a wasi:http component.
    Cargo,
    /// A shell command run in the function's directory.
    Command(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    /// A wasi:http component run in wasmtime.
    Wasm,
    /// A native program run in yun's sandbox.
    Process,
}

impl Runtime {
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Wasm => "wasm",
            Runtime::Process => "process",
        }
    }
}

/// The process-only settings of a function. Unset timeouts take the server's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessDef {
    pub mode: ProcessMode,
    pub command: String,
    pub health: Option<String>,
    pub handler: Option<String>,
    pub startup_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
}

/// A revision as the manifest names it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RevisionRef {
    /// The revision the apply ends with (new if the function changed, else the current one).
    Latest,
    Number(u64),
    /// A tag of the same function.
    Tag(String),
}

impl fmt::Display for RevisionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RevisionRef::Latest => f.write_str("latest"),
            RevisionRef::Number(n) => write!(f, "{n}"),
            RevisionRef::Tag(t) => f.write_str(t),
        }
    }
}

impl std::str::FromStr for RevisionRef {
    type Err = String;
    /// `latest`, a revision number, or a tag name (whether the tag exists is the caller's
    /// question).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "latest" {
            return Ok(RevisionRef::Latest);
        }
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return match s.parse::<u64>() {
                Ok(n) if n >= 1 => Ok(RevisionRef::Number(n)),
                _ => Err(format!("{s:?} is not a revision number: revisions are numbered from 1")),
            };
        }
        check_tag_name(s)?;
        Ok(RevisionRef::Tag(s.to_string()))
    }
}

/// One `[[routes]]` entry. Only its syntax is checked here; the router checks patterns and
/// conflicts with the routes already in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteDef {
    pub host: Option<String>,
    pub path: String,
    pub function: FunctionName,
    pub tag: Option<String>,
}

/// Why a manifest could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("reading {}: {source}", file.display())]
    Read { file: PathBuf, source: std::io::Error },
    /// Bad syntax, a wrong type, an unknown key or an invalid value. `line` and `column` are
    /// 1-based (columns in characters); `field` is the dotted path, e.g.
    /// `functions.hello.memory` or `routes[0].function`.
    #[error("{}:{line}:{column}: {field}: {message}", file.display())]
    Invalid { file: PathBuf, line: usize, column: usize, field: String, message: String },
}

/// Reads and parses the manifest at `path`.
pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ManifestError::Read { file: path.to_path_buf(), source })?;
    parse(&text, path)
}

/// Parses manifest text; `file` is where it came from, for error messages and for resolving
/// relative paths.
pub fn parse(text: &str, file: &Path) -> Result<Manifest, ManifestError> {
    let cx = Cx { text, file };
    let (doc, syntax) = toml::de::DeTable::parse_recoverable(text);
    if let Some(e) = syntax.first() {
        return Err(cx.toml_error(e, doc.get_ref()));
    }
    let raw = RawManifest::deserialize(toml::de::Deserializer::from(doc.clone()))
        .map_err(|e| cx.toml_error(&e, doc.get_ref()))?;
    cx.manifest(raw)
}

/// What every error needs: the text to turn spans into lines, and the file to name.
struct Cx<'a> {
    text: &'a str,
    file: &'a Path,
}

type Result<T, E = ManifestError> = std::result::Result<T, E>;

impl Cx<'_> {
    fn err(&self, span: Range<usize>, field: impl Into<String>, message: impl Into<String>) -> ManifestError {
        let (line, column) = locate::line_col(self.text, span.start);
        ManifestError::Invalid {
            file: self.file.to_path_buf(),
            line,
            column,
            field: field.into(),
            message: message.into(),
        }
    }

    fn toml_error(&self, e: &toml::de::Error, doc: &toml::de::DeTable<'_>) -> ManifestError {
        let span = e.span().unwrap_or(0..0);
        let field = locate::path_at(doc, self.text, span.start).unwrap_or_else(|| "(document)".to_string());
        self.err(span, field, e.message().trim_end())
    }

    fn manifest(&self, raw: RawManifest) -> Result<Manifest> {
        let dir = self.file.parent().map(Path::to_path_buf).unwrap_or_default();
        // File order, so the error reported is the first one a reader meets.
        let mut entries: Vec<_> = raw.functions.into_iter().collect();
        entries.sort_by_key(|(name, _)| name.span().start);
        let mut functions = BTreeMap::new();
        for (name, def) in entries {
            let field = format!("functions.{}", locate::key(name.get_ref()));
            let fname = FunctionName::new(name.get_ref().as_str())
                .map_err(|e| self.err(name.span(), &field, e.to_string()))?;
            let def = self.function(&field, name.span(), def.into_inner(), &dir)?;
            functions.insert(fname, def);
        }
        let mut routes = Vec::with_capacity(raw.routes.len());
        let mut seen = BTreeMap::new();
        for (i, route) in raw.routes.into_iter().enumerate() {
            let field = format!("routes[{i}]");
            let span = route.span();
            let route = self.route(&field, route.into_inner())?;
            let at = (route.host.clone(), route.path.trim_end_matches('/').to_string());
            if let Some(first) = seen.insert(at, i) {
                return Err(self.err(
                    span,
                    &field,
                    format!("routes[{first}] already routes this host and path; remove one of them"),
                ));
            }
            routes.push(route);
        }
        let mut queues = BTreeMap::new();
        for (name, q) in raw.queues {
            let field = format!("queues.{}", locate::key(name.get_ref()));
            check_event_name(name.get_ref()).map_err(|m| self.err(name.span(), &field, m))?;
            queues.insert(name.into_inner(), self.queue(&field, q.into_inner())?);
        }
        let mut topics = BTreeMap::new();
        for (name, t) in raw.topics {
            let field = format!("topics.{}", locate::key(name.get_ref()));
            check_event_name(name.get_ref()).map_err(|m| self.err(name.span(), &field, m))?;
            let mut subscribers = Vec::new();
            for (i, sub) in t.into_inner().subscribers.into_iter().enumerate() {
                let ok =
                    matches!(sub.get_ref().split_once(':'), Some(("queue" | "function", n)) if !n.is_empty());
                if !ok {
                    return Err(self.err(
                        sub.span(),
                        format!("{field}.subscribers[{i}]"),
                        format!(
                            "{:?} is not a subscriber: write \"queue:NAME\" or \"function:NAME\"",
                            sub.get_ref()
                        ),
                    ));
                }
                subscribers.push(sub.into_inner());
            }
            topics.insert(name.into_inner(), subscribers);
        }
        Ok(Manifest {
            file: self.file.to_path_buf(),
            dir,
            app: raw.app.and_then(|a| a.name),
            functions,
            routes,
            queues,
            topics,
        })
    }

    fn queue(&self, prefix: &str, q: RawQueue) -> Result<QueueDef> {
        let sub = |k: &str| format!("{prefix}.{k}");
        Ok(QueueDef {
            visibility_ms: self.duration(&sub("visibility"), q.visibility.as_ref(), 0, 12 * 3_600_000)?,
            max_receives: self.count(&sub("max_receives"), q.max_receives.as_ref(), 1, 1000)?,
            dlq: q.dlq.map(Spanned::into_inner),
            fifo: q.fifo,
            delay_ms: self.duration(&sub("delay"), q.delay.as_ref(), 0, 15 * 60_000)?,
            retention_ms: self.duration(
                &sub("retention"),
                q.retention.as_ref(),
                60_000,
                14 * 24 * 3_600_000,
            )?,
        })
    }

    fn asynchronous(&self, prefix: &str, a: &Spanned<RawAsync>) -> Result<yun_types::AsyncSpec> {
        let sub = |k: &str| format!("{prefix}.{k}");
        let r = a.get_ref();
        let mut spec = yun_types::AsyncSpec::default();
        if let Some(n) = self.count(&sub("max_attempts"), r.max_attempts.as_ref(), 1, 100)? {
            spec.max_attempts = n;
        }
        if let Some(ms) = self.duration(&sub("max_age"), r.max_age.as_ref(), 60_000, 14 * 24 * 3_600_000)? {
            spec.max_age_ms = ms;
        }
        if let Some(ms) = self.duration(&sub("retry_delay"), r.retry_delay.as_ref(), 10, 300_000)? {
            spec.retry_base_ms = ms;
        }
        for (key, value, slot) in [
            ("on_success", &r.on_success, &mut spec.on_success),
            ("on_failure", &r.on_failure, &mut spec.on_failure),
        ] {
            if let Some(v) = value {
                *slot = Some(v.get_ref().parse().map_err(|e: String| self.err(v.span(), sub(key), e))?);
            }
        }
        Ok(spec)
    }

    fn trigger(&self, prefix: &str, t: &Spanned<RawTrigger>) -> Result<yun_types::Trigger> {
        let sub = |k: &str| format!("{prefix}.{k}");
        let r = t.get_ref();
        let id = r.id.get_ref().clone();
        let storage_keys = [
            ("bucket", r.bucket.is_some()),
            ("events", r.events.is_some()),
            ("prefix", r.prefix.is_some()),
            ("suffix", r.suffix.is_some()),
        ];
        let trigger = match (&r.queue, &r.cron, &r.bucket) {
            (None, None, Some(bucket)) => {
                for (key, set) in [
                    ("batch_size", r.batch_size.is_some()),
                    ("window", r.window.is_some()),
                    ("concurrency", r.concurrency.is_some()),
                    ("timezone", r.timezone.is_some()),
                    ("missed", r.missed.is_some()),
                ] {
                    if set {
                        return Err(self.err(
                            t.span(),
                            sub(key),
                            format!("{key} does not apply to a storage trigger"),
                        ));
                    }
                }
                let events = match &r.events {
                    None => vec!["s3:ObjectCreated:*".to_string(), "s3:ObjectRemoved:*".to_string()],
                    Some(list) => list
                        .get_ref()
                        .iter()
                        .map(|e| yun_types::storage_event_name(e))
                        .collect::<std::result::Result<_, _>>()
                        .map_err(|m| self.err(list.span(), sub("events"), m))?,
                };
                yun_types::Trigger::Storage {
                    id,
                    bucket: bucket.get_ref().clone(),
                    events,
                    prefix: r.prefix.as_ref().map(|p| p.get_ref().clone()),
                    suffix: r.suffix.as_ref().map(|s| s.get_ref().clone()),
                }
            }
            (Some(queue), None, None) => {
                if let Some((key, _)) = storage_keys.iter().find(|(_, set)| *set) {
                    return Err(self.err(t.span(), sub(key), format!("{key} applies to a storage trigger")));
                }
                for (key, set) in [("timezone", r.timezone.is_some()), ("missed", r.missed.is_some())] {
                    if set {
                        return Err(self.err(
                            t.span(),
                            sub(key),
                            format!("{key} applies to a cron trigger, not a queue trigger"),
                        ));
                    }
                }
                yun_types::Trigger::Queue {
                    id,
                    queue: queue.get_ref().clone(),
                    batch_size: self.count(&sub("batch_size"), r.batch_size.as_ref(), 1, 10)?.unwrap_or(1),
                    window_ms: self.duration(&sub("window"), r.window.as_ref(), 0, 300_000)?.unwrap_or(0),
                    concurrency: self
                        .count(&sub("concurrency"), r.concurrency.as_ref(), 1, 100)?
                        .unwrap_or(2),
                }
            }
            (None, Some(cron), None) => {
                if let Some((key, _)) = storage_keys.iter().find(|(_, set)| *set) {
                    return Err(self.err(t.span(), sub(key), format!("{key} applies to a storage trigger")));
                }
                for (key, set) in [
                    ("batch_size", r.batch_size.is_some()),
                    ("window", r.window.is_some()),
                    ("concurrency", r.concurrency.is_some()),
                ] {
                    if set {
                        return Err(self.err(
                            t.span(),
                            sub(key),
                            format!("{key} applies to a queue trigger, not a cron trigger"),
                        ));
                    }
                }
                yun_types::Trigger::Cron {
                    id,
                    expression: cron.get_ref().clone(),
                    timezone: r.timezone.as_ref().map(|z| z.get_ref().clone()),
                    missed: r.missed.as_ref().map_or_else(|| "run-once".to_string(), |m| m.get_ref().clone()),
                    created_ms: 0,
                }
            }
            _ => {
                return Err(self.err(
                    t.span(),
                    prefix,
                    "a trigger has one of `queue = \"NAME\"`, `cron = \"EXPRESSION\"` or `bucket = \"NAME\"`",
                ));
            }
        };
        trigger.validate().map_err(|m| self.err(r.id.span(), sub("id"), m))?;
        Ok(trigger)
    }

    fn function(
        &self,
        prefix: &str,
        name_span: Range<usize>,
        f: RawFunction,
        dir: &Path,
    ) -> Result<FunctionDef> {
        let sub = |k: &str| format!("{prefix}.{k}");

        let path = match &f.path {
            Some(p) if p.get_ref().trim().is_empty() => {
                return Err(self.err(
                    p.span(),
                    sub("path"),
                    "must not be empty; use \".\" for the manifest's directory",
                ));
            }
            Some(p) => dir.join(p.get_ref()),
            None => dir.join("."),
        };

        let build = match &f.build {
            None => None,
            Some(b) if b.get_ref() == "cargo" => Some(Build::Cargo),
            Some(b) if b.get_ref().trim().is_empty() => {
                return Err(self.err(
                    b.span(),
                    sub("build"),
                    "must not be empty: give \"cargo\" or a shell command, or leave `build` out",
                ));
            }
            Some(b) => Some(Build::Command(b.get_ref().clone())),
        };

        let runtime = match &f.runtime {
            None if f.command.is_some() => Runtime::Process,
            None => Runtime::Wasm,
            Some(r) => match r.get_ref().as_str() {
                "wasm" => Runtime::Wasm,
                "process" => Runtime::Process,
                other => {
                    return Err(self.err(
                        r.span(),
                        sub("runtime"),
                        format!("{other:?} is not a runtime: expected \"wasm\" or \"process\""),
                    ));
                }
            },
        };

        let (process, instance) = match runtime {
            Runtime::Wasm => {
                self.reject_process_keys(prefix, &f)?;
                let instance = match &f.instance {
                    None => None,
                    Some(i) => Some(
                        i.get_ref()
                            .parse::<InstanceMode>()
                            .map_err(|e| self.err(i.span(), sub("instance"), e))?,
                    ),
                };
                (None, instance)
            }
            Runtime::Process => {
                if let Some(i) = &f.instance {
                    return Err(self.err(
                        i.span(),
                        sub("instance"),
                        "only wasm functions take `instance`, and this one's runtime is process",
                    ));
                }
                if let Some(b) = &f.build
                    && matches!(build, Some(Build::Cargo))
                {
                    return Err(self.err(
                        b.span(),
                        sub("build"),
                        "build = \"cargo\" builds a wasm component; for a process function give the build command itself, e.g. build = \"cargo build --release\"",
                    ));
                }
                (Some(self.process(prefix, &name_span, &f)?), None)
            }
        };

        let source = match &f.source {
            Some(s) if s.get_ref().trim().is_empty() => {
                return Err(self.err(s.span(), sub("source"), "must not be empty"));
            }
            Some(s) => Some(path.join(s.get_ref())),
            None if build == Some(Build::Cargo) => None,
            None => {
                return Err(self.err(
                    name_span.clone(),
                    sub("source"),
                    "missing: name the artifact to deploy, relative to `path` (a .wasm component, or for a process function a directory, .tar.gz or .zip); only build = \"cargo\" can do without it",
                ));
            }
        };

        let memory_bytes =
            self.size(&sub("memory"), f.memory.as_ref(), 1 << 20, yun_types::MAX_MEMORY_BYTES)?;
        let timeout_ms = self.duration(&sub("timeout"), f.timeout.as_ref(), 1, yun_types::MAX_TIMEOUT_MS)?;
        let max_body_bytes =
            self.size(&sub("max_body"), f.max_body.as_ref(), 1, yun_types::MAX_BODY_BYTES)?;

        let mut allow_outbound = Vec::with_capacity(f.allow_outbound.len());
        for host in &f.allow_outbound {
            let h = host.get_ref().trim();
            if h.is_empty() || h.contains(['/', ' ']) {
                return Err(self.err(
                    host.span(),
                    sub("allow_outbound"),
                    format!(
                        "{:?} is not a host: give a host name or host:port, or \"*\" for any host",
                        host.get_ref()
                    ),
                ));
            }
            allow_outbound.push(h.to_string());
        }
        let mut buckets = Vec::with_capacity(f.buckets.len());
        for b in &f.buckets {
            let name = b.get_ref();
            if !yun_types::is_bucket_name(name) {
                return Err(self.err(
                    b.span(),
                    sub("buckets"),
                    format!(
                        "{name:?} is not a bucket name: 3 to 63 lowercase letters, digits, dots and hyphens, by S3's rules"
                    ),
                ));
            }
            buckets.push(name.clone());
        }
        let stores = |list: &Vec<Spanned<String>>, field: &str, what: &str| {
            let mut out = Vec::with_capacity(list.len());
            for s in list {
                let name = s.get_ref();
                if !yun_types::is_store_name(name) {
                    return Err(self.err(
                        s.span(),
                        sub(field),
                        format!(
                            "{name:?} is not a {what} name: 1 to 63 lowercase letters, digits and hyphens"
                        ),
                    ));
                }
                out.push(name.clone());
            }
            Ok(out)
        };
        let kv = stores(&f.kv, "kv", "key-value store")?;
        let sql = stores(&f.sql, "sql", "database")?;

        let mut env = BTreeMap::new();
        for (k, v) in &f.env {
            let field = format!("{prefix}.env.{}", locate::key(k.get_ref()));
            check_env_name(k.get_ref()).map_err(|m| self.err(k.span(), &field, m))?;
            if v.get_ref().contains('\0') {
                return Err(self.err(v.span(), &field, "the value contains a NUL byte"));
            }
            env.insert(k.get_ref().clone(), v.get_ref().clone());
        }

        let mut secrets = BTreeMap::new();
        if let Some(s) = &f.secrets {
            for (var, name) in &s.get_ref().0 {
                let field = format!("{prefix}.secrets.{}", locate::key(var.get_ref()));
                check_env_name(var.get_ref()).map_err(|m| self.err(var.span(), &field, m))?;
                check_secret_name(name.get_ref()).map_err(|m| self.err(name.span(), &field, m))?;
                if env.contains_key(var.get_ref()) {
                    return Err(self.err(
                        var.span(),
                        &field,
                        format!("{} is set in both `env` and `secrets`; keep one", var.get_ref()),
                    ));
                }
                if secrets.insert(var.get_ref().clone(), name.get_ref().clone()).is_some() {
                    return Err(self.err(var.span(), &field, format!("{} is listed twice", var.get_ref())));
                }
            }
        }

        let tags = self.tags(prefix, &f)?;
        let traffic = self.traffic(prefix, &f, &tags)?;
        let rollout_ms = match (&f.rollout, &f.traffic) {
            (Some(r), Some(_)) => {
                return Err(self.err(
                    r.span(),
                    sub("rollout"),
                    "`rollout` and `traffic` cannot both be set: a rollout moves traffic to the new revision by itself",
                ));
            }
            (r, _) => self.duration(&sub("rollout"), r.as_ref(), 1000, 24 * 3_600_000)?,
        };

        let sticky = match &f.sticky {
            None => None,
            Some(s) => {
                let raw = s.get_ref();
                let name = raw.strip_prefix("header:").or_else(|| raw.strip_prefix("cookie:"));
                match name {
                    Some(n)
                        if !n.is_empty() && !n.contains(|c: char| c.is_whitespace() || c.is_control()) =>
                    {
                        Some(raw.clone())
                    }
                    _ => {
                        return Err(self.err(
                            s.span(),
                            sub("sticky"),
                            format!("{raw:?} is not \"header:NAME\" or \"cookie:NAME\""),
                        ));
                    }
                }
            }
        };

        let scale = match &f.scale {
            None => ScaleSpec::default(),
            Some(s) => self.scale(&sub("scale"), s)?,
        };
        let asynchronous =
            f.asynchronous.as_ref().map(|a| self.asynchronous(&sub("async"), a)).transpose()?;
        let mut triggers = Vec::new();
        for (i, t) in f.triggers.iter().enumerate() {
            let trigger = self.trigger(&format!("{prefix}.triggers[{i}]"), t)?;
            if triggers.iter().any(|o: &yun_types::Trigger| o.id() == trigger.id()) {
                return Err(self.err(
                    t.span(),
                    format!("{prefix}.triggers[{i}].id"),
                    format!("two triggers are named {}", trigger.id()),
                ));
            }
            triggers.push(trigger);
        }

        Ok(FunctionDef {
            path,
            build,
            source,
            runtime,
            process,
            instance,
            memory_bytes,
            timeout_ms,
            max_body_bytes,
            private: f.private,
            allow_outbound,
            buckets,
            kv,
            sql,
            env,
            secrets,
            tags,
            traffic,
            rollout_ms,
            sticky,
            scale,
            asynchronous,
            triggers,
        })
    }

    /// A wasm function given a process setting is most likely a process function missing its
    /// `command` (or with the wrong `runtime`), so the message says how to make it one.
    fn reject_process_keys(&self, prefix: &str, f: &RawFunction) -> Result<()> {
        let spans = [
            ("mode", f.mode.as_ref().map(Spanned::span)),
            ("command", f.command.as_ref().map(Spanned::span)),
            ("health", f.health.as_ref().map(Spanned::span)),
            ("handler", f.handler.as_ref().map(Spanned::span)),
            ("startup_timeout", f.startup_timeout.as_ref().map(Spanned::span)),
            ("idle_timeout", f.idle_timeout.as_ref().map(Spanned::span)),
        ];
        let first = spans.into_iter().filter_map(|(k, s)| s.map(|s| (k, s))).min_by_key(|(_, s)| s.start);
        match first {
            None => Ok(()),
            Some((k, span)) => {
                let hint = if f.runtime.is_some() {
                    "this one has runtime = \"wasm\""
                } else {
                    "this one is wasm because it has no `command`"
                };
                Err(self.err(
                    span,
                    format!("{prefix}.{k}"),
                    format!("only process functions take `{k}`, and {hint}"),
                ))
            }
        }
    }

    fn process(&self, prefix: &str, header: &Range<usize>, f: &RawFunction) -> Result<ProcessDef> {
        let sub = |k: &str| format!("{prefix}.{k}");
        let command = match &f.command {
            None => {
                return Err(self.err(
                    header.clone(),
                    sub("command"),
                    "missing: a process function needs the shell command that starts it, e.g. command = \"python3 app.py\"",
                ));
            }
            Some(c) if c.get_ref().trim().is_empty() => {
                return Err(self.err(c.span(), sub("command"), "must not be empty"));
            }
            Some(c) if c.get_ref().contains('\0') || c.get_ref().len() > 4096 => {
                return Err(self.err(
                    c.span(),
                    sub("command"),
                    "must be at most 4096 bytes without NUL bytes",
                ));
            }
            Some(c) => c.get_ref().clone(),
        };
        let mode = match &f.mode {
            None => ProcessMode::Http,
            Some(m) => m.get_ref().parse::<ProcessMode>().map_err(|e| self.err(m.span(), sub("mode"), e))?,
        };
        let health = match &f.health {
            None => None,
            Some(h) if mode != ProcessMode::Http => {
                return Err(self.err(
                    h.span(),
                    sub("health"),
                    format!(
                        "only mode = \"http\" takes a health check path, and this function's mode is {}",
                        mode.as_str()
                    ),
                ));
            }
            Some(h) if !h.get_ref().starts_with('/') || h.get_ref().contains(char::is_whitespace) => {
                return Err(self.err(
                    h.span(),
                    sub("health"),
                    format!("{:?} is not a path: it must start with '/', e.g. \"/healthz\"", h.get_ref()),
                ));
            }
            Some(h) => Some(h.get_ref().clone()),
        };
        let handler = match &f.handler {
            None => None,
            Some(h) if mode != ProcessMode::Lambda => {
                return Err(self.err(
                    h.span(),
                    sub("handler"),
                    format!(
                        "only mode = \"lambda\" takes a handler, and this function's mode is {}",
                        mode.as_str()
                    ),
                ));
            }
            Some(h) if h.get_ref().is_empty() => {
                return Err(self.err(h.span(), sub("handler"), "must not be empty"));
            }
            Some(h) => Some(h.get_ref().clone()),
        };
        Ok(ProcessDef {
            mode,
            command,
            health,
            handler,
            startup_timeout_ms: self.duration(
                &sub("startup_timeout"),
                f.startup_timeout.as_ref(),
                100,
                yun_types::MAX_TIMEOUT_MS,
            )?,
            idle_timeout_ms: self.duration(
                &sub("idle_timeout"),
                f.idle_timeout.as_ref(),
                1000,
                24 * 3_600_000,
            )?,
        })
    }

    fn tags(&self, prefix: &str, f: &RawFunction) -> Result<BTreeMap<String, RevisionRef>> {
        let mut tags = BTreeMap::new();
        for (name, target) in &f.tags {
            let field = format!("{prefix}.tags.{}", locate::key(name.get_ref()));
            check_tag_name(name.get_ref()).map_err(|m| self.err(name.span(), &field, m))?;
            let to = match target.get_ref() {
                Scalar::Int(n) if *n >= 1 => RevisionRef::Number(*n as u64),
                Scalar::Int(n) => {
                    return Err(self.err(
                        target.span(),
                        &field,
                        format!("{n} is not a revision: revisions are numbered from 1"),
                    ));
                }
                Scalar::Str(s) => match s.parse::<RevisionRef>() {
                    Ok(RevisionRef::Tag(_)) => {
                        return Err(self.err(
                            target.span(),
                            &field,
                            format!("a tag cannot refer to another tag ({s:?}): give \"latest\" or a revision number"),
                        ));
                    }
                    Ok(r) => r,
                    Err(_) => {
                        return Err(self.err(
                            target.span(),
                            &field,
                            format!("{s:?} is not a revision: give \"latest\" or a revision number"),
                        ));
                    }
                },
            };
            tags.insert(name.get_ref().clone(), to);
        }
        Ok(tags)
    }

    fn traffic(
        &self,
        prefix: &str,
        f: &RawFunction,
        tags: &BTreeMap<String, RevisionRef>,
    ) -> Result<Option<BTreeMap<RevisionRef, u8>>> {
        let Some(table) = &f.traffic else { return Ok(None) };
        let mut entries: Vec<_> = table.get_ref().iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        let mut out = BTreeMap::new();
        let mut sum: i64 = 0;
        for (k, percent) in entries {
            let field = format!("{prefix}.traffic.{}", locate::key(k.get_ref()));
            let to = match k.get_ref().parse::<RevisionRef>() {
                Ok(RevisionRef::Tag(t)) if !tags.contains_key(&t) => {
                    return Err(self.err(
                        k.span(),
                        &field,
                        format!("{t:?} is not a tag of this function: declare it in `tags`, or give \"latest\" or a revision number"),
                    ));
                }
                Ok(r) => r,
                Err(e) => return Err(self.err(k.span(), &field, e)),
            };
            let p = percent.get_ref().0;
            if !(0..=100).contains(&p) {
                return Err(self.err(
                    percent.span(),
                    &field,
                    format!("{p} is not a percentage from 0 to 100"),
                ));
            }
            sum += p;
            if out.insert(to.clone(), p as u8).is_some() {
                return Err(self.err(k.span(), &field, format!("revision {to} is given twice")));
            }
        }
        if sum != 100 {
            return Err(self.err(
                table.span(),
                format!("{prefix}.traffic"),
                format!("traffic percentages must add up to 100, got {sum}"),
            ));
        }
        Ok(Some(out))
    }

    fn scale(&self, prefix: &str, s: &RawScale) -> Result<ScaleSpec> {
        let sub = |k: &str| format!("{prefix}.{k}");
        let min_instances = self.count(&sub("min"), s.min.as_ref(), 0, yun_types::MAX_INSTANCES)?;
        let max_instances = self.count(&sub("max"), s.max.as_ref(), 1, yun_types::MAX_INSTANCES)?;
        if let (Some(min), Some(max), Some(at)) = (min_instances, max_instances, &s.min)
            && min > max
        {
            return Err(self.err(at.span(), sub("min"), format!("min ({min}) must not exceed max ({max})")));
        }
        let keep_alive = match &s.keep_alive {
            None => None,
            Some(k) => Some(
                k.get_ref().parse::<KeepAliveKind>().map_err(|e| self.err(k.span(), sub("keep_alive"), e))?,
            ),
        };
        Ok(ScaleSpec {
            min_instances,
            max_instances,
            concurrency: self.count(
                &sub("concurrency"),
                s.concurrency.as_ref(),
                1,
                yun_types::MAX_CONCURRENCY,
            )?,
            idle_ms: self.duration(&sub("idle"), s.idle.as_ref(), 1000, 24 * 3_600_000)?,
            keep_alive,
            max_queue: self.count(&sub("queue"), s.queue.as_ref(), 0, yun_types::MAX_QUEUE)?,
            queue_timeout_ms: self.duration(
                &sub("queue_timeout"),
                s.queue_timeout.as_ref(),
                1,
                yun_types::MAX_TIMEOUT_MS,
            )?,
            freeze_ms: self.duration(&sub("freeze"), s.freeze.as_ref(), 0, 24 * 3_600_000)?,
            window_ms: self.duration(&sub("window"), s.window.as_ref(), 6_000, 3_600_000)?,
        })
    }

    fn route(&self, prefix: &str, r: RawRoute) -> Result<RouteDef> {
        let sub = |k: &str| format!("{prefix}.{k}");
        let function = FunctionName::new(r.function.get_ref().as_str())
            .map_err(|e| self.err(r.function.span(), sub("function"), e.to_string()))?;
        if !r.path.get_ref().starts_with('/') {
            return Err(self.err(
                r.path.span(),
                sub("path"),
                format!(
                    "{:?} is not a path pattern: it must start with '/', e.g. \"/api/*\"",
                    r.path.get_ref()
                ),
            ));
        }
        let host = match &r.host {
            None => None,
            Some(h) if h.get_ref().is_empty() || h.get_ref().contains(['/', ':', ' ']) => {
                return Err(self.err(
                    h.span(),
                    sub("host"),
                    format!(
                        "{:?} is not a host name (no scheme, port or path): e.g. \"api.example.com\"",
                        h.get_ref()
                    ),
                ));
            }
            Some(h) => Some(h.get_ref().to_ascii_lowercase()),
        };
        let tag = match &r.tag {
            None => None,
            Some(t) => {
                check_tag_name(t.get_ref()).map_err(|m| self.err(t.span(), sub("tag"), m))?;
                Some(t.get_ref().clone())
            }
        };
        Ok(RouteDef { host, path: r.path.into_inner(), function, tag })
    }

    fn size(&self, field: &str, v: Option<&Spanned<Scalar>>, min: u64, max: u64) -> Result<Option<u64>> {
        let Some(v) = v else { return Ok(None) };
        let bytes = match v.get_ref() {
            Scalar::Str(s) => yun_types::parse_size(s)
                .map_err(|_| self.err(v.span(), field, format!("{s:?} is not a size like 128Mi")))?,
            Scalar::Int(n) => u64::try_from(*n).map_err(|_| {
                self.err(v.span(), field, format!("{n} is not a size: sizes are not negative"))
            })?,
        };
        if !(min..=max).contains(&bytes) {
            return Err(self.err(
                v.span(),
                field,
                format!(
                    "{} is out of range: it must be between {} and {}",
                    show_size(bytes),
                    show_size(min),
                    show_size(max)
                ),
            ));
        }
        Ok(Some(bytes))
    }

    fn duration(
        &self,
        field: &str,
        v: Option<&Spanned<Scalar>>,
        min_ms: u64,
        max_ms: u64,
    ) -> Result<Option<u64>> {
        let Some(v) = v else { return Ok(None) };
        let ms = match v.get_ref() {
            // A bare number has no obvious unit (seconds? milliseconds?), so none is guessed.
            Scalar::Int(n) => {
                return Err(self.err(
                    v.span(),
                    field,
                    format!("{n} has no unit: write a duration like \"{n}s\" or \"{n}ms\""),
                ));
            }
            Scalar::Str(s) => {
                let d = humantime::parse_duration(s).map_err(|_| {
                    self.err(v.span(), field, format!("{s:?} is not a duration like 30s or 10m"))
                })?;
                u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
            }
        };
        if !(min_ms..=max_ms).contains(&ms) {
            return Err(self.err(
                v.span(),
                field,
                format!(
                    "{} is out of range: it must be between {} and {}",
                    show_ms(ms),
                    show_ms(min_ms),
                    show_ms(max_ms)
                ),
            ));
        }
        Ok(Some(ms))
    }

    fn count(&self, field: &str, v: Option<&Spanned<Int>>, min: u32, max: u32) -> Result<Option<u32>> {
        let Some(v) = v else { return Ok(None) };
        let n = v.get_ref().0;
        match u32::try_from(n) {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(self.err(
                v.span(),
                field,
                format!("{n} is out of range: it must be between {min} and {max}"),
            )),
        }
    }
}

fn show_ms(ms: u64) -> String {
    humantime::format_duration(Duration::from_millis(ms)).to_string()
}

fn show_size(bytes: u64) -> String {
    for (unit, mult) in [("Gi", 1u64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
        if bytes >= mult && bytes.is_multiple_of(mult) {
            return format!("{}{unit}", bytes / mult);
        }
    }
    format!("{bytes} bytes")
}

fn check_env_name(name: &str) -> Result<(), String> {
    let first_ok = name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if first_ok && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not an environment variable name: use letters, digits and '_', not starting with a digit"
        ))
    }
}

/// The secret store's naming rule, checked here so a typo fails before anything is deployed.
fn check_secret_name(name: &str) -> Result<(), String> {
    let ok = (1..=128).contains(&name.len())
        && name.as_bytes()[0].is_ascii_alphabetic()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a secret name: use 1 to 128 letters, digits, '_', '-' and '.', starting with a letter"
        ))
    }
}

/// Tags appear in addresses (`TAG.NAME.<domain>`, `/fn/NAME@TAG`), so they follow the
/// function-name rules; `latest` is reserved for the revision an apply ends with.
fn check_tag_name(name: &str) -> Result<(), String> {
    if name == "latest" {
        return Err("\"latest\" is reserved for the newest revision and cannot be a tag name".to_string());
    }
    FunctionName::new(name).map(drop).map_err(|_| {
        format!(
            "{name:?} is not a tag name: use at most 63 lowercase letters, digits and '-', starting with a letter and not ending with '-'"
        )
    })
}

/// Queue and topic names: what the event store accepts, minus the platform's own.
fn check_event_name(name: &str) -> Result<(), String> {
    if name.starts_with("yun.") {
        return Err("names starting with yun. are the platform's own".into());
    }
    let ok = !name.is_empty()
        && name.len() <= 80
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok { Ok(()) } else { Err(format!("{name:?} is not a name: 1 to 80 letters, digits, '_', '-' or '.'")) }
}
