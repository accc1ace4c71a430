//! The evaluation on the 100-function sample of the Azure Functions 2019 trace: the adaptive
//! policy must beat a fixed 10-minute keep-alive on cold starts and on idle memory.
//!
//! Ignored by default (the trace lives outside the repository):
//! `cargo test -p yun-keepalive --release -- --ignored`, with `YUN_TRACE_DIR` pointing at a
//! directory holding `inv.csv`, `run.csv` and `mem.csv` (default: `../shared/traces/azure2019-100`
//! next to the workspace).

use std::path::PathBuf;
use std::time::Duration;

use yun_keepalive::sim::{Arrivals, SimConfig, Trace, simulate};
use yun_keepalive::{AdaptiveConfig, KeepAlive};

fn trace_dir() -> PathBuf {
    match std::env::var_os("YUN_TRACE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/traces/azure2019-100"),
    }
}

#[test]
#[ignore = "needs the Azure trace sample (YUN_TRACE_DIR)"]
fn adaptive_beats_fixed_10_minutes_on_the_azure_sample() {
    let trace = Trace::read_dir(&trace_dir()).expect("the trace sample");
    assert_eq!((trace.apps.len(), trace.minutes), (100, 1440));
    assert_eq!((trace.defaulted_durations, trace.defaulted_memory), (0, 0));
    for arrivals in [Arrivals::MinuteStart, Arrivals::Spread] {
        for warmup in [Duration::ZERO, Duration::from_secs(4 * 3600)] {
            let config = SimConfig { arrivals, warmup };
            let fixed = simulate(&trace, &KeepAlive::fixed(Duration::from_secs(600)), &config);
            let adaptive = simulate(&trace, &KeepAlive::adaptive(AdaptiveConfig::default()), &config);
            let summary = |r: &yun_keepalive::sim::Report| {
                format!(
                    "{:.3}% cold, p75 {:.2}%, {:.0} GB-s",
                    r.cold_pct(),
                    r.app_cold_pct(75.0),
                    r.wasted_gb_s
                )
            };
            let context = format!("{config:?}: fixed {}, adaptive {}", summary(&fixed), summary(&adaptive));
            assert_eq!(adaptive.invocations, fixed.invocations);
            assert!(adaptive.cold_pct() < fixed.cold_pct(), "{context}");
            assert!(adaptive.wasted_gb_s < fixed.wasted_gb_s, "{context}");
            assert!(adaptive.app_cold_pct(75.0) <= fixed.app_cold_pct(75.0), "{context}");
        }
    }
}
