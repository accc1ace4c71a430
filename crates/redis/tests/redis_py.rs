//! redis-py against the endpoint over a real engine: each test runs one script of `tests/py`
//! (it prints `ok` when every assertion held). Without redis-py the tests skip with a notice,
//! except in CI (`CI` set), where they fail.

mod common;

use common::{Server, run_py};

async fn py(script: &str) {
    let Some(python) = common::python().await else { return };
    let server = Server::start().await;
    run_py(&python, script, server.port, &[]).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strings_and_set_options() {
    py("strings.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_in_real_time() {
    py("expiry.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_incr_is_exact_and_set_nx_has_one_winner() {
    py("races.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashes_lists_sets_in_resp2_and_resp3() {
    py("hashes_lists_sets.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_returns_every_key_of_1000() {
    py("scan.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_and_stores_are_isolated_and_info_counts_them() {
    py("databases.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_grants_and_refusals() {
    py("auth.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_of_1000_commands() {
    py("pipeline.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_values_fail_clearly_and_the_connection_goes_on() {
    let Some(python) = common::python().await else { return };
    let limit = 1 << 20;
    let kv = yun_kv::Config { max_value_bytes: limit, ..yun_kv::Config::default() };
    let server = Server::with(kv, yun_resp::Config::default()).await;
    run_py(&python, "oversized.py", server.port, &[&limit.to_string()]).await;
    server.stop().await;
}
