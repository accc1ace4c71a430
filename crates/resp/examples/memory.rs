//! The protocol layer over the tests' HashMap handler, for poking with redis-cli and measuring
//! with redis-benchmark: `cargo run -p yun-resp --release --example memory -- [PORT] [PASSWORD]`.
//! `YUN_RESP_THREADS=1` runs it on a single-threaded runtime (Redis' own model).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().map_or(6390, |p| p.parse().expect("a port"));
    let password = args.next().map(|p| &*Box::leak(p.into_boxed_str()));
    let threads: usize = std::env::var("YUN_RESP_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(0);
    let runtime = match threads {
        1 => tokio::runtime::Builder::new_current_thread().enable_all().build()?,
        0 => tokio::runtime::Builder::new_multi_thread().enable_all().build()?,
        n => tokio::runtime::Builder::new_multi_thread().worker_threads(n).enable_all().build()?,
    };
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        eprintln!("serving on {}", listener.local_addr()?);
        let handler = Arc::new(common::Fake { password, ..common::Fake::default() });
        yun_resp::serve(listener, handler, yun_resp::Config::default(), async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
    })
}
