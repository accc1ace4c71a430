//! Pay-per-use metering: per function and UTC day, the requests, errors, billed milliseconds,
//! memory-time (MiB × billed ms, kept as an integer so sums are exact; GB-seconds are derived),
//! bytes sent back and, where measured, CPU time.
//!
//! The gateway adds one invocation at a time (a short lock on a small map); the totals are
//! written to `usage.json` in the data directory (temporary file, fsync, rename) every couple
//! of seconds when they changed and when yun stops, and read back at start. A crash loses at
//! most the last interval; a stop loses nothing.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// One function's use on one day.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRow {
    pub requests: u64,
    pub errors: u64,
    /// Run time rounded up to whole milliseconds, summed.
    pub billed_ms: u64,
    /// Memory limit in MiB × billed ms, summed: GB-seconds = this / 1024 / 1000.
    pub mib_ms: u64,
    /// Response bytes sent to callers.
    pub egress_bytes: u64,
    /// CPU time, where the runtime measures it (process functions), in µs.
    #[serde(default)]
    pub cpu_us: u64,
}

/// What one invocation adds to its function's use.
#[derive(Clone, Copy, Debug, Default)]
pub struct Metered {
    pub run_ms: f64,
    pub memory_bytes: u64,
    pub error: bool,
    pub egress_bytes: u64,
    pub cpu_us: Option<u64>,
}

impl UsageRow {
    pub fn gb_seconds(&self) -> f64 {
        self.mib_ms as f64 / 1024.0 / 1000.0
    }

    fn add(&mut self, other: &UsageRow) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.billed_ms += other.billed_ms;
        self.mib_ms += other.mib_ms;
        self.egress_bytes += other.egress_bytes;
        self.cpu_us += other.cpu_us;
    }
}

/// Days since the Unix epoch (UTC) of a time in ms.
pub fn day_of(ms: u64) -> u32 {
    (ms / 86_400_000) as u32
}

#[derive(Default, Serialize, Deserialize)]
struct Totals {
    /// function → day → row.
    rows: BTreeMap<String, BTreeMap<u32, UsageRow>>,
    /// Stored data: store (`bucket:NAME`, ...) → day → byte-milliseconds (bytes held × time,
    /// as an integer so sums are exact; byte-hours are derived).
    #[serde(default)]
    stored: BTreeMap<String, BTreeMap<u32, u128>>,
}

pub struct Usage {
    path: PathBuf,
    totals: Mutex<(Totals, bool)>,
}

impl Usage {
    /// Reads the totals kept in `data_dir`, or starts empty.
    pub fn open(data_dir: &Path) -> std::io::Result<Usage> {
        let path = data_dir.join("usage.json");
        let totals = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| std::io::Error::other(format!("{} is not readable: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Totals::default(),
            Err(e) => return Err(e),
        };
        Ok(Usage { path, totals: Mutex::new((totals, false)) })
    }

    /// One invocation: its run time is rounded up to whole milliseconds for billing.
    pub fn record(&self, function: &str, now_ms: u64, m: Metered) {
        let billed = m.run_ms.max(0.0).ceil() as u64;
        let row = UsageRow {
            requests: 1,
            errors: u64::from(m.error),
            billed_ms: billed,
            mib_ms: (m.memory_bytes >> 20) * billed,
            egress_bytes: m.egress_bytes,
            cpu_us: m.cpu_us.unwrap_or(0),
        };
        let mut t = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        // The function's entry exists after its first invocation: no key to allocate after that.
        if !t.0.rows.contains_key(function) {
            t.0.rows.insert(function.to_string(), BTreeMap::new());
        }
        let days = t.0.rows.get_mut(function).expect("inserted above");
        days.entry(day_of(now_ms)).or_default().add(&row);
        t.1 = true;
    }

    /// `bytes` were held in `store` for `ms` milliseconds ending at `now_ms` (a sampler calls
    /// this periodically with what each store holds).
    pub fn record_stored(&self, store: &str, now_ms: u64, bytes: u64, ms: u64) {
        if bytes == 0 || ms == 0 {
            return;
        }
        let mut t = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        let days = t.0.stored.entry(store.to_string()).or_default();
        *days.entry(day_of(now_ms)).or_default() += u128::from(bytes) * u128::from(ms);
        t.1 = true;
    }

    /// Stored data from `since_day` on: `(store, day, byte-hours)`.
    pub fn stored(&self, since_day: u32) -> Vec<(String, u32, f64)> {
        let t = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for (store, days) in &t.0.stored {
            for (day, byte_ms) in days.range(since_day..) {
                out.push((store.clone(), *day, *byte_ms as f64 / 3_600_000.0));
            }
        }
        out
    }

    /// Rows from `since_day` on: `(function, day, row)`.
    pub fn rows(&self, since_day: u32) -> Vec<(String, u32, UsageRow)> {
        let t = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for (function, days) in &t.0.rows {
            for (day, row) in days.range(since_day..) {
                out.push((function.clone(), *day, row.clone()));
            }
        }
        out
    }

    /// Writes the totals if they changed since the last write.
    pub fn flush(&self) -> std::io::Result<()> {
        let bytes = {
            let mut t = self.totals.lock().unwrap_or_else(|p| p.into_inner());
            if !t.1 {
                return Ok(());
            }
            t.1 = false;
            serde_json::to_vec(&t.0).expect("usage serializes")
        };
        let tmp = self.path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_exact_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let u = Usage::open(dir.path()).unwrap();
        let day = 20_000 * 86_400_000;
        let m = |run_ms, memory_bytes, error, egress_bytes, cpu_us| Metered {
            run_ms,
            memory_bytes,
            error,
            egress_bytes,
            cpu_us,
        };
        u.record("f", day, m(49.2, 128 << 20, false, 10, Some(1500)));
        u.record("f", day + 1, m(0.3, 128 << 20, true, 5, None));
        u.record("g", day + 86_400_000, m(1000.0, 1 << 30, false, 0, None));
        u.flush().unwrap();
        let u = Usage::open(dir.path()).unwrap();
        let rows = u.rows(0);
        assert_eq!(rows.len(), 2);
        let f = &rows[0].2;
        assert_eq!((f.requests, f.errors, f.billed_ms, f.egress_bytes), (2, 1, 51, 15));
        assert_eq!(f.mib_ms, 128 * 51);
        assert_eq!(f.cpu_us, 1500);
        assert_eq!(rows[1].2.gb_seconds(), 1.0);
        assert_eq!(u.rows(20_001).len(), 1);
    }

    #[test]
    fn stored_bytes_add_up_to_byte_hours_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let u = Usage::open(dir.path()).unwrap();
        let day = 20_000 * 86_400_000;
        // 1 GiB for half an hour, twice: one GiB-hour.
        u.record_stored("bucket:photos", day, 1 << 30, 1_800_000);
        u.record_stored("bucket:photos", day + 1_800_000, 1 << 30, 1_800_000);
        u.record_stored("bucket:empty", day, 0, 1_800_000);
        u.flush().unwrap();
        let u = Usage::open(dir.path()).unwrap();
        assert_eq!(u.stored(0), vec![("bucket:photos".to_string(), 20_000, (1u64 << 30) as f64)]);
    }
}
