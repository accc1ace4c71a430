//! `yun`: the self-hostable serverless platform, server and CLI in one binary.

mod client;
mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

// Every request allocates in hyper, in the wasi-http bridge and in the guest's host calls, from
// many threads at once; mimalloc's thread-local free lists make that cheaper than glibc's arenas
// (measured in docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(name = "yun", version, about = "yun (云): serverless functions on your own machine")]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every command understands.
#[derive(clap::Args, Debug, Clone)]
pub struct Global {
    /// Where yun keeps its state (functions, artifacts, logs, the admin token).
    #[arg(long, env = "YUN_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// The yun server to talk to.
    #[arg(long, env = "YUN_URL", global = true, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Admin token; defaults to the one in the data directory.
    #[arg(long, env = "YUN_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// Print machine-readable JSON instead of human output.
    #[arg(long, global = true)]
    json: bool,
}

impl Global {
    pub fn data_dir(&self) -> anyhow::Result<PathBuf> {
        match &self.data_dir {
            Some(d) => Ok(d.clone()),
            None => {
                let home = std::env::var_os("HOME")
                    .ok_or_else(|| anyhow::anyhow!("HOME is not set: pass --data-dir or set YUN_DATA_DIR"))?;
                Ok(PathBuf::from(home).join(".yun"))
            }
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the platform: gateway, control plane, runtime and store, on one machine.
    Up(commands::up::Args),
    /// Upload a wasi:http component and make it the function's new revision.
    Deploy(Box<commands::deploy::Args>),
    /// Call a function over HTTP.
    Invoke(commands::invoke::Args),
    /// List functions.
    Ls,
    /// Show a function's revisions, digest, limits and URL.
    Describe(commands::describe::Args),
    /// Remove a function and everything it owns.
    Rm(commands::rm::Args),
    /// Show what a function's guests printed.
    Logs(commands::logs::Args),
    /// List a function's revisions with their code, configuration, traffic and tags.
    Revisions(commands::revisions::Args),
    /// Divide a function's traffic among revisions (`3=90 4=10`), with stickiness or a rollout.
    Traffic(commands::traffic::Args),
    /// Send all traffic back to the stable or previous revision at once.
    Rollback(commands::rollback::Args),
    /// Point a tag (with its own URL) at a revision, or remove it.
    Tag(commands::tag::Args),
    /// Custom routes from paths and hosts to functions.
    Route(commands::route::Args),
    /// Secrets, encrypted at rest, given to functions as environment variables.
    Secret(commands::secret::Args),
    /// Make the server's functions and routes what yun.toml declares.
    Apply(commands::apply::Args),
    /// Durable queues: create, send, receive, delete, dead letters.
    Queue(commands::queue::Args),
    /// Object storage (S3-compatible): buckets, objects, access keys.
    Storage(commands::storage::Args),
    /// Key-value stores (also on the Redis endpoint): keys, values, counters.
    Kv(commands::kv::Args),
    /// A SQL database per app: statements, scripts, schema.
    Sql(commands::sql::Args),
    /// Topics that fan messages out to queues and functions.
    Topic(commands::topic::Args),
    /// Queue consumers and cron schedules that invoke a function.
    Trigger(commands::trigger::Args),
    /// How a function's asynchronous invocations are retried and where their outcomes go.
    Async(commands::trigger::AsyncArgs),
    /// One invocation: its REPORT, its log lines, its asynchronous status.
    Invocation(commands::invocation::Args),
    /// A function's asynchronous invocations and their status.
    Invocations(commands::invocations::Args),
    /// Dead-lettered events: send them back.
    Dlq(commands::invocations::DlqArgs),
    /// What each function used (requests, GB-seconds, egress) and what it would cost.
    Usage(commands::usage::Args),
    /// Set how a function scales: min/max instances, concurrency, keep-alive, queue.
    Scale(commands::scale::Args),
    /// Scaffold a function (with its yun.toml) from a template.
    New(commands::new::Args),
    /// Build the app's functions (Rust ones for wasm32-wasip2, with cargo).
    Build(commands::build::Args),
    /// Replay an invocation trace (Azure Functions 2019 format) against the keep-alive policies.
    Sim(commands::sim::Args),
    /// Internal: compile an upload in an isolated child process.
    #[command(name = "__compile", hide = true)]
    Compile(commands::compile::Args),
    /// Internal: build one sandboxed function instance (single-threaded helper).
    #[command(name = "__sandbox", hide = true)]
    Sandbox(commands::sandbox::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The compiler child runs no async code; keep it free of a Tokio runtime and its threads.
    if let Command::Compile(args) = &cli.command {
        return commands::compile::run(args);
    }
    // The sandbox helper forks and clones: it must stay single-threaded, so no runtime either.
    if let Command::Sandbox(args) = &cli.command {
        return commands::sandbox::run(args);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Up(args) => commands::up::run(&cli.global, args).await,
            Command::Deploy(args) => commands::deploy::run(&cli.global, *args).await,
            Command::Invoke(args) => commands::invoke::run(&cli.global, args).await,
            Command::Ls => commands::ls::run(&cli.global).await,
            Command::Describe(args) => commands::describe::run(&cli.global, args).await,
            Command::Rm(args) => commands::rm::run(&cli.global, args).await,
            Command::Logs(args) => commands::logs::run(&cli.global, args).await,
            Command::Revisions(args) => commands::revisions::run(&cli.global, args).await,
            Command::Traffic(args) => commands::traffic::run(&cli.global, args).await,
            Command::Rollback(args) => commands::rollback::run(&cli.global, args).await,
            Command::Tag(args) => commands::tag::run(&cli.global, args).await,
            Command::Route(args) => commands::route::run(&cli.global, args).await,
            Command::Secret(args) => commands::secret::run(&cli.global, args).await,
            Command::Apply(args) => commands::apply::run(&cli.global, args).await,
            Command::Queue(args) => commands::queue::run(&cli.global, args).await,
            Command::Storage(args) => commands::storage::run(&cli.global, args).await,
            Command::Kv(args) => commands::kv::run(&cli.global, args).await,
            Command::Sql(args) => commands::sql::run(&cli.global, args).await,
            Command::Topic(args) => commands::topic::run(&cli.global, args).await,
            Command::Trigger(args) => commands::trigger::run(&cli.global, args).await,
            Command::Async(args) => commands::trigger::run_async(&cli.global, args).await,
            Command::Invocation(args) => commands::invocation::run(&cli.global, args).await,
            Command::Invocations(args) => commands::invocations::run(&cli.global, args).await,
            Command::Dlq(args) => commands::invocations::run_dlq(&cli.global, args).await,
            Command::Usage(args) => commands::usage::run(&cli.global, args).await,
            Command::Scale(args) => commands::scale::run(&cli.global, args).await,
            Command::New(args) => commands::new::run(&cli.global, args).await,
            Command::Build(args) => commands::build::run(&cli.global, args).await,
            Command::Sim(args) => commands::sim::run(&cli.global, args).await,
            Command::Compile(_) | Command::Sandbox(_) => unreachable!("handled before the runtime starts"),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
