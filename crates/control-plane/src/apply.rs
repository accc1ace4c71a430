//! `yun apply`: reconcile a whole app (its functions and routes) to the state a description
//! asks for, idempotently.
//!
//! Everything is checked before anything is written, so an invalid description changes
//! nothing. Then each object changes in its own transaction (a function's new revision, scale,
//! tags and traffic together; each route alone), so an apply that fails midway leaves every
//! object either as it was or as asked, never half-changed. A second apply of the same
//! description reports no change.

use std::collections::{BTreeMap, BTreeSet};

use crate::body::Body as Incoming;
use serde::{Deserialize, Serialize};
use serde_json::json;
use yun_router::{RouteSpec, Routes};
use yun_types::{
    AsyncSpec, ErrorCode, Function, FunctionName, RevisionSpec, RolloutSpec, ScaleSpec, Split, Sticky,
    TrafficTarget, Trigger, now_ms,
};

use crate::routes::route_error;
use crate::{ApiError, ApiResult, ControlPlane, bad, body, internal, read_json_body, traffic};

/// The app as it should be.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSpec {
    #[serde(default)]
    pub functions: BTreeMap<FunctionName, FunctionSpec>,
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
    /// Queues the app needs, with their settings.
    #[serde(default)]
    pub queues: BTreeMap<String, yun_events::QueueConfig>,
    /// Topics and who subscribes to them.
    #[serde(default)]
    pub topics: BTreeMap<String, Vec<yun_events::Subscription>>,
}

/// One function as it should be: the code and configuration of its latest revision, and how
/// it scales and routes.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    pub revision: RevisionSpec,
    #[serde(default)]
    pub scale: ScaleSpec,
    #[serde(default)]
    pub tags: BTreeMap<String, RevisionRef>,
    /// Absent: all traffic to the latest revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<Vec<TrafficShare>>,
    /// Move traffic to a new latest revision gradually.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutSpec>,
    /// `header:NAME` or `cookie:NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky: Option<String>,
    #[serde(default, rename = "async")]
    pub asynchronous: AsyncSpec,
    #[serde(default)]
    pub triggers: Vec<Trigger>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficShare {
    pub revision: RevisionRef,
    pub percent: u8,
}

/// A revision named by number, as `"latest"` (the revision the apply ends with), or by a tag
/// declared alongside.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RevisionRef {
    Number(u64),
    Name(String),
}

/// What traffic should do.
#[derive(Clone, Debug, PartialEq)]
enum Goal {
    All(u64),
    Split(Split),
    Rollout {
        to: u64,
        spec: RolloutSpec,
    },
    /// The rollout already under way (or ended) toward the latest revision stands.
    Keep,
}

struct FunctionPlan {
    name: FunctionName,
    exists: bool,
    /// Present when the description differs from the latest revision.
    new_spec: Option<RevisionSpec>,
    scale: ScaleSpec,
    tags: BTreeMap<String, u64>,
    sticky: Option<Sticky>,
    goal: Goal,
    asynchronous: AsyncSpec,
    triggers: Vec<Trigger>,
    details: Vec<String>,
}

/// A cron trigger's creation time is the server's, not the description's: compare without it.
fn same_triggers(a: &[Trigger], b: &[Trigger]) -> bool {
    let strip = |t: &Trigger| match t {
        Trigger::Cron { id, expression, timezone, missed, .. } => Trigger::Cron {
            id: id.clone(),
            expression: expression.clone(),
            timezone: timezone.clone(),
            missed: missed.clone(),
            created_ms: 0,
        },
        other => other.clone(),
    };
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| strip(x) == strip(y))
}

enum QueueAction {
    Create(String, yun_events::QueueConfig),
    Update(String, yun_events::QueueConfig),
    Delete(String),
}

enum RouteAction {
    Put(RouteSpec),
    Delete(RouteSpec),
}

struct Change {
    object: &'static str,
    name: String,
    action: &'static str,
    details: Vec<String>,
}

impl Change {
    fn view(&self) -> serde_json::Value {
        json!({ "object": self.object, "name": self.name, "action": self.action, "details": self.details })
    }
}

/// The fields of a revision spec that differ, by the names a user writes in yun.toml.
fn spec_diff(old: &RevisionSpec, new: &RevisionSpec) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |differs: bool, what: &'static str| {
        if differs {
            out.push(what);
        }
    };
    check(old.artifact != new.artifact, "code");
    check(old.limits.memory_bytes != new.limits.memory_bytes, "memory");
    check(old.limits.timeout_ms != new.limits.timeout_ms, "timeout");
    check(old.limits.max_body_bytes != new.limits.max_body_bytes, "max_body");
    check(old.env != new.env, "env");
    check(old.secrets != new.secrets, "secrets");
    check(old.allow_outbound != new.allow_outbound, "allow_outbound");
    check(old.buckets != new.buckets, "buckets");
    check(old.kv != new.kv, "kv");
    check(old.sql != new.sql, "sql");
    check(old.private != new.private, "private");
    check(old.instance != new.instance, "instance");
    check(old.process != new.process, "process");
    out
}

fn split_text(split: &Split) -> String {
    split.targets().iter().map(|t| format!("{}={}", t.revision, t.percent)).collect::<Vec<_>>().join(" ")
}

impl ControlPlane {
    pub(crate) async fn apply(&self, incoming: Incoming, dry_run: bool, prune: bool) -> ApiResult {
        let bytes = read_json_body(incoming, self.limits.max_json_bytes).await?;
        let app: AppSpec =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("invalid app description: {e}")))?;
        let _changing = self.changes.lock().await;
        let current: BTreeMap<FunctionName, Function> =
            self.store.functions()?.into_iter().map(|f| (f.name.clone(), f)).collect();

        // Check everything first: nothing is written unless all of it is valid.
        let mut plans = Vec::new();
        for (name, spec) in &app.functions {
            plans.push(self.plan_function(name, spec, current.get(name))?);
        }
        let pruned: Vec<FunctionName> = if prune {
            current.keys().filter(|n| !app.functions.contains_key(*n)).cloned().collect()
        } else {
            Vec::new()
        };
        let route_actions = self.plan_routes(&app, &plans, &current, &pruned, prune)?;
        let (queue_actions, topic_actions) = self.plan_events(&app, prune)?;

        let mut changes = Vec::new();
        let mut unchanged = 0;
        for plan in &plans {
            let action = match (plan.exists, plan.details.is_empty()) {
                (false, _) => "create",
                (true, false) => "update",
                (true, true) => {
                    unchanged += 1;
                    continue;
                }
            };
            changes.push(Change {
                object: "function",
                name: plan.name.to_string(),
                action,
                details: plan.details.clone(),
            });
        }
        for action in &route_actions {
            changes.push(match action {
                RouteAction::Put(r) => Change {
                    object: "route",
                    name: r.to_string(),
                    action: if self.router.routes().specs().iter().any(|c| same_key(c, r)) {
                        "update"
                    } else {
                        "create"
                    },
                    details: vec![],
                },
                RouteAction::Delete(r) => {
                    Change { object: "route", name: r.to_string(), action: "delete", details: vec![] }
                }
            });
        }
        unchanged +=
            app.routes.len() - route_actions.iter().filter(|a| matches!(a, RouteAction::Put(_))).count();
        for name in &pruned {
            changes.push(Change {
                object: "function",
                name: name.to_string(),
                action: "delete",
                details: vec![],
            });
        }
        for a in &queue_actions {
            let (name, action) = match a {
                QueueAction::Create(n, _) => (n, "create"),
                QueueAction::Update(n, _) => (n, "update"),
                QueueAction::Delete(n) => (n, "delete"),
            };
            changes.push(Change { object: "queue", name: name.clone(), action, details: vec![] });
        }
        for a in &topic_actions {
            changes.push(Change {
                object: "topic",
                name: a.topic.clone(),
                action: a.action,
                details: a.details.clone(),
            });
        }
        unchanged += app
            .queues
            .len()
            .saturating_sub(queue_actions.iter().filter(|a| !matches!(a, QueueAction::Delete(_))).count());

        if !dry_run {
            let now = now_ms();
            // Queues and topics first: triggers and destinations name them.
            let events = self.triggers().queues().store().clone();
            for a in &queue_actions {
                match a {
                    QueueAction::Create(n, c) => {
                        events.create_queue(n, c.clone(), now)?;
                    }
                    QueueAction::Update(n, c) => {
                        events.update_queue(n, c.clone())?;
                    }
                    QueueAction::Delete(_) => {}
                }
            }
            for a in &topic_actions {
                if a.create {
                    events.create_topic(&a.topic, now)?;
                }
                for sub in &a.subscribe {
                    events.subscribe(&a.topic, sub.clone())?;
                }
                for sub in &a.unsubscribe {
                    events.unsubscribe(&a.topic, sub)?;
                }
                if a.delete {
                    events.delete_topic(&a.topic)?;
                }
            }
            for plan in plans.into_iter().filter(|p| !p.details.is_empty() || !p.exists) {
                self.apply_function(plan, now).await?;
            }
            let mut routes = self.router.routes();
            for action in &route_actions {
                routes = match action {
                    RouteAction::Put(r) => {
                        self.store.put_route(r)?;
                        let without = routes.without(r.host.as_deref(), &r.path).unwrap_or(routes);
                        without.with(r.clone()).map_err(route_error)?
                    }
                    RouteAction::Delete(r) => {
                        self.store.delete_route(r.host.as_deref(), &r.path)?;
                        routes.without(r.host.as_deref(), &r.path).unwrap_or(routes)
                    }
                };
                self.router.set(routes.clone());
            }
            for name in &pruned {
                self.delete_locked(name).await?;
            }
            for a in &queue_actions {
                if let QueueAction::Delete(n) = a {
                    events.delete_queue(n)?;
                }
            }
        }
        let list: Vec<_> = changes.iter().map(Change::view).collect();
        Ok(body::json(
            200,
            &json!({ "dry_run": dry_run, "changes": list, "changed": changes.len(), "unchanged": unchanged }),
        ))
    }

    fn plan_function(
        &self,
        name: &FunctionName,
        desired: &FunctionSpec,
        current: Option<&Function>,
    ) -> Result<FunctionPlan, ApiError> {
        let at = |e: ApiError| ApiError::new(e.code, format!("function {name}: {}", e.message));
        let latest_spec = match current {
            Some(f) => self.store.revision(name, f.latest_revision)?.map(|r| r.spec),
            None => None,
        };
        let mut details = Vec::new();
        let new_spec = match &latest_spec {
            Some(old) if *old == desired.revision => None,
            _ => {
                self.check_spec(&desired.revision).map_err(at)?;
                Some(desired.revision.clone())
            }
        };
        let existing_latest = current.map_or(0, |f| f.latest_revision);
        let latest = existing_latest + u64::from(new_spec.is_some());
        if let (Some(old), Some(new)) = (&latest_spec, &new_spec) {
            details.push(format!("new revision {latest} ({} changed)", spec_diff(old, new).join(", ")));
        } else if new_spec.is_some() {
            details.push(format!("revision {latest}"));
        }

        let defaults = yun_activator::scale_defaults(&yun_types::Revision {
            function: name.clone(),
            number: latest,
            spec: desired.revision.clone(),
            created_at_ms: 0,
        });
        desired.scale.validate(&defaults).map_err(|e| at(bad(e.to_string())))?;

        let known = |n: u64| (1..=latest).contains(&n);
        let mut tags = BTreeMap::new();
        for (tag, r) in &desired.tags {
            yun_types::validate_tag(tag).map_err(|e| at(bad(e)))?;
            let n = match r {
                RevisionRef::Number(n) if known(*n) => *n,
                RevisionRef::Number(n) => {
                    return Err(at(bad(format!("tag {tag}: revision {n} does not exist"))));
                }
                RevisionRef::Name(l) if l == "latest" => latest,
                RevisionRef::Name(other) => {
                    return Err(at(bad(format!(
                        "tag {tag} points at {other:?}: a tag names a revision number or \"latest\", not another tag"
                    ))));
                }
            };
            tags.insert(tag.clone(), n);
        }
        let sticky =
            desired.sticky.as_deref().map(Sticky::parse).transpose().map_err(|e| at(bad(e.to_string())))?;

        let goal = match (&desired.traffic, &desired.rollout) {
            (Some(_), Some(_)) => return Err(at(bad("give traffic or rollout, not both"))),
            (Some(shares), None) => {
                let mut targets = Vec::new();
                for share in shares {
                    let n = match &share.revision {
                        RevisionRef::Number(n) => *n,
                        RevisionRef::Name(l) if l == "latest" => latest,
                        RevisionRef::Name(tag) => *tags.get(tag).ok_or_else(|| {
                            at(bad(format!(
                                "traffic names {tag:?}, which is neither \"latest\" nor a tag declared here"
                            )))
                        })?,
                    };
                    targets.push(TrafficTarget { revision: n, percent: share.percent });
                }
                let split = Split::new(targets).map_err(|e| at(bad(e.to_string())))?;
                split.check_known(known).map_err(|e| at(bad(e.to_string())))?;
                match split.targets() {
                    [only] => Goal::All(only.revision),
                    _ => Goal::Split(split),
                }
            }
            (None, Some(spec)) => {
                spec.validate().map_err(|e| at(bad(e.to_string())))?;
                match current {
                    Some(f) if new_spec.is_some() && f.active_revision != 0 => {
                        Goal::Rollout { to: latest, spec: spec.clone() }
                    }
                    Some(f) if f.rollout.as_ref().is_some_and(|r| r.to == latest) => Goal::Keep,
                    _ => Goal::All(latest),
                }
            }
            (None, None) => Goal::All(latest),
        };

        desired.asynchronous.validate().map_err(|e| at(bad(e)))?;
        for t in &desired.triggers {
            yun_triggers::validate_trigger(t).map_err(|e| at(ApiError::from(e)))?;
        }
        if let Some(f) = current {
            if f.asynchronous != desired.asynchronous {
                details.push("async".to_string());
            }
            if !same_triggers(&f.triggers, &desired.triggers) {
                let ids: Vec<&str> = desired.triggers.iter().map(Trigger::id).collect();
                details.push(format!("triggers [{}]", ids.join(", ")));
            }
            if f.scale != desired.scale {
                details.push("scale".to_string());
            }
            if f.tags != tags {
                details.push(format!("tags {:?} -> {:?}", f.tags, tags));
            }
            if f.sticky != sticky {
                let text = |s: &Option<Sticky>| s.as_ref().map_or("off".to_string(), |s| s.to_string());
                details.push(format!("sticky {} -> {}", text(&f.sticky), text(&sticky)));
            }
            let now_split = f.split();
            match &goal {
                Goal::All(n) if now_split != Split::single(*n) || f.rollout_in_progress() => {
                    details.push(format!("traffic {} -> {n}=100", split_text(&now_split)));
                }
                Goal::Split(s) if *s != now_split || f.rollout_in_progress() => {
                    details.push(format!("traffic {} -> {}", split_text(&now_split), split_text(s)));
                }
                Goal::Rollout { to, spec } => details.push(format!(
                    "rollout to revision {to} over {}",
                    humantime::format_duration(std::time::Duration::from_millis(spec.duration_ms))
                )),
                _ => {}
            }
        }
        Ok(FunctionPlan {
            name: name.clone(),
            exists: current.is_some(),
            new_spec,
            scale: desired.scale.clone(),
            tags,
            sticky,
            goal,
            asynchronous: desired.asynchronous.clone(),
            triggers: desired.triggers.clone(),
            details,
        })
    }

    fn plan_routes(
        &self,
        app: &AppSpec,
        plans: &[FunctionPlan],
        current: &BTreeMap<FunctionName, Function>,
        pruned: &[FunctionName],
        prune: bool,
    ) -> Result<Vec<RouteAction>, ApiError> {
        let now = self.router.routes();
        let mut actions = Vec::new();
        for route in &app.routes {
            // Where it leads must exist once the apply is done.
            let name =
                FunctionName::new(route.function.clone()).map_err(|e| bad(format!("route {route}: {e}")))?;
            let tags: Option<BTreeSet<&String>> = match plans.iter().find(|p| p.name == name) {
                Some(plan) => Some(plan.tags.keys().collect()),
                None if pruned.contains(&name) => None,
                None => current.get(&name).map(|f| f.tags.keys().collect()),
            };
            let Some(tags) = tags else {
                return Err(ApiError::new(
                    ErrorCode::BadRequest,
                    format!("route {route} leads to function {name}, which does not exist"),
                ));
            };
            if let Some(tag) = &route.tag
                && !tags.contains(tag)
            {
                return Err(bad(format!(
                    "route {route} names tag {tag}, which function {name} does not have"
                )));
            }
            match now.specs().iter().find(|c| same_key(c, route)) {
                Some(existing) if existing == route => {}
                _ => actions.push(RouteAction::Put(route.clone())),
            }
        }
        let desired_keys = |r: &RouteSpec| app.routes.iter().any(|d| same_key(d, r));
        for existing in now.specs() {
            let leads_to_pruned = pruned.iter().any(|n| n.as_str() == existing.function);
            if (prune && !desired_keys(existing)) || leads_to_pruned {
                actions.push(RouteAction::Delete(existing.clone()));
            }
        }
        // The routes in force afterwards must be free of conflicts (this names both routes).
        let mut after: Vec<RouteSpec> = now
            .specs()
            .iter()
            .filter(|c| {
                !actions.iter().any(|a| match a {
                    RouteAction::Put(r) | RouteAction::Delete(r) => same_key(c, r),
                })
            })
            .cloned()
            .collect();
        after.extend(actions.iter().filter_map(|a| match a {
            RouteAction::Put(r) => Some(r.clone()),
            RouteAction::Delete(_) => None,
        }));
        Routes::new(after).map_err(route_error)?;
        Ok(actions)
    }

    /// What queues and topics must change; checks that every queue a trigger or destination
    /// names will exist.
    fn plan_events(
        &self,
        app: &AppSpec,
        prune: bool,
    ) -> Result<(Vec<QueueAction>, Vec<TopicAction>), ApiError> {
        let events = self.triggers().queues().store().clone();
        let mut queues = Vec::new();
        // Dead-letter queues before the queues that name them.
        let mut order: Vec<(&String, &yun_events::QueueConfig)> = app.queues.iter().collect();
        order.sort_by_key(|(_, c)| c.dlq.is_some());
        for (name, config) in order {
            if name.starts_with(yun_events::INTERNAL_PREFIX) {
                return Err(bad(format!("queue {name}: names starting with yun. are the platform's own")));
            }
            config.validate().map_err(|e| bad(format!("queue {name}: {e}")))?;
            if let Some(dlq) = &config.dlq
                && !app.queues.contains_key(dlq)
                && events.queue(dlq)?.is_none()
            {
                return Err(bad(format!("queue {name}: its dead-letter queue {dlq} does not exist")));
            }
            match events.queue(name)? {
                None => queues.push(QueueAction::Create(name.clone(), config.clone())),
                Some(info) if info.config != *config => {
                    queues.push(QueueAction::Update(name.clone(), config.clone()))
                }
                Some(_) => {}
            }
        }
        if prune {
            for info in events.queues()? {
                if !info.name.starts_with(yun_events::INTERNAL_PREFIX) && !app.queues.contains_key(&info.name)
                {
                    queues.push(QueueAction::Delete(info.name));
                }
            }
        }
        let will_exist = |q: &str| -> Result<bool, ApiError> {
            Ok(app.queues.contains_key(q) || (!prune && events.queue(q)?.is_some()))
        };
        for (name, f) in &app.functions {
            for t in &f.triggers {
                if let Trigger::Queue { queue, .. } = t
                    && !will_exist(queue)?
                {
                    return Err(ApiError::new(
                        ErrorCode::NotFound,
                        format!(
                            "function {name}: trigger {} consumes queue {queue}, which does not exist",
                            t.id()
                        ),
                    ));
                }
            }
            for d in [&f.asynchronous.on_success, &f.asynchronous.on_failure].into_iter().flatten() {
                if let yun_types::Destination::Queue(q) = d
                    && !will_exist(q)?
                {
                    return Err(ApiError::new(
                        ErrorCode::NotFound,
                        format!("function {name}: destination queue {q} does not exist"),
                    ));
                }
            }
        }
        let mut topics = Vec::new();
        for (topic, subs) in &app.topics {
            let existing = events.topic(topic)?;
            let have: Vec<yun_events::Subscription> =
                existing.as_ref().map(|t| t.subscriptions.clone()).unwrap_or_default();
            for sub in subs {
                match sub {
                    yun_events::Subscription::Queue(q) if !will_exist(q)? => {
                        return Err(ApiError::new(
                            ErrorCode::NotFound,
                            format!("topic {topic}: subscriber queue {q} does not exist"),
                        ));
                    }
                    yun_events::Subscription::Function(f)
                        if !app.functions.keys().any(|n| n.as_str() == f)
                            && (prune
                                || self
                                    .store
                                    .function(&FunctionName::new(f.clone()).map_err(|e| bad(e.to_string()))?)?
                                    .is_none()) =>
                    {
                        return Err(ApiError::new(
                            ErrorCode::NotFound,
                            format!("topic {topic}: subscriber function {f} does not exist"),
                        ));
                    }
                    _ => {}
                }
            }
            let subscribe: Vec<_> = subs.iter().filter(|s| !have.contains(s)).cloned().collect();
            let unsubscribe: Vec<_> =
                if prune { have.iter().filter(|s| !subs.contains(s)).cloned().collect() } else { vec![] };
            let create = existing.is_none();
            if create || !subscribe.is_empty() || !unsubscribe.is_empty() {
                let mut details: Vec<String> =
                    subscribe.iter().map(|s| format!("+{}", sub_text(s))).collect();
                details.extend(unsubscribe.iter().map(|s| format!("-{}", sub_text(s))));
                topics.push(TopicAction {
                    topic: topic.clone(),
                    action: if create { "create" } else { "update" },
                    details,
                    create,
                    delete: false,
                    subscribe,
                    unsubscribe,
                });
            }
        }
        if prune {
            for t in events.topics()? {
                if !app.topics.contains_key(&t.name) {
                    topics.push(TopicAction {
                        topic: t.name,
                        action: "delete",
                        details: vec![],
                        create: false,
                        delete: true,
                        subscribe: vec![],
                        unsubscribe: vec![],
                    });
                }
            }
        }
        Ok((queues, topics))
    }

    /// One function's change, in one transaction, then its routing.
    async fn apply_function(&self, plan: FunctionPlan, now: u64) -> Result<(), ApiError> {
        let FunctionPlan { name, new_spec, scale, tags, sticky, goal, asynchronous, triggers, .. } = plan;
        let is_new = new_spec.is_some();
        let mut edit = move |f: &mut Function| {
            // A schedule that stays keeps its creation time; a new one starts now.
            let mut next = triggers.clone();
            for t in &mut next {
                let kept = f
                    .triggers
                    .iter()
                    .find(|o| {
                        o.id() == t.id() && same_triggers(std::slice::from_ref(*o), std::slice::from_ref(t))
                    })
                    .and_then(|o| match o {
                        Trigger::Cron { created_ms, .. } => Some(*created_ms),
                        Trigger::Queue { .. } | Trigger::Storage { .. } => None,
                    });
                if let Trigger::Cron { created_ms, .. } = t {
                    *created_ms = kept.unwrap_or(now);
                }
            }
            f.triggers = next;
            f.asynchronous = asynchronous.clone();
            f.scale = scale.clone();
            f.tags = tags.clone();
            f.sticky = sticky.clone();
            match &goal {
                Goal::All(n) => {
                    f.rollout = None;
                    f.route_all_to(*n);
                }
                Goal::Split(s) => {
                    f.rollout = None;
                    f.traffic = Some(s.clone());
                }
                Goal::Rollout { spec, .. } if is_new => {
                    traffic::route_new_revision(f, Some(spec.clone()), now);
                }
                Goal::Rollout { to, .. } => f.route_all_to(*to),
                Goal::Keep => {}
            }
            Ok(())
        };
        let store = self.store.clone();
        let n = name.clone();
        let function = tokio::task::spawn_blocking(move || match new_spec {
            Some(spec) => store.create_revision(&n, spec, now, &mut edit).map(|(f, _)| Some(f)),
            None => store.update_function(&n, now, &mut edit),
        })
        .await
        .map_err(internal)??
        .ok_or_else(|| {
            ApiError::new(ErrorCode::NotFound, format!("function {name} vanished during the apply"))
        })?;
        self.activator.set_scale(name.as_str(), &function.scale);
        self.publish(&function, true).await
    }
}

struct TopicAction {
    topic: String,
    action: &'static str,
    details: Vec<String>,
    create: bool,
    delete: bool,
    subscribe: Vec<yun_events::Subscription>,
    unsubscribe: Vec<yun_events::Subscription>,
}

fn sub_text(s: &yun_events::Subscription) -> String {
    match s {
        yun_events::Subscription::Queue(q) => format!("queue:{q}"),
        yun_events::Subscription::Function(f) => format!("function:{f}"),
    }
}

fn same_key(a: &RouteSpec, b: &RouteSpec) -> bool {
    a.host == b.host && a.path == b.path
}
