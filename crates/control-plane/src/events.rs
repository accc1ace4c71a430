//! Events in the management API: queues and topics (a backend service functions and clients
//! use), a function's asynchronous settings and triggers, its asynchronous invocations and
//! their dead letters. The store is the events crate's; the delivery loops are the triggers
//! crate's, configured from here whenever a function changes.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::body::Body as Incoming;
use serde::Deserialize;
use serde_json::json;
use yun_events::{EventError, InvocationStatus, NewMessage, QueueConfig, Received, Subscription};
use yun_store::Rejected;
use yun_types::{AsyncSpec, ErrorCode, Function, FunctionName, Trigger, now_ms};

use crate::{ApiError, ApiResult, ControlPlane, bad, body, internal, read_json_body};

impl From<EventError> for ApiError {
    fn from(e: EventError) -> Self {
        let code = match e.status() {
            404 => ErrorCode::NotFound,
            409 => ErrorCode::Conflict,
            400 => ErrorCode::BadRequest,
            413 => ErrorCode::PayloadTooLarge,
            _ => ErrorCode::Internal,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<yun_triggers::TriggerError> for ApiError {
    fn from(e: yun_triggers::TriggerError) -> Self {
        match e {
            yun_triggers::TriggerError::Events(e) => e.into(),
            yun_triggers::TriggerError::Invalid(m) => bad(m),
        }
    }
}

/// A queue name a client may use: the platform's own queues stay the platform's.
fn public(queue: &str) -> Result<&str, ApiError> {
    if queue.starts_with(yun_events::INTERNAL_PREFIX) {
        return Err(bad(format!(
            "queue names starting with {} are the platform's own",
            yun_events::INTERNAL_PREFIX
        )));
    }
    Ok(queue)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendOne {
    body: String,
    #[serde(default)]
    delay_ms: Option<u64>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    dedup_id: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

impl SendOne {
    fn message(self) -> Result<NewMessage, ApiError> {
        if self.attributes.keys().any(|k| k.starts_with(yun_triggers::envelope::ATTR_PREFIX)) {
            return Err(bad("attribute names starting with yun. are the platform's own"));
        }
        Ok(NewMessage {
            body: self.body.into_bytes(),
            delay_ms: self.delay_ms,
            group: self.group,
            dedup_id: self.dedup_id,
            attributes: self.attributes,
        })
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SendRequest {
    Batch { messages: Vec<SendOne> },
    One(SendOne),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReceiveRequest {
    #[serde(default)]
    max: Option<usize>,
    #[serde(default)]
    wait_ms: Option<u64>,
    #[serde(default)]
    visibility_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteRequest {
    receipts: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VisibilityRequest {
    receipt: String,
    visibility_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RedriveRequest {
    to: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishRequest {
    body: String,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

fn message_view(m: &Received) -> serde_json::Value {
    let attributes: BTreeMap<&String, &String> =
        m.attributes.iter().filter(|(k, _)| !k.starts_with(yun_triggers::envelope::ATTR_PREFIX)).collect();
    json!({
        "id": m.id,
        "receipt": m.receipt,
        "body": String::from_utf8_lossy(&m.body),
        "attributes": attributes,
        "group": m.group,
        "receive_count": m.receive_count,
        "sent_ms": m.sent_ms,
        "first_received_ms": m.first_received_ms,
    })
}

async fn json_body<T: serde::de::DeserializeOwned>(
    incoming: Incoming,
    max: usize,
    what: &str,
) -> Result<T, ApiError> {
    let bytes = read_json_body(incoming, max).await?;
    serde_json::from_slice(&bytes).map_err(|e| bad(format!("invalid {what}: {e}")))
}

impl ControlPlane {
    fn events(&self) -> &yun_events::EventStore {
        self.triggers.queues().store()
    }

    /// The triggers' view of a function: its record's settings and its serving revision's
    /// timeout (a delivery taking longer than that and a margin is tried again).
    pub(crate) fn trigger_settings(&self, function: &Function) -> Result<yun_triggers::Settings, ApiError> {
        let timeout_ms = self
            .store
            .revision(&function.name, function.active_revision)?
            .map_or(yun_types::DEFAULT_TIMEOUT_MS, |r| r.spec.limits.timeout_ms);
        Ok(yun_triggers::Settings {
            asynchronous: function.asynchronous.clone(),
            triggers: function.triggers.clone(),
            visibility_ms: timeout_ms + 10_000,
            concurrency: function.scale.max_instances.map_or(10, |m| m.clamp(1, 16) as usize),
        })
    }

    pub(crate) fn configure_triggers(&self, function: &Function) -> Result<(), ApiError> {
        let settings = self.trigger_settings(function)?;
        Ok(self.triggers.configure(function.name.as_str(), settings)?)
    }

    pub(crate) fn list_queues(&self) -> ApiResult {
        let now = now_ms();
        let mut out = Vec::new();
        for q in self.events().queues()? {
            if q.name.starts_with(yun_events::INTERNAL_PREFIX) {
                continue;
            }
            let stats = self.events().stats(&q.name, now)?;
            out.push(
                json!({ "name": q.name, "config": q.config, "created_ms": q.created_ms, "stats": stats }),
            );
        }
        Ok(body::json(200, &json!({ "queues": out })))
    }

    pub(crate) async fn create_queue(&self, name: &str, incoming: Incoming) -> ApiResult {
        let name = public(name)?;
        let bytes = read_json_body(incoming, self.limits.max_json_bytes).await?;
        let config: QueueConfig = if bytes.iter().all(u8::is_ascii_whitespace) {
            QueueConfig::default()
        } else {
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("invalid queue settings: {e}")))?
        };
        let info = self.events().create_queue(name, config, now_ms())?;
        Ok(body::json(
            200,
            &json!({ "name": info.name, "config": info.config, "created_ms": info.created_ms }),
        ))
    }

    pub(crate) fn describe_queue(&self, name: &str) -> ApiResult {
        let info = self.events().queue(name)?.ok_or_else(|| EventError::NoQueue(name.to_string()))?;
        let stats = self.events().stats(name, now_ms())?;
        Ok(body::json(
            200,
            &json!({ "name": info.name, "config": info.config, "created_ms": info.created_ms, "stats": stats }),
        ))
    }

    pub(crate) async fn delete_queue(&self, name: &str) -> ApiResult {
        let name = public(name)?;
        let _changing = self.changes.lock().await;
        for f in self.store.functions()? {
            let consumes =
                f.triggers.iter().any(|t| matches!(t, Trigger::Queue { queue, .. } if queue == name));
            if consumes {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    format!("queue {name} is consumed by function {}: remove its trigger first", f.name),
                ));
            }
        }
        if !self.events().delete_queue(name)? {
            return Err(EventError::NoQueue(name.to_string()).into());
        }
        Ok(body::json(200, &json!({ "deleted": name })))
    }

    pub(crate) async fn send_messages(&self, queue: &str, incoming: Incoming) -> ApiResult {
        let queue = public(queue)?;
        let req: SendRequest = json_body(incoming, self.limits.max_json_bytes, "message").await?;
        let messages = match req {
            SendRequest::Batch { messages } => messages,
            SendRequest::One(m) => vec![m],
        };
        if messages.is_empty() || messages.len() > yun_events::MAX_BATCH {
            return Err(bad(format!("send 1 to {} messages at a time", yun_events::MAX_BATCH)));
        }
        let messages = messages.into_iter().map(SendOne::message).collect::<Result<Vec<_>, _>>()?;
        let ids = self.triggers.queues().send(queue, messages).await?;
        Ok(body::json(201, &json!({ "ids": ids })))
    }

    pub(crate) async fn receive_messages(&self, queue: &str, incoming: Incoming) -> ApiResult {
        let queue = public(queue)?;
        let bytes = read_json_body(incoming, self.limits.max_json_bytes).await?;
        let req: ReceiveRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
            ReceiveRequest::default()
        } else {
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("invalid receive: {e}")))?
        };
        let max = req.max.unwrap_or(1);
        if !(1..=yun_events::MAX_BATCH).contains(&max) {
            return Err(bad(format!("max must be 1 to {}", yun_events::MAX_BATCH)));
        }
        let wait = req.wait_ms.unwrap_or(0);
        if wait > 20_000 {
            return Err(bad("wait_ms is at most 20000 (20 s)"));
        }
        let mut shutdown = self.shutdown.clone();
        let received = tokio::select! {
            r = self.triggers.queues().receive_wait(queue, max, req.visibility_ms, Duration::from_millis(wait)) => r?,
            _ = shutdown.wait_for(|s| *s) => Vec::new(),
        };
        let list: Vec<_> = received.iter().map(message_view).collect();
        Ok(body::json(200, &json!({ "messages": list })))
    }

    pub(crate) async fn delete_messages(&self, queue: &str, incoming: Incoming) -> ApiResult {
        let queue = public(queue)?;
        let req: DeleteRequest = json_body(incoming, self.limits.max_json_bytes, "delete").await?;
        let mut deleted = 0;
        for receipt in &req.receipts {
            deleted += u64::from(self.triggers.queues().delete(queue, receipt).await?);
        }
        Ok(body::json(200, &json!({ "deleted": deleted })))
    }

    pub(crate) async fn change_visibility(&self, queue: &str, incoming: Incoming) -> ApiResult {
        let queue = public(queue)?;
        let req: VisibilityRequest =
            json_body(incoming, self.limits.max_json_bytes, "visibility change").await?;
        let changed =
            self.triggers.queues().change_visibility(queue, &req.receipt, req.visibility_ms).await?;
        if !changed {
            return Err(ApiError::new(ErrorCode::NotFound, "no message in flight with that receipt"));
        }
        Ok(body::json(200, &json!({ "changed": true })))
    }

    pub(crate) fn purge_queue(&self, queue: &str) -> ApiResult {
        let queue = public(queue)?;
        let purged = self.events().purge(queue)?;
        Ok(body::json(200, &json!({ "purged": purged })))
    }

    pub(crate) async fn redrive_queue(&self, queue: &str, incoming: Incoming) -> ApiResult {
        let queue = public(queue)?;
        let req: RedriveRequest = json_body(incoming, self.limits.max_json_bytes, "redrive").await?;
        let moved = self.triggers.queues().redrive(queue, public(&req.to)?).await?;
        Ok(body::json(200, &json!({ "moved": moved })))
    }

    pub(crate) fn list_topics(&self) -> ApiResult {
        Ok(body::json(200, &json!({ "topics": self.events().topics()? })))
    }

    pub(crate) fn create_topic(&self, name: &str) -> ApiResult {
        let info = self.events().create_topic(name, now_ms())?;
        Ok(body::json(200, &json!(info)))
    }

    pub(crate) fn delete_topic(&self, name: &str) -> ApiResult {
        if !self.events().delete_topic(name)? {
            return Err(EventError::NoTopic(name.to_string()).into());
        }
        Ok(body::json(200, &json!({ "deleted": name })))
    }

    pub(crate) async fn subscribe(&self, topic: &str, incoming: Incoming) -> ApiResult {
        let sub: Subscription = json_body(incoming, self.limits.max_json_bytes, "subscription").await?;
        match &sub {
            Subscription::Queue(q) => {
                public(q)?;
            }
            Subscription::Function(f) => {
                let name = FunctionName::new(f.clone()).map_err(|e| bad(e.to_string()))?;
                self.require(&name)?;
            }
        }
        self.events().subscribe(topic, sub.clone())?;
        Ok(body::json(201, &json!({ "topic": topic, "subscription": sub })))
    }

    pub(crate) async fn unsubscribe(&self, topic: &str, incoming: Incoming) -> ApiResult {
        let sub: Subscription = json_body(incoming, self.limits.max_json_bytes, "subscription").await?;
        if !self.events().unsubscribe(topic, &sub)? {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("topic {topic} has no such subscription"),
            ));
        }
        Ok(body::json(200, &json!({ "topic": topic, "removed": sub })))
    }

    pub(crate) async fn publish_topic(&self, topic: &str, incoming: Incoming) -> ApiResult {
        let req: PublishRequest = json_body(incoming, self.limits.max_json_bytes, "message").await?;
        if req.attributes.keys().any(|k| k.starts_with(yun_triggers::envelope::ATTR_PREFIX)) {
            return Err(bad("attribute names starting with yun. are the platform's own"));
        }
        let mut attributes = req.attributes;
        // A function subscribed gets it as a CloudEvent from the topic.
        attributes
            .insert(yun_triggers::envelope::ATTR_KIND.into(), yun_triggers::envelope::KIND_EVENT.into());
        attributes
            .insert(yun_triggers::envelope::ATTR_TYPE.into(), yun_triggers::envelope::TYPE_TOPIC.into());
        attributes.insert(yun_triggers::envelope::ATTR_SOURCE.into(), format!("/yun/topics/{topic}"));
        let (id, deliveries) =
            self.triggers.queues().publish(topic, req.body.into_bytes(), attributes).await?;
        Ok(body::json(201, &json!({ "id": id, "deliveries": deliveries })))
    }

    pub(crate) async fn set_async(&self, name: &FunctionName, incoming: Incoming) -> ApiResult {
        let spec: AsyncSpec =
            json_body(incoming, self.limits.max_json_bytes, "asynchronous settings").await?;
        spec.validate().map_err(bad)?;
        let _changing = self.changes.lock().await;
        let mut probe = self.require(name)?;
        probe.asynchronous = spec.clone();
        self.triggers.check(name.as_str(), &self.trigger_settings(&probe)?)?;
        let updated = self
            .update_record(name, move |f| {
                f.asynchronous = spec.clone();
                Ok(())
            })
            .await?;
        self.configure_triggers(&updated)?;
        Ok(body::json(
            200,
            &json!({ "name": name, "async": updated.asynchronous, "triggers": updated.triggers }),
        ))
    }

    pub(crate) async fn add_trigger(&self, name: &FunctionName, incoming: Incoming) -> ApiResult {
        let mut trigger: Trigger = json_body(incoming, self.limits.max_json_bytes, "trigger").await?;
        if let Trigger::Cron { created_ms, .. } = &mut trigger {
            *created_ms = now_ms();
        }
        self.check_storage_trigger(&trigger)?;
        let _changing = self.changes.lock().await;
        let mut probe = self.require(name)?;
        if probe.triggers.iter().any(|t| t.id() == trigger.id()) {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("function {name} already has a trigger named {}", trigger.id()),
            ));
        }
        probe.triggers.push(trigger.clone());
        self.triggers.check(name.as_str(), &self.trigger_settings(&probe)?)?;
        let t = trigger.clone();
        let updated = self
            .update_record(name, move |f| {
                f.triggers.push(t.clone());
                Ok(())
            })
            .await?;
        self.configure_triggers(&updated)?;
        Ok(body::json(201, &json!({ "name": name, "trigger": trigger, "triggers": updated.triggers })))
    }

    pub(crate) async fn delete_trigger(&self, name: &FunctionName, id: &str) -> ApiResult {
        let _changing = self.changes.lock().await;
        let id = id.to_string();
        let updated = self
            .update_record(name, move |f| {
                let before = f.triggers.len();
                f.triggers.retain(|t| t.id() != id);
                if f.triggers.len() == before {
                    return Err(Rejected::new(
                        ErrorCode::NotFound,
                        format!("function {} has no trigger {id}", f.name),
                    ));
                }
                Ok(())
            })
            .await?;
        self.configure_triggers(&updated)?;
        Ok(body::json(200, &json!({ "name": name, "triggers": updated.triggers })))
    }

    /// `GET /v1/functions/NAME/invocations?status=&since=&trigger=&limit=`: one row per
    /// invocation, newest first. A run's row comes from its record (an asynchronous invocation's
    /// latest attempt, with the attempts and overall status of its event); asynchronous
    /// invocations that have not run yet, or that were dead-lettered, come from the event store.
    pub(crate) fn list_invocations(&self, name: &FunctionName, query: Option<&str>) -> ApiResult {
        self.require(name)?;
        let mut status = None;
        let mut limit = 100usize;
        let mut filter = yun_telemetry::Filter::default();
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match k.as_ref() {
                "status" => status = Some(parse_status(&v)?),
                "limit" => limit = v.parse().map_err(|_| bad(format!("invalid limit: {v:?}")))?,
                "since" => {
                    filter.since_ms =
                        Some(v.parse().map_err(|_| bad("since (milliseconds since the Unix epoch)"))?)
                }
                "trigger" => filter.trigger = Some(v.into_owned()),
                _ => return Err(bad(format!("unknown query parameter {k:?}"))),
            }
        }
        let function = name.as_str();
        let since = filter.since_ms.unwrap_or(0);
        let mut rows: Vec<(u64, String, serde_json::Value)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let run_status = match status {
            None => Some(None),
            Some(InvocationStatus::Succeeded) => Some(Some(false)),
            Some(InvocationStatus::Failed) => Some(Some(true)),
            // Only the event store knows these.
            Some(_) => None,
        };
        if let (Some(failed), Some(records)) = (run_status, self.records()) {
            let wanted = yun_telemetry::Filter { failed, ..filter.clone() };
            for run in records.list(function, &wanted, limit).map_err(internal)? {
                if !seen.insert(run.id.clone()) {
                    continue;
                }
                let event = if run.trigger == "async" { self.events().invocation(&run.id)? } else { None };
                let row = run_row(&run, event.as_ref());
                if let (Some(want), Some(e)) = (status, &event)
                    && e.status != want
                {
                    continue;
                }
                rows.push((run.start_ms, run.id.clone(), row));
            }
        }
        if filter.trigger.as_deref().is_none_or(|t| t == "async") {
            let wanted: Vec<InvocationStatus> = match status {
                Some(s) => vec![s],
                None => {
                    vec![InvocationStatus::Queued, InvocationStatus::Running, InvocationStatus::DeadLettered]
                }
            };
            for s in wanted {
                for e in self.events().invocations(function, Some(s), limit)? {
                    if e.created_ms >= since && seen.insert(e.id.clone()) {
                        rows.push((e.created_ms, e.id.clone(), event_row(&e)));
                    }
                }
            }
        }
        rows.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
        rows.truncate(limit);
        let rows: Vec<serde_json::Value> = rows.into_iter().map(|(_, _, r)| r).collect();
        Ok(body::json(200, &json!({ "invocations": rows })))
    }

    /// One invocation, of any trigger: the record of each run (an asynchronous invocation's
    /// attempts), its event's status when it was asynchronous, and every log line it wrote.
    pub(crate) fn invocation(&self, id: &str) -> ApiResult {
        let event = self.events().invocation(id)?;
        let runs = match self.records() {
            Some(records) => records.get(id).map_err(internal)?,
            None => Vec::new(),
        };
        let function =
            runs.first().map(|r| r.function.clone()).or_else(|| event.as_ref().map(|e| e.function.clone()));
        let Some(function) = function else {
            return Err(ApiError::new(ErrorCode::NotFound, format!("no invocation {id}")));
        };
        // Invocation ids are UUIDv7: their first 48 bits are the time they were made, which
        // bounds where in the logs to look.
        let since = runs
            .first()
            .map(|r| r.start_ms)
            .or_else(|| yun_types::uuid_v7_ms(id))
            .map_or(0, |ms| ms.saturating_sub(1000));
        let entries = self.logs.read(&function, since, 100_000).map_err(internal)?;
        let lines: Vec<_> = entries.into_iter().filter(|e| e.invocation_id == id).collect();
        Ok(body::json(
            200,
            &json!({
                "id": id,
                "function": function,
                "async": event,
                "runs": runs,
                "logs": lines,
            }),
        ))
    }

    pub(crate) async fn redrive_function(&self, name: &FunctionName) -> ApiResult {
        self.require(name)?;
        let moved = self.triggers.redrive(name.as_str()).await?;
        Ok(body::json(200, &json!({ "name": name, "moved": moved })))
    }

    /// Changes the function's record in one transaction without touching its routing.
    pub(crate) async fn update_record(
        &self,
        name: &FunctionName,
        mut edit: impl FnMut(&mut Function) -> Result<(), Rejected> + Send + 'static,
    ) -> Result<Function, ApiError> {
        let store = self.store.clone();
        let n = name.clone();
        tokio::task::spawn_blocking(move || store.update_function(&n, now_ms(), &mut edit))
            .await
            .map_err(internal)??
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no function named {name}")))
    }
}

/// A run's row: its record, its outcome as a status, and for an asynchronous invocation its
/// event's attempts and overall status.
fn run_row(run: &yun_telemetry::Record, event: Option<&yun_events::InvocationRecord>) -> serde_json::Value {
    let mut row = serde_json::to_value(run).unwrap_or_default();
    let status = match event {
        Some(e) => e.status.as_str(),
        None if run.failed() => "failed",
        None => "succeeded",
    };
    row["status"] = json!(status);
    row["http_status"] = json!(run.status);
    if let Some(e) = event {
        row["attempts"] = json!(e.attempts);
        row["last_error"] = json!(e.last_error);
        row["last_status"] = json!(e.last_status);
        row["updated_ms"] = json!(e.updated_ms);
    }
    row
}

/// The row of an asynchronous invocation that has no run to show (waiting, or dead-lettered).
fn event_row(e: &yun_events::InvocationRecord) -> serde_json::Value {
    json!({
        "id": e.id,
        "function": e.function,
        "trigger": "async",
        "status": e.status.as_str(),
        "start_ms": e.created_ms,
        "attempts": e.attempts,
        "last_error": e.last_error,
        "last_status": e.last_status,
        "updated_ms": e.updated_ms,
    })
}

fn parse_status(s: &str) -> Result<InvocationStatus, ApiError> {
    s.parse::<InvocationStatus>()
        .map_err(|_| bad(format!("unknown status {s:?}: use queued, succeeded or failed")))
}
