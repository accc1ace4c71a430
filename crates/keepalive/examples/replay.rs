//! Replays a trace in the Azure Functions 2019 format against fixed windows of 5, 10, 20 and
//! 60 minutes, the adaptive policy, and the adaptive policy without its memory guard (the
//! paper's), and prints the comparison.
//!
//! ```text
//! cargo run --release -p yun-keepalive --example replay -- TRACE_DIR [--spread] [--warmup HOURS] [--sensitivity]
//! ```
//!
//! `--spread` spreads each minute's invocations over the minute instead of starting them with
//! it; `--warmup` lets the first hours train the policies without being counted;
//! `--sensitivity` compares the adaptive policy with one parameter changed at a time instead.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use yun_keepalive::sim::{Arrivals, SimConfig, Trace, simulate, table};
use yun_keepalive::{AdaptiveConfig, KeepAlive, PolicyKind};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut dir = None;
    let mut config = SimConfig::default();
    let mut sensitivity = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--spread" => config.arrivals = Arrivals::Spread,
            "--sensitivity" => sensitivity = true,
            "--warmup" => match args.next().and_then(|h| h.parse::<u64>().ok()) {
                Some(hours) => config.warmup = Duration::from_secs(hours * 3600),
                None => return usage("--warmup takes a number of hours"),
            },
            other if other.starts_with('-') => return usage(&format!("unknown option {other}")),
            other => dir = Some(PathBuf::from(other)),
        }
    }
    let Some(dir) = dir else { return usage("no trace directory") };
    let trace = match Trace::read_dir(&dir) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "{}: {} applications, {} functions, {} invocations over {} minutes; arrivals {:?}, warm-up {} h",
        dir.display(),
        trace.apps.len(),
        trace.functions(),
        trace.invocations(),
        trace.minutes,
        config.arrivals,
        config.warmup.as_secs() / 3600
    );
    let fixed = |minutes: u64| KeepAlive::fixed(Duration::from_secs(60 * minutes));
    let d = AdaptiveConfig::default();
    let mut policies = vec![fixed(10), KeepAlive::adaptive(d)];
    let mut labels = vec![None, None];
    if sensitivity {
        let variants = [
            ("min_samples 1", AdaptiveConfig { min_samples: 1, ..d }),
            ("min_samples 30", AdaptiveConfig { min_samples: 30, ..d }),
            ("margin 0", AdaptiveConfig { margin: 0.0, ..d }),
            ("margin 0.2", AdaptiveConfig { margin: 0.2, ..d }),
            ("cv 1", AdaptiveConfig { cv_threshold: 1.0, ..d }),
            ("cv 4", AdaptiveConfig { cv_threshold: 4.0, ..d }),
            ("range 2h", AdaptiveConfig { range: Duration::from_secs(2 * 3600), ..d }),
            ("tail 95", AdaptiveConfig { tail_pct: 95.0, ..d }),
        ];
        for (label, variant) in variants {
            policies.push(KeepAlive::adaptive(variant));
            labels.push(Some(label));
        }
    } else {
        policies = vec![fixed(5), fixed(10), fixed(20), fixed(60), KeepAlive::adaptive(d)];
        policies.push(KeepAlive::adaptive(AdaptiveConfig { memory_guard: false, ..d }));
        labels = vec![None; policies.len()];
    }
    let mut reports: Vec<_> = policies.iter().map(|p| simulate(&trace, p, &config)).collect();
    for (report, label) in reports.iter_mut().zip(labels) {
        if let Some(label) = label {
            report.policy = label.to_owned();
        }
    }
    print!("{}", table(&reports));
    for r in reports.iter().filter(|r| r.kind == PolicyKind::Adaptive && !sensitivity) {
        println!(
            "{}: {} of {} idle periods used the histogram",
            r.policy, r.histogram_periods, r.idle_periods
        );
    }
    ExitCode::SUCCESS
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("{problem}\nusage: replay TRACE_DIR [--spread] [--warmup HOURS] [--sensitivity]");
    ExitCode::FAILURE
}
