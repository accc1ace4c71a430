use std::time::{Duration, Instant};

/// Far above any real concurrency, low enough that a request-seconds sum of it cannot overflow.
const MAX_LEVEL: f64 = 1e12;

/// The history of the observed concurrency as a time-weighted ring of per-tick buckets.
///
/// Concurrency is a level, not a stream of events: a value given to [`Window::record`] holds
/// until the next one (sample and hold). Each bucket is the integral of that level over its
/// tick, in request-seconds, so a caller that records on every change and one that records on a
/// ticker get the same averages, and a tick without a sample counts the level that was
/// standing, which is 0 only if 0 was the last thing recorded.
///
/// Times are nanoseconds since the scaler was created, so the arithmetic is on integers and a
/// clock that goes backwards only makes time stand still.
#[derive(Debug)]
pub(crate) struct Window {
    epoch: Instant,
    tick: u64,
    buckets: Vec<f64>,
    /// The tick of `level_since`: the newest bucket written. Ticks after it hold no data yet;
    /// the standing level covers them until the next flush.
    head: u64,
    level: f64,
    level_since: u64,
    /// Averages start here, not a full window back, so a young history is not diluted by time
    /// before it existed.
    history_start: Option<u64>,
    /// Since when nothing has been in flight.
    zero_since: Option<u64>,
    /// A history with nothing in flight for this long is forgotten.
    forget_after: u64,
}

impl Window {
    pub(crate) fn new(epoch: Instant, tick: Duration, len: u64, forget_after: Duration) -> Self {
        Self {
            epoch,
            tick: nanos(tick).max(1),
            buckets: vec![0.0; usize::try_from(len.max(1)).unwrap_or(usize::MAX)],
            head: 0,
            level: 0.0,
            level_since: 0,
            history_start: None,
            zero_since: None,
            forget_after: nanos(forget_after),
        }
    }

    pub(crate) fn offset(&self, now: Instant) -> u64 {
        nanos(now.saturating_duration_since(self.epoch))
    }

    fn len(&self) -> u64 {
        self.buckets.len() as u64
    }

    fn slot(&self, tick: u64) -> usize {
        (tick % self.len()) as usize
    }

    #[cfg(test)]
    pub(crate) fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    #[cfg(test)]
    pub(crate) fn bucket_capacity(&self) -> usize {
        self.buckets.capacity()
    }

    /// Integrates the standing level up to `now` into the buckets.
    fn flush(&mut self, now: u64) {
        let now = now.max(self.level_since);
        let now_tick = now / self.tick;
        let oldest_kept = now_tick.saturating_sub(self.len() - 1);
        if now_tick > self.head {
            // Only the last `len` ticks can be kept, so a long gap clears each slot once.
            for k in (self.head + 1).max(oldest_kept)..=now_tick {
                let slot = self.slot(k);
                self.buckets[slot] = 0.0;
            }
            self.head = now_tick;
        }
        if self.level > 0.0 {
            let mut t = self.level_since.max(oldest_kept.saturating_mul(self.tick));
            while t < now {
                let k = t / self.tick;
                let end = k.saturating_add(1).saturating_mul(self.tick).min(now);
                let slot = self.slot(k);
                self.buckets[slot] += self.level * seconds(end - t);
                t = end;
            }
        }
        self.level_since = now;
    }

    /// The observed concurrency from `now` on.
    pub(crate) fn record(&mut self, now: u64, concurrency: f64) {
        self.flush(now);
        let now = self.level_since;
        let concurrency = if concurrency > 0.0 { concurrency.min(MAX_LEVEL) } else { 0.0 };
        match (self.history_start, self.zero_since) {
            (None, _) => self.history_start = Some(now),
            // Nothing in flight for a whole window means the averages are 0 and have nothing more
            // to say; load that arrives now (typically the requests that woke a revision at zero)
            // is averaged like a new revision's, from its own start, instead of being diluted by
            // the idle window and reaching the instances it needs a window later.
            (Some(_), Some(idle_since)) if concurrency > 0.0 && now - idle_since >= self.forget_after => {
                self.buckets.fill(0.0);
                self.history_start = Some(now);
            }
            _ => {}
        }
        if concurrency > 0.0 {
            self.zero_since = None;
        } else if self.zero_since.is_none() {
            self.zero_since = Some(now);
        }
        self.level = concurrency;
    }

    /// The time-weighted mean of the level over the last `window`, or over the time since the
    /// history started if that is shorter; 0 with no history. Of the bucket the window begins
    /// in, the share inside the window is counted, as if its level had been even across it.
    pub(crate) fn average(&self, now: u64, window: Duration) -> f64 {
        let Some(start) = self.history_start else { return 0.0 };
        let now = now.max(self.level_since);
        let reach = nanos(window).min((self.len() - 1).saturating_mul(self.tick));
        let from = now.saturating_sub(reach).max(start);
        if now <= from {
            // No time has passed since the history started: the level is all there is.
            return self.level;
        }
        let mut stored = 0.0;
        for k in from / self.tick..=self.head {
            // What this bucket holds was recorded over [begin, end).
            let begin = k.saturating_mul(self.tick).max(start);
            let end = k.saturating_add(1).saturating_mul(self.tick).min(self.level_since);
            if end <= begin {
                continue;
            }
            let inside = end - from.max(begin).min(end);
            stored += self.buckets[self.slot(k)] * (inside as f64 / (end - begin) as f64);
        }
        let standing = self.level * seconds(now - self.level_since.max(from));
        (stored + standing) / seconds(now - from)
    }

    pub(crate) fn set_forget_after(&mut self, forget_after: Duration) {
        self.forget_after = nanos(forget_after);
    }

    /// Changes the number of buckets, keeping the newest ones.
    pub(crate) fn resize(&mut self, now: u64, len: u64) {
        let len = len.max(1);
        if len == self.len() {
            return;
        }
        self.flush(now);
        let kept = len.min(self.len());
        if len > self.len() {
            // The grown window reaches back past what was kept: average only over what is known.
            let known_from = (self.head + 1).saturating_sub(self.len()).saturating_mul(self.tick);
            self.history_start = self.history_start.map(|start| start.max(known_from));
        }
        let mut buckets = vec![0.0; usize::try_from(len).unwrap_or(usize::MAX)];
        for k in self.head.saturating_sub(kept - 1)..=self.head {
            buckets[(k % len) as usize] = self.buckets[self.slot(k)];
        }
        self.buckets = buckets;
    }

    /// Changes the tick. Buckets of one width cannot be cut into another without guessing, so
    /// the history restarts now from the standing level.
    pub(crate) fn retick(&mut self, now: u64, tick: Duration, len: u64) {
        self.flush(now);
        self.tick = nanos(tick).max(1);
        self.buckets = vec![0.0; usize::try_from(len.max(1)).unwrap_or(usize::MAX)];
        self.head = self.level_since / self.tick;
        if self.history_start.is_some() {
            self.history_start = Some(self.level_since);
        }
        if self.zero_since.is_some() {
            self.zero_since = Some(self.level_since);
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn seconds(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}
