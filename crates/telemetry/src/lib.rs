//! What functions say and what yun observes about them: the guests' log lines, kept per
//! function with bounded retention, and the counters yun exposes about itself.
//!
//! This crate stores and serves log entries; it does not capture them (the runtimes do, through
//! [`LogSink`]) and it does not ship them anywhere else.

mod logs;
mod metrics;
mod records;
mod usage;

pub use logs::{LogEntry, LogRetention, LogSink, LogStore, LogStream};
pub use metrics::{FunctionLabels, InstanceLabels, Metrics, Observation, QueueLabels, StoreLabels};
pub use records::{Filter, Record, RecordError, RecordRetention, Records};
pub use usage::{Metered, Usage, UsageRow, day_of};

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters about the platform itself, served by `GET /v1/status`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Components compiled from wasm to native code.
    pub compilations: AtomicU64,
    /// Revisions loaded from precompiled code on disk instead of being compiled.
    pub compiled_cache_hits: AtomicU64,
    pub invocations: AtomicU64,
    pub invocation_errors: AtomicU64,
}

impl Counters {
    pub fn incr(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> serde_json::Value {
        serde_json::json!({
            "compilations": self.compilations.load(Ordering::Relaxed),
            "compiled_cache_hits": self.compiled_cache_hits.load(Ordering::Relaxed),
            "invocations": self.invocations.load(Ordering::Relaxed),
            "invocation_errors": self.invocation_errors.load(Ordering::Relaxed),
        })
    }
}
