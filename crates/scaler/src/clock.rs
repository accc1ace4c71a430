use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Where the scaler reads the time. The policy never sleeps or waits; it only asks what time it
/// is, so tests can drive it with a [`ManualClock`] and see exactly what a real run would do.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

/// The monotonic system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that only moves when told to. Clones share the same time, so a test keeps one clone
/// and hands the other to the [`Autoscaler`](crate::Autoscaler).
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Arc<Mutex<Instant>>,
}

impl ManualClock {
    pub fn new(start: Instant) -> Self {
        Self { now: Arc::new(Mutex::new(start)) }
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now += by;
    }

    /// Sets the time. Setting it earlier than before is allowed; the scaler treats time that
    /// goes backwards as time standing still.
    pub fn set(&self, to: Instant) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = to;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new(Instant::now())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        // An Instant is Copy, so a panic while the lock was held cannot have left it half written.
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Instant {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> Instant {
        (**self).now()
    }
}
