//! Metrics in the Prometheus exposition format, per function and revision, named after the
//! OpenTelemetry FaaS conventions where they exist (`faas.invocations` → `faas_invocations_total`,
//! `faas.coldstarts`, `faas.init_duration`, `faas.invoke_duration`, `faas.errors`), plus the
//! platform's own (instances, queues, memory, store sizes).
//!
//! The invocation path only increments counters and observes histograms (atomics behind a
//! label lookup); gauges describing state (instances, queue depth) are set by whoever scrapes,
//! just before encoding.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FunctionLabels {
    pub function: String,
    pub revision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InstanceLabels {
    pub function: String,
    pub revision: String,
    /// `ready`, `starting`, `desired`, `frozen`, `in_flight`.
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub queue: String,
    /// `visible`, `in_flight`, `delayed`.
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreLabels {
    pub store: String,
}

/// How one invocation ended, as the metrics see it.
pub struct Observation<'a> {
    /// The function and revision, made once per revision (not per invocation).
    pub labels: &'a FunctionLabels,
    pub status: u16,
    pub seconds: f64,
    /// Present for a cold start (or a thaw): how long the instance took to start.
    pub init_seconds: Option<f64>,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    invocations: Family<FunctionLabels, Counter>,
    errors: Family<FunctionLabels, Counter>,
    throttles: Family<FunctionLabels, Counter>,
    coldstarts: Family<FunctionLabels, Counter>,
    duration: Family<FunctionLabels, Histogram>,
    init: Family<FunctionLabels, Histogram>,
    pub instances: Family<InstanceLabels, Gauge>,
    pub queue_messages: Family<QueueLabels, Gauge>,
    pub store_bytes: Family<StoreLabels, Gauge>,
    pub resident_bytes: Gauge,
}

fn latency_histogram() -> Histogram {
    // 100 µs to about 105 s, doubling.
    Histogram::new(exponential_buckets(0.0001, 2.0, 21))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let invocations = Family::<FunctionLabels, Counter>::default();
        let errors = Family::<FunctionLabels, Counter>::default();
        let throttles = Family::<FunctionLabels, Counter>::default();
        let coldstarts = Family::<FunctionLabels, Counter>::default();
        let duration =
            Family::<FunctionLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        let init =
            Family::<FunctionLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        let instances = Family::<InstanceLabels, Gauge>::default();
        let queue_messages = Family::<QueueLabels, Gauge>::default();
        let store_bytes = Family::<StoreLabels, Gauge>::default();
        let resident_bytes = Gauge::default();
        registry.register("faas_invocations", "Invocations of a function's revision", invocations.clone());
        registry.register("faas_errors", "Invocations that ended in a 5xx", errors.clone());
        registry.register("faas_throttles", "Invocations refused for overload (429)", throttles.clone());
        registry.register("faas_coldstarts", "Invocations that started an instance", coldstarts.clone());
        registry.register(
            "faas_invoke_duration_seconds",
            "Time from arrival to the end of the response",
            duration.clone(),
        );
        registry.register("faas_init_duration_seconds", "Time an instance took to start", init.clone());
        registry.register("yun_instances", "A revision's instances by state", instances.clone());
        registry.register("yun_queue_messages", "Messages of a queue by state", queue_messages.clone());
        registry.register("yun_store_bytes", "Size of an embedded store's file", store_bytes.clone());
        registry.register(
            "yun_resident_memory_bytes",
            "The yun process's resident memory",
            resident_bytes.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            invocations,
            errors,
            throttles,
            coldstarts,
            duration,
            init,
            instances,
            queue_messages,
            store_bytes,
            resident_bytes,
        }
    }

    pub fn observe(&self, o: Observation<'_>) {
        let labels = o.labels;
        self.invocations.get_or_create(labels).inc();
        if o.status >= 500 {
            self.errors.get_or_create(labels).inc();
        }
        if o.status == 429 {
            self.throttles.get_or_create(labels).inc();
        }
        if let Some(init) = o.init_seconds {
            self.coldstarts.get_or_create(labels).inc();
            self.init.get_or_create(labels).observe(init);
        }
        self.duration.get_or_create(labels).observe(o.seconds);
    }

    /// Drops a removed function's series (its revisions are 1 to `latest_revision`), so they
    /// do not linger.
    pub fn forget(&self, function: &str, latest_revision: u64) {
        for revision in 1..=latest_revision {
            let labels = FunctionLabels { function: function.to_string(), revision: revision.to_string() };
            for family in [&self.invocations, &self.errors, &self.throttles, &self.coldstarts] {
                family.remove(&labels);
            }
            self.duration.remove(&labels);
            self.init.remove(&labels);
        }
    }

    /// The exposition in Prometheus's text format 0.0.4, which every scraper and `promtool`
    /// read. The client library writes OpenMetrics; the two differ only in how a counter's
    /// family is named (`x` with samples `x_total`, against `x_total` throughout) and in the
    /// closing `# EOF`, which this rewrites.
    pub fn encode(&self) -> String {
        let mut open = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        prometheus_client::encoding::text::encode(&mut open, &registry)
            .expect("writing to a String cannot fail");
        drop(registry);
        let counters: std::collections::HashSet<&str> =
            open.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
        let mut out = String::with_capacity(open.len() + 64);
        for line in open.lines() {
            if line == "# EOF" {
                continue;
            }
            let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
                let rest = line.strip_prefix(prefix)?;
                let (name, tail) = rest.split_once(' ')?;
                counters.contains(name).then(|| format!("{prefix}{name}_total {tail}"))
            });
            match renamed {
                Some(l) => out.push_str(&l),
                None => out.push_str(line),
            }
            out.push('\n');
        }
        out
    }

    /// The content type of [`Self::encode`]'s output.
    pub const CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_show_in_the_exposition() {
        let m = Metrics::new();
        let labels = FunctionLabels { function: "hello".into(), revision: "2".into() };
        for status in [200, 200, 503, 429] {
            m.observe(Observation { labels: &labels, status, seconds: 0.002, init_seconds: None });
        }
        m.observe(Observation { labels: &labels, status: 200, seconds: 0.01, init_seconds: Some(0.004) });
        let text = m.encode();
        assert!(text.contains(r#"faas_invocations_total{function="hello",revision="2"} 5"#), "{text}");
        assert!(text.contains(r#"faas_errors_total{function="hello",revision="2"} 1"#), "{text}");
        assert!(text.contains(r#"faas_throttles_total{function="hello",revision="2"} 1"#), "{text}");
        assert!(text.contains(r#"faas_coldstarts_total{function="hello",revision="2"} 1"#), "{text}");
        assert!(
            text.contains(r#"faas_invoke_duration_seconds_count{function="hello",revision="2"} 5"#),
            "{text}"
        );
        assert!(text.contains("# TYPE faas_invocations_total counter"), "{text}");
        assert!(!text.contains("# EOF"));
        m.forget("hello", 2);
        assert!(!m.encode().contains("hello"));
    }
}
