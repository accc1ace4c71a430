//! Traffic among a function's revisions: splits, stickiness, tags, rollbacks, and the rollout
//! controller that steps a gradual rollout forward or rolls it back from the new revision's own
//! invocation results.
//!
//! The decisions are the traffic crate's (pure); this module reads and writes the store and
//! republishes the routing. The controller runs beside the API, never on the invocation path:
//! the gateway only counts outcomes into the deployment's lock-free recorder.

use std::sync::Arc;
use std::time::Duration;

use crate::body::Body as Incoming;
use serde::Deserialize;
use serde_json::json;
use yun_store::Rejected;
use yun_telemetry::LogSink as _;
use yun_traffic::Decision;
use yun_types::{
    ErrorCode, Function, FunctionName, Rollout, RolloutSpec, RolloutStatus, Split, Sticky, TrafficTarget,
    now_ms,
};

use crate::{ApiError, ApiResult, ControlPlane, bad, body, read_json_body};

/// How often the controller looks at rollouts in progress. A step lasts a tenth of the rollout
/// by default, so even a 10 s rollout is stepped on time.
pub(crate) const CONTROLLER_TICK: Duration = Duration::from_millis(250);

/// `?rollout_ms=600000[&max_error_rate=0.05][&max_p99_ms=500][&steps=10][&min_requests=20]`
/// on a deploy.
pub(crate) fn parse_rollout_query(query: Option<&str>) -> Result<Option<RolloutSpec>, ApiError> {
    let mut spec: Option<RolloutSpec> = None;
    let mut extra = Vec::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let number = |what: &str| v.parse::<f64>().map_err(|_| bad(format!("invalid {what}: {v:?}")));
        match k.as_ref() {
            "rollout_ms" => spec = Some(RolloutSpec::new(number("rollout_ms")? as u64)),
            "max_error_rate" | "max_p99_ms" | "steps" | "min_requests" => {
                extra.push((k.to_string(), number(&k)?))
            }
            _ => return Err(bad(format!("unknown query parameter {k:?}"))),
        }
    }
    let Some(mut spec) = spec else {
        if let Some((k, _)) = extra.first() {
            return Err(bad(format!("{k} applies to a rollout: give rollout_ms too")));
        }
        return Ok(None);
    };
    for (k, v) in extra {
        match k.as_str() {
            "max_error_rate" => spec.max_error_rate = v,
            "max_p99_ms" => spec.max_p99_ms = Some(v as u64),
            "steps" => spec.steps = v as u32,
            _ => spec.min_requests = v as u64,
        }
    }
    spec.validate().map_err(|e| bad(e.to_string()))?;
    Ok(Some(spec))
}

/// What a deploy does with traffic: a rollout from the stable revision when asked for (and
/// there is one), else all traffic to the new revision at once.
pub(crate) fn route_new_revision(f: &mut Function, rollout: Option<RolloutSpec>, now: u64) {
    let new = f.latest_revision;
    match rollout {
        Some(spec) if f.active_revision != 0 => start_rollout(f, new, spec, now),
        _ => {
            f.rollout = None;
            f.route_all_to(new);
        }
    }
}

fn start_rollout(f: &mut Function, to: u64, spec: RolloutSpec, now: u64) {
    // A rollout in progress is superseded: the new one starts from the stable revision.
    let rollout = Rollout::start(f.active_revision, to, spec, now);
    f.traffic = Some(rollout.split());
    f.rollout = Some(rollout);
}

pub(crate) fn rollout_view(rollout: Option<&Rollout>) -> serde_json::Value {
    let Some(r) = rollout else { return serde_json::Value::Null };
    let (state, at_ms, reason) = match &r.status {
        RolloutStatus::Progressing => ("progressing", None, None),
        RolloutStatus::Completed { at_ms } => ("completed", Some(*at_ms), None),
        RolloutStatus::RolledBack { at_ms, reason } => ("rolled-back", Some(*at_ms), Some(reason.as_str())),
    };
    json!({
        "from": r.from,
        "to": r.to,
        "state": state,
        "percent": r.percent,
        "started_ms": r.started_ms,
        "duration_ms": r.spec.duration_ms,
        "steps": r.spec.steps,
        "max_error_rate": r.spec.max_error_rate,
        "max_p99_ms": r.spec.max_p99_ms,
        "min_requests": r.spec.min_requests,
        "ended_ms": at_ms,
        "reason": reason,
        "observed": {
            "requests": r.observed.requests,
            "errors": r.observed.errors,
            "error_rate": r.observed.error_rate(),
            "p99_ms": r.observed.p99_ms(),
        },
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrafficRequest {
    /// The split; absent leaves it as it is.
    #[serde(default)]
    split: Option<Vec<TrafficTarget>>,
    /// `header:NAME` or `cookie:NAME`; an empty string turns stickiness off.
    #[serde(default)]
    sticky: Option<String>,
    /// Moves traffic to the split's single revision gradually instead of at once.
    #[serde(default)]
    rollout: Option<RolloutSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackRequest {
    #[serde(default)]
    to: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TagRequest {
    revision: u64,
}

fn rejected(message: impl Into<String>) -> Rejected {
    Rejected::new(ErrorCode::BadRequest, message)
}

impl ControlPlane {
    /// Changes the function's record with `edit` in one transaction, then routes by it.
    async fn change_function(
        &self,
        name: &FunctionName,
        edit: impl FnMut(&mut Function) -> Result<(), Rejected> + Send + 'static,
    ) -> Result<Function, ApiError> {
        let updated = self.update_record(name, edit).await?;
        self.publish(&updated, true).await?;
        Ok(updated)
    }

    fn traffic_view(&self, f: &Function) -> serde_json::Value {
        json!({
            "name": f.name,
            "active_revision": f.active_revision,
            "previous_revision": f.previous_revision,
            "traffic": f.split(),
            "sticky": f.sticky.as_ref().map(|s| s.to_string()),
            "tags": self.tags_view(f),
            "rollout": rollout_view(f.rollout.as_ref()),
        })
    }

    pub(crate) fn tags_view(&self, f: &Function) -> serde_json::Value {
        let base = self.function_url(&f.name);
        let base = base.trim_end_matches('/');
        let tags: serde_json::Map<String, serde_json::Value> = f
            .tags
            .iter()
            .map(|(tag, rev)| (tag.clone(), json!({ "revision": rev, "url": format!("{base}@{tag}/") })))
            .collect();
        serde_json::Value::Object(tags)
    }

    pub(crate) async fn set_traffic(&self, name: &FunctionName, incoming: Incoming) -> ApiResult {
        let bytes = read_json_body(incoming, self.limits.max_json_bytes).await?;
        let req: TrafficRequest =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("invalid traffic change: {e}")))?;
        if req.split.is_none() && req.sticky.is_none() {
            return Err(bad("say what to change: a split (REV=PERCENT ...), stickiness, or both"));
        }
        let split = req.split.map(Split::new).transpose().map_err(|e| bad(e.to_string()))?;
        let sticky = match req.sticky.as_deref() {
            None => None,
            Some("") => Some(None),
            Some(s) => Some(Some(Sticky::parse(s).map_err(|e| bad(e.to_string()))?)),
        };
        if let Some(spec) = &req.rollout {
            spec.validate().map_err(|e| bad(e.to_string()))?;
            if split.as_ref().is_none_or(|s| s.targets().len() != 1) {
                return Err(bad(
                    "a rollout moves all traffic to one revision: give that revision as REV=100",
                ));
            }
        }
        let _changing = self.changes.lock().await;
        let now = now_ms();
        let rollout = req.rollout;
        let updated = self
            .change_function(name, move |f| {
                if let Some(split) = &split {
                    split.check_known(|n| f.has_revision(n)).map_err(|e| rejected(e.to_string()))?;
                    let only = (split.targets().len() == 1).then(|| split.targets()[0].revision);
                    match (&rollout, only) {
                        (Some(spec), Some(to)) => {
                            Rollout::check(f.active_revision, to, spec)
                                .map_err(|e| rejected(e.to_string()))?;
                            start_rollout(f, to, spec.clone(), now);
                        }
                        (_, Some(to)) => {
                            f.rollout = None;
                            f.route_all_to(to);
                        }
                        (_, None) => {
                            f.rollout = None;
                            f.traffic = Some(split.clone());
                        }
                    }
                }
                if let Some(sticky) = &sticky {
                    f.sticky = sticky.clone();
                }
                Ok(())
            })
            .await?;
        self.forget_rollout(name);
        Ok(body::json(200, &self.traffic_view(&updated)))
    }

    pub(crate) async fn rollback(&self, name: &FunctionName, incoming: Incoming) -> ApiResult {
        let bytes = read_json_body(incoming, self.limits.max_json_bytes).await?;
        let req: RollbackRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
            RollbackRequest { to: None }
        } else {
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("invalid rollback: {e}")))?
        };
        let _changing = self.changes.lock().await;
        let now = now_ms();
        let updated = self
            .change_function(name, move |f| {
                let split_or_rollout = f.traffic.is_some() || f.rollout_in_progress();
                let target = match req.to {
                    Some(n) if f.has_revision(n) => n,
                    Some(n) => return Err(rejected(format!("revision {n} does not exist"))),
                    // Mid-change, back to where it started; otherwise to the revision before.
                    None if split_or_rollout => f.active_revision,
                    None => f.previous_revision.ok_or_else(|| {
                        rejected("there is no earlier revision to roll back to: give one with --to REV")
                    })?,
                };
                if let Some(r) = f.rollout.as_mut().filter(|r| matches!(r.status, RolloutStatus::Progressing))
                {
                    r.status = RolloutStatus::RolledBack { at_ms: now, reason: "rolled back by hand".into() };
                }
                f.route_all_to(target);
                Ok(())
            })
            .await?;
        self.forget_rollout(name);
        Ok(body::json(200, &self.traffic_view(&updated)))
    }

    pub(crate) async fn set_tag(&self, name: &FunctionName, tag: &str, incoming: Incoming) -> ApiResult {
        yun_types::validate_tag(tag).map_err(bad)?;
        let bytes = read_json_body(incoming, self.limits.max_json_bytes).await?;
        let req: TagRequest = serde_json::from_slice(&bytes).map_err(|e| bad(format!("invalid tag: {e}")))?;
        let _changing = self.changes.lock().await;
        let t = tag.to_string();
        let updated = self
            .change_function(name, move |f| {
                if !f.has_revision(req.revision) {
                    return Err(rejected(format!("revision {} does not exist", req.revision)));
                }
                f.tags.insert(t.clone(), req.revision);
                Ok(())
            })
            .await?;
        Ok(body::json(200, &self.traffic_view(&updated)))
    }

    pub(crate) async fn delete_tag(&self, name: &FunctionName, tag: &str) -> ApiResult {
        let _changing = self.changes.lock().await;
        let t = tag.to_string();
        let updated = self
            .change_function(name, move |f| {
                f.tags.remove(&t).map(|_| ()).ok_or_else(|| {
                    Rejected::new(ErrorCode::NotFound, format!("function {} has no tag {t}", f.name))
                })
            })
            .await?;
        Ok(body::json(200, &self.traffic_view(&updated)))
    }

    fn forget_rollout(&self, name: &FunctionName) {
        self.rollouts.lock().unwrap_or_else(|p| p.into_inner()).remove(name.as_str());
    }

    /// Runs the rollout controller until shutdown.
    pub fn spawn_rollout_controller(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        let mut shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(CONTROLLER_TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.wait_for(|s| *s) => return,
                    _ = tick.tick() => {}
                }
                if let Err(e) = this.step_rollouts().await {
                    tracing::error!("rollout controller: {}", e.message);
                }
            }
        })
    }

    /// One controller pass: fold each progressing rollout's new results in, and apply what the
    /// policy decides (a step, completion, or rollback), durably, before the routing changes.
    async fn step_rollouts(&self) -> Result<(), ApiError> {
        for service in self.activator.services() {
            let Some(stored) = service.function.rollout.clone() else { continue };
            if !matches!(stored.status, RolloutStatus::Progressing) {
                continue;
            }
            let name = service.function.name.clone();
            let Some(deployment) = service.deployment(stored.to) else { continue };
            let window = deployment.outcomes.take();
            let now = now_ms();
            let (decision, rollout) = {
                let mut rollouts = self.rollouts.lock().unwrap_or_else(|p| p.into_inner());
                let id = (stored.from, stored.to, stored.started_ms);
                let known = rollouts.get(name.as_str()).is_some_and(|r| (r.from, r.to, r.started_ms) == id);
                // A rollout seen for the first time starts its count here: what the revision's
                // recorder holds from before (it may have served a tag or an earlier split)
                // must not judge it.
                let window = if known { window } else { yun_traffic::WindowSummary::default() };
                let rollout = rollouts.entry(name.to_string()).or_insert_with(|| stored.clone());
                if !known {
                    *rollout = stored.clone();
                }
                (rollout.tick(now, &window), rollout.clone())
            };
            if decision == Decision::Unchanged {
                continue;
            }
            let _changing = self.changes.lock().await;
            let expected = (stored.from, stored.to, stored.started_ms);
            let r = rollout.clone();
            let result = self
                .change_function(&name, move |f| {
                    // A traffic change since the controller looked wins over its decision.
                    let current = f.rollout.as_ref().map(|c| (c.from, c.to, c.started_ms));
                    if current != Some(expected) || !f.rollout_in_progress() {
                        return Err(Rejected::new(ErrorCode::Conflict, "the rollout changed meanwhile"));
                    }
                    match &r.status {
                        RolloutStatus::Completed { .. } => f.route_all_to(r.to),
                        RolloutStatus::RolledBack { .. } => f.traffic = None,
                        RolloutStatus::Progressing => f.traffic = Some(r.split()),
                    }
                    f.rollout = Some(r.clone());
                    Ok(())
                })
                .await;
            match result {
                Ok(_) => self.log_rollout(&name, &rollout, &decision),
                Err(e) if e.code == ErrorCode::Conflict || e.code == ErrorCode::NotFound => {}
                Err(e) => return Err(e),
            }
            if rollout.is_final() {
                self.forget_rollout(&name);
            }
        }
        Ok(())
    }

    /// Says in the function's logs what the rollout did, so `yun logs` tells the story.
    fn log_rollout(&self, name: &FunctionName, rollout: &Rollout, decision: &Decision) {
        let line = match decision {
            Decision::Advanced { percent } => {
                format!("ROLLOUT revision {} now takes {percent}% of traffic", rollout.to)
            }
            Decision::Completed => format!("ROLLOUT revision {} completed: it takes all traffic", rollout.to),
            Decision::RolledBack { reason } => {
                format!("ROLLBACK revision {} rolled back to revision {}: {reason}", rollout.to, rollout.from)
            }
            Decision::Unchanged => return,
        };
        tracing::info!(function = %name, "{line}");
        self.logs.emit(yun_telemetry::LogEntry {
            ts_ms: now_ms(),
            function: name.to_string(),
            revision: rollout.to,
            invocation_id: String::new(),
            stream: yun_telemetry::LogStream::Platform,
            line,
        });
    }
}
