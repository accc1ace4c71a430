//! The instance pool of one revision: which instances exist, which of them may take a request
//! now, and the bounded queue of requests waiting for one (the activator's buffer while a
//! function scales from zero or every instance is busy).
//!
//! It owns the mechanism: leases with a per-instance concurrency limit, starting instances on
//! demand up to a maximum, handing a freed or newly ready instance straight to the oldest waiter,
//! refusing work past the queue's bound (429) or its timeout (503), draining idle instances when
//! told to scale down, and never routing a request to an instance being torn down. It does not
//! decide how many instances there should be: a [`Policy`] (the autoscaler and keep-alive,
//! injected by the caller) does, on every tick of [`Pool::spawn_scaler`]. It does not know what
//! an instance is either: a [`Factory`] starts them (a sandboxed process, a loaded wasm revision).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

/// One running instance, as the pool sees it.
pub trait Instance: Send + Sync + 'static {
    /// False once it can no longer serve (its process exited, it failed a request); the pool
    /// then forgets it and routes nothing more to it.
    fn alive(&self) -> bool;
    /// Tears it down. The pool calls this only when no lease on it is out, or when the whole
    /// pool stops.
    fn stop(&self);
    /// Stops it from using CPU while it keeps its memory, so it can come back in far less than
    /// a start takes; false if it cannot be frozen (then it is stopped instead).
    fn freeze(&self) -> bool {
        false
    }
    /// Lets a frozen instance run again; false if it could not (then it is stopped).
    fn thaw(&self) -> bool {
        false
    }
}

/// Starts instances of one revision.
pub trait Factory: Send + Sync + 'static {
    type Instance: Instance;
    type Error: Clone + Send + Sync + 'static;
    fn start(&self, why: Start) -> impl Future<Output = Result<Self::Instance, Self::Error>> + Send;
}

/// Why an instance is being started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    /// A request found no free instance; its id is where startup output belongs.
    Request { invocation_id: String },
    /// The policy asked for more instances (load, min instances, a pre-warm).
    Scale,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Requests one instance serves at the same time.
    pub concurrency: u32,
    /// Instances kept even without traffic (provisioned concurrency).
    pub min_instances: u32,
    /// Instances there may ever be at once, starting ones included.
    pub max_instances: u32,
    /// Requests that may wait for an instance; one more is refused at once.
    pub max_queue: usize,
    /// How long a request waits for an instance before it is refused.
    pub queue_timeout: Duration,
    /// An instance scaled in is frozen for this long (no CPU, memory kept) before it is
    /// stopped, and thawed if it is needed again meanwhile; zero stops it at once.
    pub freeze_for: Duration,
    /// Instances that may be starting at once. Starts compete for the same CPUs: ten at once on
    /// two cores all finish late, while a queue drains faster through the first few ready.
    pub max_starting: u32,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            concurrency: 1,
            min_instances: 0,
            max_instances: 10,
            max_queue: 100,
            queue_timeout: Duration::from_secs(30),
            freeze_for: Duration::ZERO,
            max_starting: default_max_starting(),
        }
    }
}

/// One start per CPU: a start is mostly CPU work (a sandbox, an interpreter booting).
pub fn default_max_starting() -> u32 {
    std::thread::available_parallelism().map_or(2, |n| n.get() as u32).max(1)
}

/// Why a request got no instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AcquireError<E> {
    /// Every instance is busy, the maximum is reached and the queue is full.
    Overloaded { waiting: usize },
    /// It waited this long in the queue without an instance becoming free.
    QueueTimeout(Duration),
    /// The instance started for it failed to start.
    Start(E),
    /// The revision no longer serves.
    Stopped,
}

/// How a request came by its instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Temperature {
    /// An instance was ready.
    Warm,
    /// It waited for an instance that was busy.
    Queued { waited: Duration },
    /// It waited for a new instance to start; `init` is how long that start took.
    Cold { init: Duration, waited: Duration },
    /// It waited for a frozen instance to be thawed; `thaw` is how long that took.
    Thawed { thaw: Duration, waited: Duration },
}

impl Temperature {
    pub fn is_cold(self) -> bool {
        matches!(self, Temperature::Cold { .. })
    }

    /// Time the request spent before its instance took it.
    pub fn waited(self) -> Duration {
        match self {
            Temperature::Warm => Duration::ZERO,
            Temperature::Queued { waited }
            | Temperature::Cold { waited, .. }
            | Temperature::Thawed { waited, .. } => waited,
        }
    }
}

/// What the pool looks like right now, for the policy and for `yun describe`.
#[derive(Clone, Debug, PartialEq)]
pub struct Stats {
    pub ready: u32,
    pub starting: u32,
    /// Instances scaled in but kept frozen, ready to be thawed.
    pub frozen: u32,
    /// Requests being served.
    pub in_flight: u32,
    /// Requests waiting for an instance.
    pub waiting: u32,
    /// What the policy asked for at its last tick.
    pub desired: u32,
    /// Requests in flight plus waiting, averaged over time since the previous scaler tick (or
    /// the pool's start): a burst that came and went between two ticks still counts.
    pub average_load: f64,
    pub last_request: Option<Instant>,
    pub config: PoolConfig,
}

/// Decides how many instances the pool should have; called on every scaler tick.
pub trait Policy: Send + 'static {
    fn desired(&mut self, stats: &Stats, now: Instant) -> u32;
}

struct Slot<I> {
    id: u64,
    instance: Arc<I>,
    in_flight: u32,
    last_used: Instant,
    /// Set while it has just come up: the requests it takes in that dispatch were cold.
    fresh: Option<Fresh>,
}

#[derive(Clone, Copy)]
enum Fresh {
    Started(Duration),
    Thawed(Duration),
}

struct Frozen<I> {
    instance: Arc<I>,
    since: Instant,
}

struct Waiter<F: Factory> {
    tx: oneshot::Sender<Result<Lease<F>, AcquireError<F::Error>>>,
    since: Instant,
}

struct State<F: Factory> {
    slots: Vec<Slot<F::Instance>>,
    frozen: Vec<Frozen<F::Instance>>,
    starting: u32,
    waiters: VecDeque<Waiter<F>>,
    config: PoolConfig,
    desired: u32,
    last_request: Option<Instant>,
    next_id: u64,
    stopped: bool,
    /// Time integral of the load (requests in flight plus waiting) since `load_since`.
    load_area: f64,
    load_changed: Instant,
    load_since: Instant,
}

impl<F: Factory> State<F> {
    fn load(&self) -> u32 {
        self.slots.iter().map(|s| s.in_flight).sum::<u32>() + self.waiters.len() as u32
    }

    /// Adds the load up to now to its integral; called before every change to it.
    fn account(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.load_changed).as_secs_f64();
        self.load_area += f64::from(self.load()) * dt;
        self.load_changed = now;
    }

    /// The average load since the last call, and a fresh start for the next.
    fn take_average(&mut self, now: Instant) -> f64 {
        self.account(now);
        let span = now.saturating_duration_since(self.load_since).as_secs_f64();
        let average = if span > 0.0 { self.load_area / span } else { f64::from(self.load()) };
        self.load_area = 0.0;
        self.load_since = now;
        average
    }
}

struct Shared<F: Factory> {
    factory: F,
    state: Mutex<State<F>>,
}

/// The pool of one revision. Cloning gives another handle on the same pool.
pub struct Pool<F: Factory> {
    shared: Arc<Shared<F>>,
}

impl<F: Factory> Clone for Pool<F> {
    fn clone(&self) -> Self {
        Self { shared: self.shared.clone() }
    }
}

/// The right to send one request to one instance; dropping it gives the capacity back.
pub struct Lease<F: Factory> {
    shared: Weak<Shared<F>>,
    slot: u64,
    instance: Arc<F::Instance>,
    temperature: Temperature,
    armed: bool,
}

impl<F: Factory> Lease<F> {
    pub fn instance(&self) -> &Arc<F::Instance> {
        &self.instance
    }

    pub fn temperature(&self) -> Temperature {
        self.temperature
    }

    /// Forgets the lease without giving capacity back, for the pool's own bookkeeping only.
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl<F: Factory> std::ops::Deref for Lease<F> {
    type Target = F::Instance;
    fn deref(&self) -> &F::Instance {
        &self.instance
    }
}

impl<F: Factory> Drop for Lease<F> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Some(shared) = self.shared.upgrade() else { return };
        let mut state = shared.lock();
        let now = Instant::now();
        state.account(now);
        if let Some(slot) = state.slots.iter_mut().find(|s| s.id == self.slot) {
            slot.in_flight = slot.in_flight.saturating_sub(1);
            slot.last_used = now;
        }
        Shared::dispatch(&shared, &mut state);
    }
}

impl<F: Factory> Shared<F> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State<F>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets instances that died on their own, so nothing is routed to them.
    fn prune(state: &mut State<F>) {
        state.slots.retain(|s| s.instance.alive());
        state.frozen.retain(|f| f.instance.alive());
    }

    /// Index of the least loaded live instance with room for one more request.
    fn free_slot(state: &State<F>) -> Option<usize> {
        let limit = state.config.concurrency.max(1);
        state
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.in_flight < limit && s.instance.alive())
            .min_by_key(|(_, s)| s.in_flight)
            .map(|(i, _)| i)
    }

    fn lease(this: &Arc<Self>, state: &mut State<F>, index: usize, temperature: Temperature) -> Lease<F> {
        let slot = &mut state.slots[index];
        slot.in_flight += 1;
        Lease {
            shared: Arc::downgrade(this),
            slot: slot.id,
            instance: slot.instance.clone(),
            temperature,
            armed: true,
        }
    }

    /// Hands free capacity to waiters, oldest first; those an instance that just came up
    /// serves were cold (or thawed).
    fn dispatch(this: &Arc<Self>, state: &mut State<F>) {
        Self::prune(state);
        while !state.waiters.is_empty() {
            let Some(index) = Self::free_slot(state) else { break };
            let waiter = state.waiters.pop_front().expect("checked non-empty");
            let waited = waiter.since.elapsed();
            let temperature = match state.slots[index].fresh {
                Some(Fresh::Started(init)) => Temperature::Cold { init, waited },
                Some(Fresh::Thawed(thaw)) => Temperature::Thawed { thaw, waited },
                None => Temperature::Queued { waited },
            };
            let lease = Self::lease(this, state, index, temperature);
            if let Err(Ok(lease)) = waiter.tx.send(Ok(lease)) {
                // That request gave up waiting just now: the capacity is still free.
                let slot = lease.slot;
                lease.disarm();
                if let Some(s) = state.slots.iter_mut().find(|s| s.id == slot) {
                    s.in_flight -= 1;
                }
            }
        }
        for slot in &mut state.slots {
            slot.fresh = None;
        }
        Self::start_for_waiters(this, state, None);
    }

    /// Starts instances while the waiting requests exceed what is free or on its way, up to the
    /// maximum.
    fn start_for_waiters(this: &Arc<Self>, state: &mut State<F>, invocation_id: Option<&str>) {
        state.waiters.retain(|w| !w.tx.is_closed());
        let concurrency = state.config.concurrency.max(1) as usize;
        loop {
            let spare: usize =
                state.slots.iter().map(|s| concurrency.saturating_sub(s.in_flight as usize)).sum();
            let coming = state.starting as usize * concurrency;
            let total = state.slots.len() + state.starting as usize;
            if state.waiters.len() <= spare + coming || total >= state.config.max_instances as usize {
                return;
            }
            // Thawing is cheap; a start waits for a start slot unless nothing at all can serve.
            let can_start = state.starting < state.config.max_starting.max(1) || total == 0;
            if state.frozen.is_empty() && !can_start {
                return;
            }
            // A frozen instance comes back far faster than a new one starts.
            if let Some(frozen) = state.frozen.pop() {
                let began = Instant::now();
                if frozen.instance.thaw() && frozen.instance.alive() {
                    Self::push_slot(state, frozen.instance, Some(Fresh::Thawed(began.elapsed())));
                    Self::dispatch(this, state);
                    return;
                }
                frozen.instance.stop();
                continue;
            }
            let why = match invocation_id {
                Some(id) => Start::Request { invocation_id: id.to_string() },
                None => Start::Scale,
            };
            Self::start_one(this, state, why);
        }
    }

    fn push_slot(state: &mut State<F>, instance: Arc<F::Instance>, fresh: Option<Fresh>) {
        let id = state.next_id;
        state.next_id += 1;
        state.slots.push(Slot { id, instance, in_flight: 0, last_used: Instant::now(), fresh });
    }

    fn start_one(this: &Arc<Self>, state: &mut State<F>, why: Start) {
        state.starting += 1;
        let shared = this.clone();
        tokio::spawn(async move {
            let began = Instant::now();
            let result = shared.factory.start(why).await;
            Self::started(&shared, result, began.elapsed());
        });
    }

    fn started(this: &Arc<Self>, result: Result<F::Instance, F::Error>, took: Duration) {
        let mut state = this.lock();
        state.account(Instant::now());
        state.starting -= 1;
        match result {
            Ok(instance) => {
                let instance = Arc::new(instance);
                if state.stopped {
                    drop(state);
                    instance.stop();
                    return;
                }
                Self::push_slot(&mut state, instance, Some(Fresh::Started(took)));
                Self::dispatch(this, &mut state);
            }
            Err(e) => {
                // The requests this start was for get its error rather than starting the same
                // failing instance again; those other starts can still serve keep waiting.
                Self::prune(&mut state);
                let concurrency = state.config.concurrency.max(1) as usize;
                let spare: usize =
                    state.slots.iter().map(|s| concurrency.saturating_sub(s.in_flight as usize)).sum();
                let covered = spare + state.starting as usize * concurrency;
                while state.waiters.len() > covered {
                    let w = state.waiters.pop_back().expect("more waiters than covered");
                    let _ = w.tx.send(Err(AcquireError::Start(e.clone())));
                }
            }
        }
    }

    fn stats(state: &State<F>, average_load: f64) -> Stats {
        Stats {
            average_load,
            ready: state.slots.iter().filter(|s| s.instance.alive()).count() as u32,
            starting: state.starting,
            frozen: state.frozen.len() as u32,
            in_flight: state.slots.iter().map(|s| s.in_flight).sum(),
            waiting: state.waiters.iter().filter(|w| !w.tx.is_closed()).count() as u32,
            desired: state.desired,
            last_request: state.last_request,
            config: state.config.clone(),
        }
    }
}

impl<F: Factory> Drop for Shared<F> {
    fn drop(&mut self) {
        // The last handle is gone (a start in flight holds one too): nothing can lease these
        // instances any more.
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        for s in state.slots.drain(..) {
            s.instance.stop();
        }
        for f in state.frozen.drain(..) {
            f.instance.stop();
        }
    }
}

impl<F: Factory> Pool<F> {
    pub fn new(factory: F, config: PoolConfig) -> Self {
        let state = State {
            slots: Vec::new(),
            frozen: Vec::new(),
            starting: 0,
            waiters: VecDeque::new(),
            desired: config.min_instances,
            config,
            last_request: None,
            next_id: 0,
            stopped: false,
            load_area: 0.0,
            load_changed: Instant::now(),
            load_since: Instant::now(),
        };
        Self { shared: Arc::new(Shared { factory, state: Mutex::new(state) }) }
    }

    pub fn factory(&self) -> &F {
        &self.shared.factory
    }

    /// An instance for one request: a free one at once, or the first to become free (or to
    /// start) within the queue timeout. `invocation_id` names the request whose arrival starts
    /// an instance, if it does.
    pub async fn acquire(&self, invocation_id: &str) -> Result<Lease<F>, AcquireError<F::Error>> {
        let (rx, timeout) = {
            let mut state = self.shared.lock();
            if state.stopped {
                return Err(AcquireError::Stopped);
            }
            let now = Instant::now();
            state.account(now);
            state.last_request = Some(now);
            Shared::prune(&mut state);
            // Waiters go first: a newcomer must not take the capacity an older request waits for.
            if state.waiters.is_empty()
                && let Some(index) = Shared::free_slot(&state)
            {
                return Ok(Shared::lease(&self.shared, &mut state, index, Temperature::Warm));
            }
            state.waiters.retain(|w| !w.tx.is_closed());
            if state.waiters.len() >= state.config.max_queue {
                return Err(AcquireError::Overloaded { waiting: state.waiters.len() });
            }
            let (tx, rx) = oneshot::channel();
            state.waiters.push_back(Waiter { tx, since: now });
            Shared::start_for_waiters(&self.shared, &mut state, Some(invocation_id));
            (rx, state.config.queue_timeout)
        };
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(AcquireError::Stopped),
            Err(_) => Err(AcquireError::QueueTimeout(timeout)),
        }
    }

    pub fn stats(&self) -> Stats {
        let mut state = self.shared.lock();
        Shared::prune(&mut state);
        let load = f64::from(state.load());
        Shared::stats(&state, load)
    }

    /// [`Self::stats`], with `average_load` over the time since the previous call: the scaler
    /// tick's view.
    fn tick_stats(&self) -> Stats {
        let mut state = self.shared.lock();
        Shared::prune(&mut state);
        let average = state.take_average(Instant::now());
        Shared::stats(&state, average)
    }

    /// New limits; they apply from the next request and the next scaler tick.
    pub fn set_config(&self, config: PoolConfig) {
        let mut state = self.shared.lock();
        state.config = config;
        Shared::dispatch(&self.shared, &mut state);
    }

    /// Starts instances or stops idle ones until there are `desired` (clamped to the pool's
    /// min and max). Busy instances are never stopped; an idle one that is stopped is first
    /// taken out of the pool, so no request can reach it.
    pub fn scale_to(&self, desired: u32) {
        let mut state = self.shared.lock();
        if state.stopped {
            return;
        }
        Shared::prune(&mut state);
        let desired = desired.clamp(state.config.min_instances, state.config.max_instances);
        state.desired = desired;
        let now = Instant::now();
        let freeze_for = state.config.freeze_for;
        let mut stopped = Vec::new();
        // Frozen past their time: their memory goes back.
        let (expired, kept): (Vec<_>, Vec<_>) =
            std::mem::take(&mut state.frozen).into_iter().partition(|f| now - f.since >= freeze_for);
        state.frozen = kept;
        stopped.extend(expired.into_iter().map(|f| f.instance));
        let mut have = state.slots.len() as u32 + state.starting;
        while have < desired {
            match state.frozen.pop() {
                Some(f) if f.instance.thaw() => {
                    Shared::push_slot(&mut state, f.instance, None);
                }
                Some(f) => stopped.push(f.instance),
                // The rest start at later ticks, a few at a time (see `max_starting`).
                None if state.starting < state.config.max_starting.max(1) => {
                    Shared::start_one(&self.shared, &mut state, Start::Scale)
                }
                None => break,
            }
            have += 1;
        }
        let mut excess = (state.slots.len() as u32).saturating_sub(desired.saturating_sub(state.starting));
        while excess > 0 {
            // The instance idle the longest goes first: the others are the warmest.
            let idle = state
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.in_flight == 0)
                .min_by_key(|(_, s)| s.last_used)
                .map(|(i, _)| i);
            let Some(index) = idle else { break };
            let instance = state.slots.swap_remove(index).instance;
            if freeze_for > Duration::ZERO && instance.freeze() {
                state.frozen.push(Frozen { instance, since: now });
            } else {
                stopped.push(instance);
            }
            excess -= 1;
        }
        Shared::dispatch(&self.shared, &mut state);
        drop(state);
        for instance in stopped {
            instance.stop();
        }
    }

    /// The revision stopped serving: every instance stops, waiting requests are refused, and
    /// so is every later one.
    pub fn stop(&self) {
        let mut state = self.shared.lock();
        state.stopped = true;
        let slots = std::mem::take(&mut state.slots);
        let frozen = std::mem::take(&mut state.frozen);
        let waiters = std::mem::take(&mut state.waiters);
        drop(state);
        for w in waiters {
            let _ = w.tx.send(Err(AcquireError::Stopped));
        }
        for s in slots {
            s.instance.stop();
        }
        for f in frozen {
            f.instance.stop();
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.shared.lock().stopped
    }

    /// Runs `policy` every `tick` until the pool stops or every handle on it is gone.
    pub fn spawn_scaler<P: Policy>(&self, mut policy: P, tick: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.shared);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let Some(shared) = weak.upgrade() else { return };
                let pool = Pool { shared };
                if pool.is_stopped() {
                    return;
                }
                let stats = pool.tick_stats();
                let desired = policy.desired(&stats, Instant::now());
                pool.scale_to(desired);
            }
        })
    }
}

#[cfg(test)]
mod tests;
