//! Triggers: everything that invokes a function besides a request answered at once. Stored
//! asynchronous invocations (retried with backoff and jitter, then dead-lettered, with
//! destinations for the outcome), queue consumers (batches, partial batch failures, poison
//! messages isolated by splitting the batch), and cron schedules (a tick is enqueued and its
//! cursor advanced in one transaction, so no tick fires twice).
//!
//! It owns the delivery loops and their policy. It does not store (the events crate does,
//! durably, before anything is acknowledged) and does not run functions: it hands requests to
//! an [`Invoker`], which the platform implements with its gateway, in-process.

pub mod envelope;
mod storage;

pub use storage::{ObjectChange, s3_event};

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use yun_events::{
    EventError, EventStore, InvocationRecord, InvocationStatus, NewMessage, QueueConfig, Queues, Received,
    function_dlq, function_queue,
};
use yun_types::{AsyncSpec, Destination, Trigger, now_ms};

use envelope::{ATTR_ID, ATTR_KIND, ATTR_SOURCE, ATTR_TYPE, CloudEvent, KIND_EVENT};

/// What an invocation came to, as the triggers need it.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub status: u16,
    pub body: Bytes,
    /// The platform's error message when it, not the function, answered (timeout, trap...).
    pub error: Option<String>,
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        (200..400).contains(&self.status)
    }

    /// A failure worth trying again: the function's or the platform's (5xx), or overload.
    /// Another 4xx is the function refusing the event: trying again gives the same answer.
    pub fn retryable(&self) -> bool {
        self.status >= 500 || self.status == 429 || self.status == 408
    }
}

/// One event on its way to a function.
pub struct Delivery<'a> {
    pub function: &'a str,
    /// The tag the event was addressed to (`/fn/NAME@TAG`), else the function's split decides.
    pub tag: Option<&'a str>,
    /// An AWS Lambda Invoke API payload (the body is the event), rather than an HTTP request.
    pub lambda: bool,
    pub request: http::Request<Bytes>,
    /// What the invocation's record says started it: `async`, `cron`, `topic`, `queue`.
    pub trigger: &'static str,
    /// Which attempt this is (1 = the first).
    pub attempt: u32,
}

/// Runs a function with a request, the way an HTTP request to it would.
pub trait Invoker: Send + Sync + 'static {
    fn invoke<'a>(&'a self, delivery: Delivery<'a>) -> Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;
}

/// Attributes that say how a stored event is delivered.
pub const ATTR_TAG: &str = "yun.tag";
/// The CloudEvent's subject (a storage event's object key).
pub const ATTR_SUBJECT: &str = "yun.subject";
pub const ATTR_LAMBDA: &str = "yun.lambda";

#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error(transparent)]
    Events(#[from] EventError),
    #[error("{0}")]
    Invalid(String),
}

impl TriggerError {
    pub fn status(&self) -> u16 {
        match self {
            TriggerError::Events(e) => e.status(),
            TriggerError::Invalid(_) => 400,
        }
    }
}

/// One function's event settings, from its record and its serving revision.
#[derive(Clone, Debug)]
pub struct Settings {
    pub asynchronous: AsyncSpec,
    pub triggers: Vec<Trigger>,
    /// How long a delivery may take before the event is tried again: the function's timeout
    /// and a margin.
    pub visibility_ms: u64,
    /// Asynchronous invocations of this function in flight at once.
    pub concurrency: usize,
}

struct FunctionState {
    settings: Arc<RwLock<Settings>>,
    dispatcher: JoinHandle<()>,
    consumers: Vec<JoinHandle<()>>,
    crons: Vec<CronEntry>,
}

struct CronEntry {
    key: String,
    trigger: String,
    schedule: yun_cron::Schedule,
    created_ms: u64,
}

impl Drop for FunctionState {
    fn drop(&mut self) {
        self.dispatcher.abort();
        for c in &self.consumers {
            c.abort();
        }
    }
}

pub struct Triggers {
    queues: Arc<Queues>,
    invoker: Arc<dyn Invoker>,
    functions: Mutex<HashMap<String, FunctionState>>,
    /// Functions whose queues are known to exist.
    ensured: Mutex<std::collections::HashSet<String>>,
    shutdown: watch::Receiver<bool>,
}

/// How often cron schedules are looked at: ticks fire within this of their time.
pub const CRON_TICK: Duration = Duration::from_millis(200);
/// Longest a receive waits for a message before looking again.
const LONG_POLL: Duration = Duration::from_secs(20);

impl Triggers {
    pub fn new(queues: Arc<Queues>, invoker: Arc<dyn Invoker>, shutdown: watch::Receiver<bool>) -> Arc<Self> {
        let triggers = Arc::new(Triggers {
            queues,
            invoker,
            functions: Mutex::new(HashMap::new()),
            ensured: Mutex::default(),
            shutdown,
        });
        let t = triggers.clone();
        tokio::spawn(async move { t.cron_loop().await });
        triggers
    }

    pub fn queues(&self) -> &Arc<Queues> {
        &self.queues
    }

    fn store(&self) -> &EventStore {
        self.queues.store()
    }

    /// Checks a function's triggers without applying them (the queues exist, the schedules
    /// parse), so the control plane can refuse a bad one before storing it.
    pub fn check(&self, function: &str, settings: &Settings) -> Result<(), TriggerError> {
        settings.asynchronous.validate().map_err(TriggerError::Invalid)?;
        let mut ids = std::collections::BTreeSet::new();
        for trigger in &settings.triggers {
            trigger.validate().map_err(TriggerError::Invalid)?;
            if !ids.insert(trigger.id()) {
                return Err(TriggerError::Invalid(format!(
                    "two triggers of {function} are named {}",
                    trigger.id()
                )));
            }
            match trigger {
                Trigger::Queue { queue, .. } => {
                    if self.store().queue(queue)?.is_none() {
                        return Err(EventError::NoQueue(queue.clone()).into());
                    }
                }
                Trigger::Cron { .. } => {
                    schedule_of(trigger)?;
                }
                Trigger::Storage { .. } => {}
            }
        }
        for d in [&settings.asynchronous.on_success, &settings.asynchronous.on_failure].into_iter().flatten()
        {
            if let Destination::Queue(q) = d
                && self.store().queue(q)?.is_none()
            {
                return Err(EventError::NoQueue(q.clone()).into());
            }
        }
        Ok(())
    }

    /// Applies a function's event settings: its internal queue and dead-letter queue exist,
    /// its dispatcher runs, and its queue consumers and schedules are the ones given.
    pub fn configure(self: &Arc<Self>, function: &str, settings: Settings) -> Result<(), TriggerError> {
        self.check(function, &settings)?;
        self.ensure_queues(function)?;
        let mut functions = self.functions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(state) = functions.get_mut(function) {
            let same_triggers =
                state.settings.read().unwrap_or_else(|p| p.into_inner()).triggers == settings.triggers;
            *state.settings.write().unwrap_or_else(|p| p.into_inner()) = settings.clone();
            if same_triggers {
                return Ok(());
            }
            for c in state.consumers.drain(..) {
                c.abort();
            }
            let (consumers, crons) = self.start_triggers(function, &settings)?;
            state.consumers = consumers;
            state.crons = crons;
            return Ok(());
        }
        let shared = Arc::new(RwLock::new(settings.clone()));
        let t = self.clone();
        let (name, s) = (function.to_string(), shared.clone());
        let dispatcher = tokio::spawn(async move { t.dispatch_loop(name, s).await });
        let (consumers, crons) = self.start_triggers(function, &settings)?;
        functions
            .insert(function.to_string(), FunctionState { settings: shared, dispatcher, consumers, crons });
        Ok(())
    }

    /// Stops everything of a removed function and drops its pending events.
    pub fn remove(&self, function: &str) -> Result<(), TriggerError> {
        self.functions.lock().unwrap_or_else(|p| p.into_inner()).remove(function);
        self.ensured.lock().unwrap_or_else(|p| p.into_inner()).remove(function);
        for q in [function_queue(function), function_dlq(function)] {
            match self.store().delete_queue(&q) {
                Ok(_) | Err(EventError::NoQueue(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.store().delete_cron_cursors(&format!("{function}/"))?;
        Ok(())
    }

    fn ensure_queues(&self, function: &str) -> Result<(), TriggerError> {
        self.ensure_queues_once(function)?;
        self.ensured.lock().unwrap_or_else(|p| p.into_inner()).insert(function.to_string());
        Ok(())
    }

    /// Makes the function's queues exist with the settings the dispatcher relies on (each call
    /// a commit, so enqueue does it once per function, not per event).
    fn ensure_queues_once(&self, function: &str) -> Result<(), TriggerError> {
        let now = now_ms();
        // The dispatcher counts attempts itself; the queue's own limit only guards against a
        // message that keeps crashing yun mid-delivery.
        let dlq = function_dlq(function);
        self.store().create_internal_queue(
            &dlq,
            QueueConfig { retention_ms: 14 * 24 * 3600 * 1000, ..QueueConfig::default() },
            now,
        )?;
        let config = QueueConfig {
            max_receives: 100,
            dlq: Some(dlq),
            retention_ms: 14 * 24 * 3600 * 1000,
            ..QueueConfig::default()
        };
        match self.store().create_internal_queue(&function_queue(function), config.clone(), now) {
            Ok(_) => Ok(()),
            // Made earlier with other settings (by a topic publish, or an older yun): fix them.
            Err(EventError::Exists(_)) => {
                self.store().update_queue(&function_queue(function), config).map(|_| ()).map_err(Into::into)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn start_triggers(
        self: &Arc<Self>,
        function: &str,
        settings: &Settings,
    ) -> Result<(Vec<JoinHandle<()>>, Vec<CronEntry>), TriggerError> {
        let mut consumers = Vec::new();
        let mut crons = Vec::new();
        for trigger in &settings.triggers {
            match trigger {
                Trigger::Queue { queue, batch_size, window_ms, concurrency, .. } => {
                    for _ in 0..*concurrency {
                        let t = self.clone();
                        let c = Consumer {
                            function: function.to_string(),
                            queue: queue.clone(),
                            batch_size: *batch_size as usize,
                            window: Duration::from_millis(*window_ms),
                        };
                        consumers.push(tokio::spawn(async move { t.consume(c).await }));
                    }
                }
                Trigger::Cron { id, created_ms, .. } => crons.push(CronEntry {
                    key: format!("{function}/{id}"),
                    trigger: id.clone(),
                    schedule: schedule_of(trigger)?,
                    created_ms: *created_ms,
                }),
                // Matched when a change arrives (`object_changed`): nothing runs meanwhile.
                Trigger::Storage { .. } => {}
            }
        }
        Ok((consumers, crons))
    }

    fn is_ensured(&self, function: &str) -> bool {
        self.ensured.lock().unwrap_or_else(|p| p.into_inner()).contains(function)
    }

    /// Whether some function has a storage trigger (so the store's changes need relaying).
    pub fn has_storage_triggers(&self) -> bool {
        let functions = self.functions.lock().unwrap_or_else(|p| p.into_inner());
        functions.values().any(|state| {
            state.settings.read().unwrap_or_else(|p| p.into_inner()).triggers.iter().any(storage::is_storage)
        })
    }

    /// Stores an asynchronous invocation durably and returns its id: the caller may answer 202
    /// only after this returns.
    pub async fn enqueue(
        &self,
        function: &str,
        body: Bytes,
        mut attributes: BTreeMap<String, String>,
    ) -> Result<String, TriggerError> {
        if !self.ensured.lock().unwrap_or_else(|p| p.into_inner()).contains(function) {
            self.ensure_queues(function)?;
        }
        let id = new_id();
        attributes.insert(ATTR_ID.to_string(), id.clone());
        let message =
            NewMessage { body: body.to_vec(), delay_ms: None, group: None, dedup_id: None, attributes };
        // The record first: once the message is committed the dispatcher may deliver it at
        // once, and a `queued` record written after that would overwrite its outcome.
        let now = now_ms();
        let record = record_of(&id, function, InvocationStatus::Queued, 0, now, now);
        let store = self.queues.store().clone();
        tokio::task::spawn_blocking(move || store.put_invocation(&record))
            .await
            .map_err(|e| EventError::Db(e.to_string()))??;
        self.queues.send(&function_queue(function), vec![message]).await?;
        Ok(id)
    }

    /// Sends the dead letters of `function` back to be tried again; returns how many.
    pub async fn redrive(&self, function: &str) -> Result<u64, TriggerError> {
        Ok(self.queues.redrive(&function_dlq(function), &function_queue(function)).await?)
    }

    async fn dispatch_loop(self: Arc<Self>, function: String, settings: Arc<RwLock<Settings>>) {
        let queue = function_queue(&function);
        let concurrency = settings.read().unwrap_or_else(|p| p.into_inner()).concurrency.max(1);
        let slots = Arc::new(Semaphore::new(concurrency));
        let mut shutdown = self.shutdown.clone();
        loop {
            let Ok(first) = slots.clone().acquire_owned().await else { return };
            let mut bulk = first;
            let extra = slots.available_permits().min(9);
            if extra > 0
                && let Ok(more) = slots.clone().try_acquire_many_owned(extra as u32)
            {
                bulk.merge(more);
            }
            let visibility = settings.read().unwrap_or_else(|p| p.into_inner()).visibility_ms;
            let received = tokio::select! {
                _ = shutdown.wait_for(|s| *s) => return,
                r = self.queues.receive_wait(&queue, bulk.num_permits(), Some(visibility), LONG_POLL) => r,
            };
            match received {
                Ok(messages) => {
                    for m in messages {
                        let permit = bulk.split(1);
                        let (t, f, s) = (self.clone(), function.clone(), settings.clone());
                        tokio::spawn(async move {
                            t.deliver(&f, m, &s).await;
                            drop(permit);
                        });
                    }
                }
                Err(EventError::NoQueue(_)) => return,
                Err(e) => {
                    tracing::warn!(function, "receiving events failed: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// One attempt at one asynchronous event, and what follows from its outcome.
    async fn deliver(&self, function: &str, m: Received, settings: &RwLock<Settings>) {
        let s = settings.read().unwrap_or_else(|p| p.into_inner()).asynchronous.clone();
        let queue = function_queue(function);
        let id = m.attributes.get(ATTR_ID).cloned().unwrap_or_else(|| m.id.clone());
        let attempt = m.receive_count;
        let created = m.sent_ms;
        // No `running` record: it would cost a commit per delivery, and the outcome's follows
        // at once. A delivery in progress shows as `queued` with its attempts.

        let mut request = envelope::request_for(&m.attributes, Bytes::from(m.body.clone()));
        CloudEvent {
            id: id.clone(),
            source: m
                .attributes
                .get(ATTR_SOURCE)
                .cloned()
                .unwrap_or_else(|| format!("/yun/functions/{function}")),
            kind: m
                .attributes
                .get(ATTR_TYPE)
                .cloned()
                .unwrap_or_else(|| envelope::TYPE_INVOCATION.to_string()),
            time: envelope::rfc3339(m.sent_ms),
            subject: m.attributes.get(ATTR_SUBJECT).cloned(),
        }
        .apply(&mut request);
        if let Ok(v) = http::HeaderValue::from_str(&attempt.to_string()) {
            request.headers_mut().insert("x-yun-attempt", v);
        }
        // Every attempt's log lines carry the event's id, so `yun invocation ID` shows them all.
        if let Ok(v) = http::HeaderValue::from_str(&id) {
            request.headers_mut().insert("x-yun-invocation-id", v);
        }
        let delivery = Delivery {
            function,
            tag: m.attributes.get(ATTR_TAG).map(String::as_str),
            lambda: m.attributes.contains_key(ATTR_LAMBDA),
            request,
            trigger: match m.attributes.get(ATTR_TYPE).map(String::as_str) {
                Some(envelope::TYPE_CRON) => "cron",
                Some(envelope::TYPE_TOPIC) => "topic",
                Some(envelope::TYPE_STORAGE) => "storage",
                _ => "async",
            },
            attempt,
        };
        let outcome = self.invoker.invoke(delivery).await;
        let now = now_ms();
        let error = outcome
            .error
            .clone()
            .or_else(|| (!outcome.succeeded()).then(|| format!("status {}", outcome.status)));
        if outcome.succeeded() {
            // Off the queue and recorded in one commit.
            let record = InvocationRecord {
                last_status: Some(outcome.status),
                ..record_of(&id, function, InvocationStatus::Succeeded, attempt, created, now)
            };
            if let Err(e) = self.queues.delete_with_record(&queue, &m.receipt, record).await {
                tracing::warn!(function, "acknowledging event {id} failed: {e}");
            }
            if let Some(d) = &s.on_success {
                self.send_outcome(d, function, &id, "Success", attempt, &m, &outcome).await;
            }
            return;
        }
        let age = now.saturating_sub(m.sent_ms);
        if outcome.retryable() && attempt < s.max_attempts && age < s.max_age_ms {
            let delay = envelope::backoff_ms(s.retry_base_ms, attempt, fastrand::f64());
            if let Err(e) = self.queues.change_visibility(&queue, &m.receipt, delay).await {
                tracing::warn!(function, "scheduling the retry of {id} failed: {e}");
            }
            self.record(
                &id,
                function,
                InvocationStatus::Queued,
                attempt,
                created,
                error,
                Some(outcome.status),
            )
            .await;
            return;
        }
        let condition = if !outcome.retryable() {
            "Rejected"
        } else if age >= s.max_age_ms {
            "EventAgeExceeded"
        } else {
            "RetriesExhausted"
        };
        // Into the dead-letter queue first, then off the queue: a crash between the two leaves
        // the event in both, which redelivery tolerates; the other order could lose it.
        let mut attributes = m.attributes.clone();
        attributes.insert("yun.error".into(), error.clone().unwrap_or_default());
        attributes.insert("yun.condition".into(), condition.into());
        attributes.insert("yun.attempts".into(), attempt.to_string());
        let dead =
            NewMessage { body: m.body.clone(), delay_ms: None, group: None, dedup_id: None, attributes };
        if let Err(e) = self.queues.send(&function_dlq(function), vec![dead]).await {
            tracing::error!(function, "dead-lettering {id} failed, it will be tried again: {e}");
            return;
        }
        if let Err(e) = self.queues.delete(&queue, &m.receipt).await {
            tracing::warn!(function, "removing dead-lettered event {id} failed: {e}");
        }
        self.record(&id, function, InvocationStatus::Failed, attempt, created, error, Some(outcome.status))
            .await;
        if let Some(d) = &s.on_failure {
            self.send_outcome(d, function, &id, condition, attempt, &m, &outcome).await;
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn record(
        &self,
        id: &str,
        function: &str,
        status: InvocationStatus,
        attempts: u32,
        created_ms: u64,
        last_error: Option<String>,
        last_status: Option<u16>,
    ) {
        let record = InvocationRecord {
            last_error,
            last_status,
            ..record_of(id, function, status, attempts, created_ms, now_ms())
        };
        // A commit (and its fsync) is blocking work: off the async threads.
        let store = self.queues.store().clone();
        match tokio::task::spawn_blocking(move || store.put_invocation(&record)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(function, "recording invocation {id} failed: {e}"),
            Err(e) => tracing::warn!(function, "recording invocation {id} failed: {e}"),
        }
    }

    /// An outcome to a destination, in the shape of Lambda's destination records.
    #[allow(clippy::too_many_arguments)]
    async fn send_outcome(
        &self,
        destination: &Destination,
        function: &str,
        id: &str,
        condition: &str,
        attempts: u32,
        m: &Received,
        outcome: &Outcome,
    ) {
        let record = json!({
            "version": "1.0",
            "timestamp": envelope::rfc3339(now_ms()),
            "requestContext": {
                "requestId": id,
                "functionName": function,
                "condition": condition,
                "approximateInvokeCount": attempts,
            },
            "requestPayload": String::from_utf8_lossy(&m.body),
            "responseContext": { "statusCode": outcome.status, "errorMessage": outcome.error },
            "responsePayload": String::from_utf8_lossy(&outcome.body),
        });
        let body = serde_json::to_vec(&record).expect("json serializes");
        let mut attributes = BTreeMap::new();
        attributes.insert(ATTR_KIND.to_string(), KIND_EVENT.to_string());
        attributes.insert(ATTR_TYPE.to_string(), envelope::TYPE_DESTINATION.to_string());
        attributes.insert(ATTR_SOURCE.to_string(), format!("/yun/functions/{function}"));
        attributes.insert("content-type".to_string(), "application/json".to_string());
        let result = match destination {
            Destination::Queue(q) => {
                let message = NewMessage { body, delay_ms: None, group: None, dedup_id: None, attributes };
                self.queues.send(q, vec![message]).await.map(|_| ())
            }
            Destination::Function(f) => {
                self.enqueue(f.as_str(), Bytes::from(body), attributes).await.map(|_| ()).map_err(|e| match e
                {
                    TriggerError::Events(e) => e,
                    TriggerError::Invalid(m) => EventError::Invalid(m),
                })
            }
        };
        if let Err(e) = result {
            tracing::warn!(function, "sending the outcome of {id} to {destination} failed: {e}");
        }
    }

    async fn cron_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(CRON_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut shutdown = self.shutdown.clone();
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => return,
                _ = tick.tick() => {}
            }
            let due: Vec<(String, String, String, u64)> = {
                let functions = self.functions.lock().unwrap_or_else(|p| p.into_inner());
                let now = now_ms();
                let mut due = Vec::new();
                for (function, state) in functions.iter() {
                    for cron in &state.crons {
                        let last = self.store().cron_cursor(&cron.key).ok().flatten();
                        for t in cron.schedule.due(last, cron.created_ms, now) {
                            due.push((function.clone(), cron.key.clone(), cron.trigger.clone(), t));
                        }
                    }
                }
                due
            };
            for (function, key, trigger, tick_ms) in due {
                let id = new_id();
                let body = serde_json::to_vec(&json!({
                    "trigger": trigger,
                    "scheduled_time": envelope::rfc3339(tick_ms),
                }))
                .expect("json serializes");
                let mut attributes = BTreeMap::new();
                attributes.insert(ATTR_KIND.to_string(), KIND_EVENT.to_string());
                attributes.insert(ATTR_ID.to_string(), id.clone());
                attributes.insert(ATTR_TYPE.to_string(), envelope::TYPE_CRON.to_string());
                attributes.insert(ATTR_SOURCE.to_string(), format!("/yun/cron/{key}"));
                attributes.insert("content-type".to_string(), "application/json".to_string());
                let message = NewMessage { body, delay_ms: None, group: None, dedup_id: None, attributes };
                match self.queues.fire_cron(&key, tick_ms, &function_queue(&function), message).await {
                    // The dispatcher records it when it takes it (a record written here could
                    // land after the delivery's and overwrite it).
                    Ok(true) => {}
                    Ok(false) => {}
                    Err(e) => tracing::warn!(function, "firing schedule {key} failed: {e}"),
                }
            }
        }
    }

    async fn consume(self: Arc<Self>, c: Consumer) {
        let mut shutdown = self.shutdown.clone();
        loop {
            let received = tokio::select! {
                _ = shutdown.wait_for(|s| *s) => return,
                r = self.queues.receive_wait(&c.queue, c.batch_size, None, LONG_POLL) => r,
            };
            let mut batch = match received {
                Ok(b) if b.is_empty() => continue,
                Ok(b) => b,
                Err(EventError::NoQueue(_)) => {
                    tracing::warn!(function = c.function, "queue {} is gone: its trigger stops", c.queue);
                    return;
                }
                Err(e) => {
                    tracing::warn!(function = c.function, "receiving from {} failed: {e}", c.queue);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            // Wait a little for a fuller batch, as asked.
            let deadline = tokio::time::Instant::now() + c.window;
            while batch.len() < c.batch_size && !c.window.is_zero() {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                match self.queues.receive_wait(&c.queue, c.batch_size - batch.len(), None, left).await {
                    Ok(more) => batch.extend(more),
                    Err(_) => break,
                }
            }
            self.run_batch(&c, batch).await;
        }
    }

    /// Invokes the function with a batch. Records it reports as failed are retried alone; a
    /// batch that fails as a whole is split in two and each half tried, down to the one message
    /// that fails by itself, which the queue's receive limit then sends to its dead-letter queue.
    fn run_batch<'a>(
        &'a self,
        c: &'a Consumer,
        batch: Vec<Received>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let delivery = Delivery {
                function: &c.function,
                tag: None,
                lambda: false,
                request: batch_request(c, &batch),
                trigger: "queue",
                attempt: batch.iter().map(|m| m.receive_count).max().unwrap_or(1),
            };
            let outcome = self.invoker.invoke(delivery).await;
            let failed: Vec<&Received> = if outcome.succeeded() {
                match envelope::batch_item_failures(&outcome.body) {
                    Some(ids) => batch.iter().filter(|m| ids.contains(&m.id)).collect(),
                    None => vec![],
                }
            } else if batch.len() > 1 {
                let mut batch = batch;
                let second = batch.split_off(batch.len() / 2);
                self.run_batch(c, batch).await;
                self.run_batch(c, second).await;
                return;
            } else {
                batch.iter().collect()
            };
            for m in &batch {
                let result = if failed.iter().any(|f| f.id == m.id) {
                    let delay = envelope::backoff_ms(1000, m.receive_count, fastrand::f64());
                    self.queues.change_visibility(&c.queue, &m.receipt, delay).await.map(|_| ())
                } else {
                    self.queues.delete(&c.queue, &m.receipt).await.map(|_| ())
                };
                if let Err(e) = result {
                    tracing::warn!(
                        function = c.function,
                        "settling message {} of {} failed: {e}",
                        m.id,
                        c.queue
                    );
                }
            }
        })
    }
}

struct Consumer {
    function: String,
    queue: String,
    batch_size: usize,
    window: Duration,
}

/// A batch as its function sees it: Lambda's SQS event shape, in a CloudEvent.
fn batch_request(c: &Consumer, batch: &[Received]) -> http::Request<Bytes> {
    let records: Vec<_> = batch
        .iter()
        .map(|m| {
            let attributes: BTreeMap<&String, &String> =
                m.attributes.iter().filter(|(k, _)| !k.starts_with(envelope::ATTR_PREFIX)).collect();
            json!({
                "messageId": m.id,
                "receiptHandle": m.receipt,
                "body": String::from_utf8_lossy(&m.body),
                "attributes": {
                    "ApproximateReceiveCount": m.receive_count.to_string(),
                    "SentTimestamp": m.sent_ms.to_string(),
                    "ApproximateFirstReceiveTimestamp": m.first_received_ms.to_string(),
                    "MessageGroupId": m.group,
                },
                "messageAttributes": attributes,
                "eventSource": "yun:queue",
                "eventSourceARN": c.queue,
            })
        })
        .collect();
    let body = serde_json::to_vec(&json!({ "Records": records })).expect("json serializes");
    let mut request = http::Request::builder()
        .method(http::Method::POST)
        .uri("/")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Bytes::from(body))
        .expect("a plain request builds");
    CloudEvent {
        id: new_id(),
        source: format!("/yun/queues/{}", c.queue),
        kind: envelope::TYPE_QUEUE_BATCH.to_string(),
        time: envelope::rfc3339(now_ms()),
        subject: None,
    }
    .apply(&mut request);
    request
}

/// A trigger's own checks (shape, and that a schedule parses), without looking at queues.
pub fn validate_trigger(trigger: &Trigger) -> Result<(), TriggerError> {
    trigger.validate().map_err(TriggerError::Invalid)?;
    if matches!(trigger, Trigger::Cron { .. }) {
        schedule_of(trigger)?;
    }
    Ok(())
}

/// An invocation record with no error or status yet.
fn record_of(
    id: &str,
    function: &str,
    status: InvocationStatus,
    attempts: u32,
    created_ms: u64,
    updated_ms: u64,
) -> InvocationRecord {
    InvocationRecord {
        id: id.to_string(),
        function: function.to_string(),
        status,
        attempts,
        created_ms,
        updated_ms,
        last_error: None,
        last_status: None,
    }
}

fn schedule_of(trigger: &Trigger) -> Result<yun_cron::Schedule, TriggerError> {
    let Trigger::Cron { expression, timezone, missed, .. } = trigger else {
        return Err(TriggerError::Invalid("not a schedule".into()));
    };
    let missed = if missed == "skip" { yun_cron::Missed::Skip } else { yun_cron::Missed::RunOnce };
    let spec = yun_cron::ScheduleSpec { expression: expression.clone(), timezone: timezone.clone(), missed };
    yun_cron::Schedule::parse(&spec).map_err(|e| TriggerError::Invalid(e.to_string()))
}

/// A UUIDv7-like time-ordered id, so invocation ids sort by arrival.
fn new_id() -> String {
    let ms = now_ms();
    let r = fastrand::u128(..);
    let hi = (ms << 16) | 0x7000 | ((r >> 112) as u64 & 0x0fff);
    let lo = (r as u64 & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}
