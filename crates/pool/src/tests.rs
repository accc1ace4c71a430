//! The pool's mechanism against a fake factory, in paused Tokio time.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use super::*;

#[derive(Default)]
struct Fake {
    started: AtomicU32,
    stopped: Arc<AtomicU32>,
    fail: AtomicBool,
    delay: Mutex<Duration>,
}

struct FakeInstance {
    number: u32,
    alive: AtomicBool,
    frozen: AtomicBool,
    stopped: Arc<AtomicU32>,
}

impl Instance for FakeInstance {
    fn alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }
    fn stop(&self) {
        if self.alive.swap(false, Ordering::SeqCst) {
            self.stopped.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn freeze(&self) -> bool {
        !self.frozen.swap(true, Ordering::SeqCst)
    }
    fn thaw(&self) -> bool {
        self.frozen.swap(false, Ordering::SeqCst)
    }
}

impl Factory for Arc<Fake> {
    type Instance = FakeInstance;
    type Error = String;
    async fn start(&self, _why: Start) -> Result<FakeInstance, String> {
        let delay = *self.delay.lock().unwrap();
        tokio::time::sleep(delay).await;
        if self.fail.load(Ordering::SeqCst) {
            return Err("boom".into());
        }
        let number = self.started.fetch_add(1, Ordering::SeqCst);
        Ok(FakeInstance {
            number,
            alive: AtomicBool::new(true),
            frozen: AtomicBool::new(false),
            stopped: self.stopped.clone(),
        })
    }
}

fn pool(config: PoolConfig, delay_ms: u64) -> (Pool<Arc<Fake>>, Arc<Fake>) {
    let fake = Arc::new(Fake::default());
    *fake.delay.lock().unwrap() = Duration::from_millis(delay_ms);
    (Pool::new(fake.clone(), config), fake)
}

fn config(concurrency: u32, max: u32) -> PoolConfig {
    // Starts unbounded unless a test is about that bound.
    PoolConfig { concurrency, max_instances: max, max_starting: 100, ..PoolConfig::default() }
}

#[tokio::test(start_paused = true)]
async fn first_request_starts_an_instance_and_is_cold_the_next_is_warm() {
    let (pool, fake) = pool(config(1, 10), 100);
    let lease = pool.acquire("a").await.unwrap();
    assert!(
        matches!(lease.temperature(), Temperature::Cold { init, .. } if init == Duration::from_millis(100))
    );
    drop(lease);
    let lease = pool.acquire("b").await.unwrap();
    assert_eq!(lease.temperature(), Temperature::Warm);
    assert_eq!(fake.started.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_burst_at_zero_starts_one_instance_per_request_up_to_max_and_all_are_served() {
    let (pool, fake) = pool(config(1, 4), 50);
    let mut tasks = Vec::new();
    for i in 0..10 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let lease = pool.acquire(&format!("r{i}")).await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
            lease.number
        }));
    }
    let mut used = std::collections::HashSet::new();
    for t in tasks {
        used.insert(t.await.unwrap());
    }
    assert_eq!(fake.started.load(Ordering::SeqCst), 4, "max instances respected");
    assert_eq!(used.len(), 4, "every instance served");
    assert_eq!(pool.stats().waiting, 0);
}

#[tokio::test(start_paused = true)]
async fn concurrency_per_instance_shares_one_start() {
    let (pool, fake) = pool(config(5, 10), 50);
    let leases: Vec<_> = futures_join_all((0..5).map(|i| pool.clone().acquire_owned(format!("r{i}")))).await;
    assert!(leases.iter().all(|l| l.as_ref().unwrap().temperature().is_cold()));
    assert_eq!(fake.started.load(Ordering::SeqCst), 1);
    // The sixth concurrent request needs a second instance.
    let sixth = pool.acquire("r6").await.unwrap();
    assert_ne!(sixth.number, leases[0].as_ref().unwrap().number);
    assert_eq!(fake.started.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn full_queue_is_refused_at_once_and_the_queued_are_served_in_order() {
    let cfg = PoolConfig { max_queue: 2, ..config(1, 1) };
    let (pool, _fake) = pool(cfg, 0);
    let first = pool.acquire("first").await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut waiting = Vec::new();
    for name in ["q1", "q2"] {
        let (pool, order) = (pool.clone(), order.clone());
        waiting.push(tokio::spawn(async move {
            let lease = pool.acquire(name).await.unwrap();
            order.lock().unwrap().push(name);
            assert!(matches!(lease.temperature(), Temperature::Queued { .. }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }));
        tokio::task::yield_now().await;
    }
    assert_eq!(pool.stats().waiting, 2);
    assert_eq!(pool.acquire("third").await.err(), Some(AcquireError::Overloaded { waiting: 2 }));
    drop(first);
    for w in waiting {
        w.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec!["q1", "q2"]);
}

#[tokio::test(start_paused = true)]
async fn waiting_past_the_queue_timeout_is_refused_and_frees_its_place() {
    let cfg = PoolConfig { max_queue: 1, queue_timeout: Duration::from_secs(2), ..config(1, 1) };
    let (pool, _fake) = pool(cfg, 0);
    let busy = pool.acquire("busy").await.unwrap();
    let started = Instant::now();
    assert_eq!(pool.acquire("late").await.err(), Some(AcquireError::QueueTimeout(Duration::from_secs(2))));
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    // The place it held is free again, and the capacity it never took is not lost.
    drop(busy);
    assert_eq!(pool.acquire("next").await.unwrap().temperature(), Temperature::Warm);
}

#[tokio::test(start_paused = true)]
async fn a_failed_start_fails_the_requests_waiting_for_it_and_the_next_request_tries_again() {
    let (pool, fake) = pool(config(1, 5), 10);
    fake.fail.store(true, Ordering::SeqCst);
    let results = futures_join_all((0..3).map(|i| pool.clone().acquire_owned(format!("r{i}")))).await;
    assert!(results.iter().all(|r| matches!(r, Err(AcquireError::Start(m)) if m == "boom")));
    fake.fail.store(false, Ordering::SeqCst);
    assert!(pool.acquire("again").await.unwrap().temperature().is_cold());
}

#[tokio::test(start_paused = true)]
async fn a_dead_instance_gets_no_more_requests() {
    let (pool, fake) = pool(config(1, 5), 10);
    let lease = pool.acquire("a").await.unwrap();
    let first = lease.number;
    lease.alive.store(false, Ordering::SeqCst);
    drop(lease);
    let lease = pool.acquire("b").await.unwrap();
    assert_ne!(lease.number, first);
    assert!(lease.temperature().is_cold());
    assert_eq!(fake.started.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn scale_down_stops_only_idle_instances_longest_idle_first() {
    let (pool, fake) = pool(config(1, 5), 0);
    pool.scale_to(3);
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(pool.stats().ready, 3);
    let a = pool.acquire("a").await.unwrap();
    let b = pool.acquire("b").await.unwrap();
    let (a_number, b_number) = (a.number, b.number);
    drop(a);
    tokio::time::sleep(Duration::from_millis(5)).await;
    pool.scale_to(0);
    // Two idle instances went (the one never used, then `a`); busy `b` stays.
    assert_eq!(fake.stopped.load(Ordering::SeqCst), 2);
    assert_eq!(pool.stats().ready, 1);
    assert!(b.alive());
    drop(b);
    pool.scale_to(0);
    assert_eq!(pool.stats().ready, 0);
    assert_ne!(a_number, b_number);
}

#[tokio::test(start_paused = true)]
async fn min_instances_are_kept_and_max_caps_scale_up() {
    let cfg = PoolConfig { min_instances: 2, ..config(1, 3) };
    let (pool, fake) = pool(cfg, 0);
    pool.scale_to(0);
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(pool.stats().ready, 2);
    pool.scale_to(50);
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(pool.stats().ready, 3);
    assert_eq!(fake.started.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn stop_refuses_waiters_and_later_requests_and_stops_instances() {
    let (pool, fake) = pool(config(1, 1), 0);
    let busy = pool.acquire("busy").await.unwrap();
    let waiter = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.acquire("w").await.err() })
    };
    tokio::task::yield_now().await;
    pool.stop();
    assert_eq!(waiter.await.unwrap(), Some(AcquireError::Stopped));
    assert_eq!(pool.acquire("later").await.err(), Some(AcquireError::Stopped));
    assert!(!busy.alive());
    assert_eq!(fake.stopped.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn an_instance_that_finishes_starting_after_stop_is_stopped() {
    let (pool, fake) = pool(config(1, 1), 100);
    let waiter = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.acquire("w").await.err() })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    pool.stop();
    assert_eq!(waiter.await.unwrap(), Some(AcquireError::Stopped));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(fake.started.load(Ordering::SeqCst), 1);
    assert_eq!(fake.stopped.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn scaled_in_instances_freeze_and_thaw_for_the_next_request_until_their_time_is_up() {
    let cfg = PoolConfig { freeze_for: Duration::from_secs(10), ..config(1, 5) };
    let (pool, fake) = pool(cfg, 100);
    let first = pool.acquire("a").await.unwrap().number;
    pool.scale_to(0);
    let stats = pool.stats();
    assert_eq!((stats.ready, stats.frozen), (0, 1));
    assert_eq!(fake.stopped.load(Ordering::SeqCst), 0, "frozen, not stopped");
    // The next request thaws it instead of starting another (which would take 100 ms).
    let started = Instant::now();
    let lease = pool.acquire("b").await.unwrap();
    assert!(matches!(lease.temperature(), Temperature::Thawed { .. }), "{:?}", lease.temperature());
    assert_eq!(lease.number, first);
    assert!(!lease.frozen.load(Ordering::SeqCst));
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(fake.started.load(Ordering::SeqCst), 1);
    drop(lease);
    // Frozen past its time, it is stopped for good; the next request starts a new one.
    pool.scale_to(0);
    tokio::time::advance(Duration::from_secs(11)).await;
    pool.scale_to(0);
    assert_eq!(pool.stats().frozen, 0);
    assert_eq!(fake.stopped.load(Ordering::SeqCst), 1);
    assert!(pool.acquire("c").await.unwrap().temperature().is_cold());
}

#[tokio::test(start_paused = true)]
async fn without_a_freeze_window_scaled_in_instances_stop() {
    let (pool, fake) = pool(config(1, 5), 0);
    drop(pool.acquire("a").await.unwrap());
    pool.scale_to(0);
    assert_eq!((pool.stats().frozen, fake.stopped.load(Ordering::SeqCst)), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn stopping_the_pool_stops_frozen_instances_too() {
    let cfg = PoolConfig { freeze_for: Duration::from_secs(60), ..config(1, 5) };
    let (pool, fake) = pool(cfg, 0);
    drop(pool.acquire("a").await.unwrap());
    pool.scale_to(0);
    assert_eq!(pool.stats().frozen, 1);
    pool.stop();
    assert_eq!(fake.stopped.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn starts_are_limited_to_max_starting_at_once_and_the_queue_drains_meanwhile() {
    let cfg = PoolConfig { max_starting: 2, ..config(1, 10) };
    let (pool, fake) = pool(cfg, 50);
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let lease = pool.acquire(&format!("r{i}")).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(lease);
            })
        })
        .collect();
    tokio::task::yield_now().await;
    assert_eq!(pool.stats().starting, 2, "two starts at a time");
    for t in tasks {
        t.await.unwrap();
    }
    // The first two instances drained the queue while more were starting: fewer than ten.
    let started = fake.started.load(Ordering::SeqCst);
    assert!((2..10).contains(&started), "{started}");
}

#[tokio::test(start_paused = true)]
async fn the_tick_sees_the_average_load_of_a_burst_that_ended_before_it() {
    let (pool, _fake) = pool(config(10, 10), 0);
    let want = Arc::new(Mutex::new(Vec::new()));
    struct Record(Arc<Mutex<Vec<f64>>>);
    impl Policy for Record {
        fn desired(&mut self, stats: &Stats, _now: Instant) -> u32 {
            self.0.lock().unwrap().push(stats.average_load);
            1
        }
    }
    let _task = pool.spawn_scaler(Record(want.clone()), Duration::from_secs(1));
    tokio::time::sleep(Duration::from_millis(1)).await;
    // 8 requests for half a second, all done before the next tick.
    let leases: Vec<_> = futures_join_all((0..8).map(|i| pool.clone().acquire_owned(format!("r{i}")))).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(leases);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let seen = want.lock().unwrap().clone();
    let last = *seen.last().unwrap();
    assert!((3.5..4.5).contains(&last), "8 in flight for half of the second: {seen:?}");
}

struct Scripted(Arc<Mutex<u32>>);
impl Policy for Scripted {
    fn desired(&mut self, _stats: &Stats, _now: Instant) -> u32 {
        *self.0.lock().unwrap()
    }
}

#[tokio::test(start_paused = true)]
async fn the_scaler_applies_the_policy_every_tick_and_ends_with_the_pool() {
    let (pool, _fake) = pool(config(1, 10), 0);
    let want = Arc::new(Mutex::new(3));
    let task = pool.spawn_scaler(Scripted(want.clone()), Duration::from_secs(1));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(pool.stats().ready, 3);
    assert_eq!(pool.stats().desired, 3);
    *want.lock().unwrap() = 1;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(pool.stats().ready, 1);
    pool.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(task.is_finished());
}

#[tokio::test(start_paused = true)]
async fn stats_count_in_flight_and_waiting() {
    let (pool, _fake) = pool(config(2, 1), 0);
    let a = pool.acquire("a").await.unwrap();
    let _b = pool.acquire("b").await.unwrap();
    let w = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.acquire("w").await.map(|_| ()) })
    };
    tokio::task::yield_now().await;
    let stats = pool.stats();
    assert_eq!((stats.ready, stats.in_flight, stats.waiting), (1, 2, 1));
    assert!(stats.last_request.is_some());
    drop(a);
    w.await.unwrap().unwrap();
    assert_eq!(pool.stats().waiting, 0);
}

impl Pool<Arc<Fake>> {
    async fn acquire_owned(self, id: String) -> Result<Lease<Arc<Fake>>, AcquireError<String>> {
        self.acquire(&id).await
    }
}

async fn futures_join_all<T: Send + 'static>(
    futures: impl Iterator<Item = impl Future<Output = T> + Send + 'static>,
) -> Vec<T> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
