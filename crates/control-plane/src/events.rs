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

    pub(crate) fn list_invocations(&self, name: &FunctionName, query: Option<&str>) -> ApiResult {
        self.require(name)?;
        let mut status = None;
        let mut limit = 100;
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match k.as_ref() {
                "status" => {
                    status = Some(parse_status(&v)?);
                }
                "limit" => limit = v.parse().map_err(|_| bad(format!("invalid limit: {v:?}")))?,
                _ => return Err(bad(format!("unknown query parameter {k:?}"))),
            }
        }
        let records = self.events().invocations(name.as_str(), status, limit)?;
        Ok(body::json(200, &json!({ "invocations": records })))
    }

    /// One invocation, of any trigger: its asynchronous record when it has one, what its
    /// REPORT line says (start, durations, billed time, memory, status, trace), and every log
    /// line it wrote.
    pub(crate) fn invocation(&self, id: &str) -> ApiResult {
        let record = self.events().invocation(id)?;
        // Invocation ids are UUIDv7: their first 48 bits are the time they were made, which
        // bounds where in the logs to look.
        let since = uuid_v7_ms(id).map_or(0, |ms| ms.saturating_sub(1000));
        let functions: Vec<String> = match &record {
            Some(r) => vec![r.function.clone()],
            None => self.store.functions()?.into_iter().map(|f| f.name.to_string()).collect(),
        };
        let mut lines = Vec::new();
        let mut function = record.as_ref().map(|r| r.function.clone());
        for f in &functions {
            let entries = self.logs.read(f, since, 100_000).map_err(internal)?;
            let mine: Vec<_> = entries.into_iter().filter(|e| e.invocation_id == id).collect();
            if !mine.is_empty() {
                function = Some(f.clone());
                lines = mine;
                break;
            }
        }
        if record.is_none() && lines.is_empty() {
            return Err(ApiError::new(ErrorCode::NotFound, format!("no invocation {id}")));
        }
        let reports: Vec<serde_json::Value> = lines
            .iter()
            .filter(|e| e.stream == yun_telemetry::LogStream::Platform && e.line.starts_with("REPORT "))
            .map(|e| report_fields(&e.line, e.revision, e.ts_ms))
            .collect();
        Ok(body::json(
            200,
            &json!({
                "id": id,
                "function": function,
                "async": record,
                "reports": reports,
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

/// The time a UUIDv7 was made (its first 48 bits), if `id` is one.
fn uuid_v7_ms(id: &str) -> Option<u64> {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || hex.as_bytes().get(12) != Some(&b'7') {
        return None;
    }
    u64::from_str_radix(&hex[..12], 16).ok()
}

/// A REPORT line's fields as numbers: `Start: cold Duration: 1.20 ms Billed Duration: 2 ms ...`.
fn report_fields(line: &str, revision: u64, ts_ms: u64) -> serde_json::Value {
    let rest = line.trim_start_matches("REPORT ");
    let keys = [
        "Start",
        "Duration",
        "Billed Duration",
        "Memory Size",
        "Total",
        "Status",
        "Init Duration",
        "Waited",
        "Trace",
    ];
    let mut out = serde_json::Map::new();
    out.insert("revision".into(), json!(revision));
    out.insert("ended_ms".into(), json!(ts_ms));
    for key in keys {
        let marker = format!("{key}: ");
        // The plain "Duration: " comes first in the line, before "Billed Duration: " and
        // "Init Duration: ", so the first match is the right one for every key.
        let Some(at) = rest.find(&marker) else { continue };
        let value = rest[at + marker.len()..].split(' ').next().unwrap_or("");
        let name = key.to_ascii_lowercase().replace(' ', "_");
        let v = match value.parse::<f64>() {
            Ok(n) if key != "Trace" => json!(n),
            _ => json!(value),
        };
        let name = match key {
            "Duration" | "Billed Duration" | "Total" | "Init Duration" | "Waited" => format!("{name}_ms"),
            "Memory Size" => "memory_mb".to_string(),
            _ => name,
        };
        out.insert(name, v);
    }
    serde_json::Value::Object(out)
}

fn parse_status(s: &str) -> Result<InvocationStatus, ApiError> {
    s.parse::<InvocationStatus>()
        .map_err(|_| bad(format!("unknown status {s:?}: use queued, succeeded or failed")))
}
