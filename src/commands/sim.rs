//! `yun sim TRACE_DIR [--fixed 10m,20m] [--policy fixed,adaptive] [--functions N]` or
//! `yun sim --synthetic SEED`: replays an invocation trace in the Azure Functions 2019 format
//! against keep-alive policies and compares their cold starts and the memory idle instances hold.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use yun_keepalive::sim::{self, Arrivals, Report, SimConfig, Trace, synthetic};
use yun_keepalive::{AdaptiveConfig, KeepAlive, PolicyKind};

use crate::Global;
use crate::client::print_json;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A directory holding inv.csv, run.csv and mem.csv (the Azure Functions 2019 trace format).
    #[arg(required_unless_present = "synthetic")]
    trace_dir: Option<PathBuf>,
    /// Fixed keep-alive windows to compare, e.g. 10m (repeat, or separate with commas).
    #[arg(long, value_parser = humantime::parse_duration, value_delimiter = ',', default_value = "10m")]
    fixed: Vec<Duration>,
    /// The policies to run: fixed, adaptive (repeat, or separate with commas; default both).
    #[arg(long, value_delimiter = ',')]
    policy: Vec<PolicyKind>,
    /// Replay only the first N functions of inv.csv.
    #[arg(long, value_name = "N")]
    functions: Option<usize>,
    /// Replay a synthetic trace generated from this seed instead of TRACE_DIR.
    #[arg(long, value_name = "SEED", conflicts_with = "trace_dir")]
    synthetic: Option<u64>,
    /// Applications in the synthetic trace.
    #[arg(long, default_value_t = 100)]
    apps: usize,
    /// Length of the synthetic trace, e.g. 1d.
    #[arg(long, default_value = "1d", value_parser = humantime::parse_duration)]
    length: Duration,
    /// Spread each minute's invocations evenly over the minute instead of starting them together.
    #[arg(long)]
    spread: bool,
    /// Let this first part of the trace train the policies without counting it, e.g. 4h.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Also run the adaptive policy without its memory guard (the paper's policy).
    #[arg(long)]
    paper: bool,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let json = global.json;
    // Replaying a day of a hundred functions takes about a second of CPU: off the async threads.
    tokio::task::spawn_blocking(move || replay(json, args)).await.context("the simulation stopped")?
}

fn replay(json: bool, args: Args) -> anyhow::Result<ExitCode> {
    let (mut trace, source) = match (args.synthetic, &args.trace_dir) {
        (Some(seed), _) => {
            let minutes = usize::try_from(args.length.as_secs() / 60).unwrap_or(usize::MAX);
            anyhow::ensure!(minutes > 0, "--length must be at least a minute");
            let trace = synthetic::mixed(seed, args.apps, minutes).trace().context("generating the trace")?;
            (trace, format!("synthetic trace, seed {seed}"))
        }
        // The errors name the file and line.
        (None, Some(dir)) => (Trace::read_dir(dir)?, dir.display().to_string()),
        (None, None) => anyhow::bail!("pass TRACE_DIR or --synthetic SEED"),
    };
    if let Some(n) = args.functions {
        trace.keep_first_functions(n);
    }
    let kinds =
        if args.policy.is_empty() { vec![PolicyKind::Fixed, PolicyKind::Adaptive] } else { args.policy };
    let mut policies = Vec::new();
    if kinds.contains(&PolicyKind::Fixed) {
        policies.extend(args.fixed.iter().map(|w| KeepAlive::fixed(*w)));
    }
    if kinds.contains(&PolicyKind::Adaptive) {
        policies.push(KeepAlive::adaptive(AdaptiveConfig::default()));
        if args.paper {
            policies.push(KeepAlive::adaptive(AdaptiveConfig {
                memory_guard: false,
                ..AdaptiveConfig::default()
            }));
        }
    }
    anyhow::ensure!(
        !policies.is_empty(),
        "no policy to run: --policy fixed needs at least one --fixed window"
    );
    let arrivals = if args.spread { Arrivals::Spread } else { Arrivals::MinuteStart };
    let config = SimConfig { arrivals, warmup: args.warmup };
    let reports: Vec<Report> = policies.iter().map(|p| sim::simulate(&trace, p, &config)).collect();

    if json {
        print_json(&json!({
            "trace": source,
            "apps": trace.apps.len(),
            "functions": trace.functions(),
            "minutes": trace.minutes,
            "defaulted_durations": trace.defaulted_durations,
            "defaulted_memory": trace.defaulted_memory,
            "arrivals": if args.spread { "spread" } else { "minute-start" },
            "warmup_s": args.warmup.as_secs(),
            "reports": reports.iter().map(report_json).collect::<Vec<_>>(),
        }));
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{source}: {} applications, {} functions, {} minutes; invocations {}{}",
        trace.apps.len(),
        trace.functions(),
        trace.minutes,
        if args.spread { "spread over their minute" } else { "at the start of their minute" },
        if args.warmup.is_zero() {
            String::new()
        } else {
            format!(", the first {} not counted", humantime::format_duration(args.warmup))
        }
    );
    if trace.defaulted_durations > 0 || trace.defaulted_memory > 0 {
        println!(
            "({} functions missing from run.csv and {} applications missing from mem.csv got the median)",
            trace.defaulted_durations, trace.defaulted_memory
        );
    }
    print!("{}", sim::table(&reports));
    Ok(ExitCode::SUCCESS)
}

fn report_json(r: &Report) -> serde_json::Value {
    json!({
        "policy": r.policy,
        "kind": r.kind.as_str(),
        "invocations": r.invocations,
        "cold_starts": r.cold_starts,
        "cold_pct": r.cold_pct(),
        "p75_app_cold_pct": r.app_cold_pct(75.0),
        "wasted_gb_s": r.wasted_gb_s,
        "idle_periods": r.idle_periods,
        "histogram_periods": r.histogram_periods,
    })
}
