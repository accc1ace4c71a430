//! The endpoint over a durable engine in a directory, for redis-cli and redis-benchmark (what
//! `bench/redis.sh` measures until `yun up --redis-listen` exists):
//!
//! `cargo run --release -p yun-redis --example serve -- --dir D --port P --password TOKEN`
//!
//! One token opens any store (`AUTH TOKEN`: the store `default`; `AUTH store TOKEN`: that one),
//! creating it on first use. Optional: `--group-commit-us N` (the engine's window; default 200,
//! or 0 with `--no-fsync`), `--no-fsync` (`Durability::None`), `--threads N` (runtime workers).
//! Without an fsync to share, the window only delays each group: with 50 redis-benchmark
//! clients a zero window gave 35-50% more SETs than 200 us.
//! Prints `redis api on redis://ADDR` once listening; stops on Ctrl-C or SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use yun_redis::{Credentials, Grant, RedisEndpoint};

struct OneToken(String);

impl Credentials for OneToken {
    fn grant(&self, user: Option<&str>, password: &str) -> Option<Grant> {
        (password == self.0).then(|| Grant::new(user.unwrap_or("default"), true))
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: serve --dir D --port P --password TOKEN [--group-commit-us N] [--no-fsync] [--threads N]"
    );
    std::process::exit(2)
}

fn main() -> std::io::Result<()> {
    let mut dir = None;
    let mut port = 6390u16;
    let mut password = None;
    let mut threads = 0usize;
    let mut window = None;
    let mut config = yun_kv::Config::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--dir" => dir = Some(PathBuf::from(value())),
            "--port" => port = value().parse().unwrap_or_else(|_| usage()),
            "--password" => password = Some(value()),
            "--threads" => threads = value().parse().unwrap_or_else(|_| usage()),
            "--group-commit-us" => {
                window = Some(Duration::from_micros(value().parse().unwrap_or_else(|_| usage())))
            }
            "--no-fsync" => config.durability = yun_kv::Durability::None,
            _ => usage(),
        }
    }
    let (Some(dir), Some(password)) = (dir, password) else { usage() };
    config.group_commit = window.unwrap_or(match config.durability {
        yun_kv::Durability::Fsync => config.group_commit,
        yun_kv::Durability::None => Duration::ZERO,
    });
    let runtime = match threads {
        0 => tokio::runtime::Builder::new_multi_thread().enable_all().build()?,
        n => tokio::runtime::Builder::new_multi_thread().worker_threads(n).enable_all().build()?,
    };
    runtime.block_on(async {
        let kv = yun_kv::Kv::open(&dir, config).map_err(std::io::Error::other)?;
        let endpoint = Arc::new(RedisEndpoint::new(kv.clone(), Arc::new(OneToken(password))));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        println!("redis api on redis://{}", listener.local_addr()?);
        let shutdown = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("a SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        yun_redis::serve(listener, endpoint, yun_resp::Config::default(), shutdown).await?;
        kv.close().await.map_err(std::io::Error::other)
    })
}
