//! Per-function log files: JSON lines in size-bounded segments, dropped by total size and age.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
    /// yun's own line about an invocation (its REPORT: cold or warm, init and run duration).
    Platform,
}

/// One line a guest wrote, tagged with where it came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Milliseconds since the Unix epoch.
    pub ts_ms: u64,
    pub function: String,
    pub revision: u64,
    pub invocation_id: String,
    pub stream: LogStream,
    pub line: String,
}

/// Where runtimes send the lines their guests write.
pub trait LogSink: Send + Sync + 'static {
    fn emit(&self, entry: LogEntry);
}

/// How much log history each function keeps.
#[derive(Clone, Copy, Debug)]
pub struct LogRetention {
    pub max_bytes_per_function: u64,
    pub max_age: Duration,
}

impl Default for LogRetention {
    fn default() -> Self {
        Self { max_bytes_per_function: 16 * 1024 * 1024, max_age: Duration::from_secs(7 * 24 * 3600) }
    }
}

struct Segment {
    /// Buffered: a line per invocation (its REPORT) must not cost a write syscall each.
    /// [`LogStore::flush`] runs periodically and every read flushes first.
    file: io::BufWriter<File>,
    bytes: u64,
    start_ms: u64,
}

/// Log entries on disk under `<root>/<function>/<first-ts-ms>.jsonl`.
pub struct LogStore {
    root: PathBuf,
    retention: LogRetention,
    open: Mutex<HashMap<String, Segment>>,
    live: broadcast::Sender<Arc<LogEntry>>,
}

impl LogStore {
    pub fn open(root: &Path, retention: LogRetention) -> io::Result<Self> {
        fs::create_dir_all(root)?;
        let (live, _) = broadcast::channel(4096);
        Ok(Self { root: root.to_path_buf(), retention, open: Mutex::new(HashMap::new()), live })
    }

    fn segment_limit(&self) -> u64 {
        (self.retention.max_bytes_per_function / 4).max(4096)
    }

    /// A segment covers at most this much time, so age-based removal is never more than a
    /// quarter of the age limit late.
    fn segment_span_ms(&self) -> u64 {
        (self.retention.max_age.as_millis() as u64 / 4).max(1)
    }

    fn append(&self, entry: &LogEntry) -> io::Result<()> {
        let mut line = serde_json::to_vec(entry).expect("log entries always serialize");
        line.push(b'\n');
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let needs_new = open.get(&entry.function).is_none_or(|s| {
            s.bytes >= self.segment_limit()
                || entry.ts_ms >= s.start_ms.saturating_add(self.segment_span_ms())
        });
        if needs_new {
            let dir = self.root.join(&entry.function);
            fs::create_dir_all(&dir)?;
            let path = dir.join(format!("{:020}.jsonl", entry.ts_ms));
            let file = OpenOptions::new().create(true).append(true).open(path)?;
            let bytes = file.metadata()?.len();
            let file = io::BufWriter::with_capacity(16 * 1024, file);
            open.insert(entry.function.clone(), Segment { file, bytes, start_ms: entry.ts_ms });
            self.enforce(&mut open, &entry.function, entry.ts_ms)?;
        }
        let segment = open.get_mut(&entry.function).expect("segment opened above");
        segment.file.write_all(&line)?;
        segment.bytes += line.len() as u64;
        Ok(())
    }

    fn segments(&self, function: &str) -> io::Result<Vec<PathBuf>> {
        let mut out: Vec<PathBuf> = match fs::read_dir(self.root.join(function)) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        // Names are zero-padded timestamps, so name order is time order.
        out.sort();
        Ok(out)
    }

    /// Drops the oldest segments of `function` until it fits the size budget, and every segment
    /// whose lines are all older than the age limit.
    fn enforce(&self, open: &mut HashMap<String, Segment>, function: &str, now_ms: u64) -> io::Result<()> {
        let segments = self.segments(function)?;
        let cutoff = now_ms.saturating_sub(self.retention.max_age.as_millis() as u64);
        let mut total: u64 = segments.iter().map(|p| fs::metadata(p).map_or(0, |m| m.len())).sum();
        for (i, path) in segments.iter().enumerate() {
            let start = segment_start(path);
            let ends_before = match segments.get(i + 1) {
                Some(next) => segment_start(next).min(start.saturating_add(self.segment_span_ms())),
                None => start.saturating_add(self.segment_span_ms()),
            };
            let is_last = i + 1 == segments.len();
            if ends_before < cutoff || (!is_last && total > self.retention.max_bytes_per_function) {
                total -= fs::metadata(path).map_or(0, |m| m.len());
                if is_last {
                    open.remove(function);
                }
                fs::remove_file(path)?;
            }
        }
        Ok(())
    }

    /// Applies the age limit to every function; called periodically so idle functions age too.
    pub fn sweep(&self, now_ms: u64) -> io::Result<()> {
        let functions: Vec<String> = fs::read_dir(&self.root)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        for function in functions {
            self.enforce(&mut open, &function, now_ms)?;
        }
        Ok(())
    }

    /// Writes buffered lines out to their segments.
    pub fn flush(&self) -> io::Result<()> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        for segment in open.values_mut() {
            segment.file.flush()?;
        }
        Ok(())
    }

    /// Entries of `function` at or after `since_ms`, oldest first, at most the last `limit`.
    pub fn read(&self, function: &str, since_ms: u64, limit: usize) -> io::Result<Vec<LogEntry>> {
        if let Some(segment) = self.open.lock().unwrap_or_else(|p| p.into_inner()).get_mut(function) {
            segment.file.flush()?;
        }
        let mut out = std::collections::VecDeque::new();
        for path in self.segments(function)? {
            let file = match File::open(&path) {
                Ok(f) => f,
                // Retention may remove a segment between listing and opening it.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for line in BufReader::new(file).lines() {
                let line = line?;
                // A line cut short by a crash mid-write is skipped, not fatal.
                let Ok(entry) = serde_json::from_str::<LogEntry>(&line) else { continue };
                if entry.ts_ms >= since_ms {
                    out.push_back(entry);
                    if out.len() > limit {
                        out.pop_front();
                    }
                }
            }
        }
        Ok(out.into())
    }

    /// Every entry emitted from now on, for `logs -f`.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LogEntry>> {
        self.live.subscribe()
    }

    /// Forgets a function's logs (its name may be reused by an unrelated function later).
    pub fn remove(&self, function: &str) -> io::Result<()> {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).remove(function);
        match fs::remove_dir_all(self.root.join(function)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

fn segment_start(path: &Path) -> u64 {
    path.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse().ok()).unwrap_or(0)
}

impl LogSink for LogStore {
    fn emit(&self, entry: LogEntry) {
        if let Err(e) = self.append(&entry) {
            tracing::warn!(function = %entry.function, "could not write log line: {e}");
        }
        // Nobody follows most functions' logs: skip the allocation then.
        if self.live.receiver_count() > 0 {
            let _ = self.live.send(Arc::new(entry));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ts_ms: u64, line: &str) -> LogEntry {
        LogEntry {
            ts_ms,
            function: "hello".into(),
            revision: 1,
            invocation_id: format!("inv-{ts_ms}"),
            stream: LogStream::Stdout,
            line: line.into(),
        }
    }

    #[test]
    fn reads_back_in_order_with_since_and_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path(), LogRetention::default()).unwrap();
        for ts in 1..=5 {
            store.emit(entry(ts, &format!("line {ts}")));
        }
        let all = store.read("hello", 0, 100).unwrap();
        assert_eq!(all.iter().map(|e| e.ts_ms).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
        let since = store.read("hello", 4, 100).unwrap();
        assert_eq!(since.len(), 2);
        let last = store.read("hello", 0, 2).unwrap();
        assert_eq!(last.iter().map(|e| e.ts_ms).collect::<Vec<_>>(), vec![4, 5]);
        assert!(store.read("other", 0, 100).unwrap().is_empty());
    }

    #[test]
    fn size_budget_drops_oldest_segments() {
        let dir = tempfile::tempdir().unwrap();
        let retention =
            LogRetention { max_bytes_per_function: 64 * 1024, max_age: Duration::from_secs(3600) };
        let store = LogStore::open(dir.path(), retention).unwrap();
        let big = "x".repeat(1000);
        for ts in 0..500 {
            store.emit(entry(ts, &big));
        }
        let on_disk: u64 =
            store.segments("hello").unwrap().iter().map(|p| fs::metadata(p).unwrap().len()).sum();
        assert!(on_disk <= 64 * 1024 + 16 * 1024 + 2048, "{on_disk} bytes kept");
        let kept = store.read("hello", 0, usize::MAX).unwrap();
        assert_eq!(kept.last().unwrap().ts_ms, 499, "newest lines survive");
        assert!(kept.first().unwrap().ts_ms > 0, "oldest lines were dropped");
    }

    #[test]
    fn age_limit_drops_old_segments() {
        let dir = tempfile::tempdir().unwrap();
        let retention =
            LogRetention { max_bytes_per_function: 16 * 1024, max_age: Duration::from_millis(1000) };
        let store = LogStore::open(dir.path(), retention).unwrap();
        let line = "y".repeat(2000);
        for ts in 0..3 {
            store.emit(entry(ts, &line));
        }
        for ts in 10_000..10_003 {
            store.emit(entry(ts, &line));
        }
        store.sweep(10_003).unwrap();
        let kept = store.read("hello", 0, usize::MAX).unwrap();
        assert!(
            kept.iter().all(|e| e.ts_ms >= 9_000),
            "old lines remain: {:?}",
            kept.iter().map(|e| e.ts_ms).collect::<Vec<_>>()
        );
    }

    #[test]
    fn live_subscribers_see_new_lines_and_remove_forgets() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path(), LogRetention::default()).unwrap();
        let mut rx = store.subscribe();
        store.emit(entry(7, "hi"));
        assert_eq!(rx.try_recv().unwrap().line, "hi");
        store.remove("hello").unwrap();
        assert!(store.read("hello", 0, 10).unwrap().is_empty());
    }
}
