//! The real clients against `serve`: redis-cli and redis-benchmark (from `redis-tools`) and
//! redis-py (`python3`, or the interpreter in `YUN_TEST_PYTHON`, with the `redis` package). Each
//! test prints a notice and passes when its client is not installed.

mod common;

use std::process::Output;

use common::{Fake, Server};
use yun_resp::Config;

async fn tool(name: &str, args: &[&str]) -> Option<Output> {
    match tokio::process::Command::new(name).args(args).output().await {
        Ok(output) => Some(output),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("NOTICE: {name} is not installed (apt-get install redis-tools); skipping this test");
            None
        }
        Err(e) => panic!("running {name}: {e}"),
    }
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).trim_end().to_string()
}

#[tokio::test]
async fn redis_cli_ping_set_get() {
    let server = Server::start(Fake::default(), Config::default()).await;
    let port = server.port.to_string();
    let cli = |args: &'static [&'static str]| {
        let port = port.clone();
        async move {
            let mut all = vec!["-p", &port];
            all.extend_from_slice(args);
            tool("redis-cli", &all).await
        }
    };
    let Some(ping) = cli(&["PING"]).await else { return };
    assert_eq!(stdout(&ping), "PONG");
    assert_eq!(stdout(&cli(&["SET", "greeting", "hello world"]).await.unwrap()), "OK");
    assert_eq!(stdout(&cli(&["GET", "greeting"]).await.unwrap()), "hello world");
    assert_eq!(stdout(&cli(&["GET", "missing"]).await.unwrap()), "");
    assert_eq!(stdout(&cli(&["HSET", "h", "f", "v"]).await.unwrap()), "1");
    // RESP3: redis-cli sends HELLO 3 first and prints the map.
    assert_eq!(stdout(&cli(&["-3", "--no-raw", "HGETALL", "h"]).await.unwrap()), "1# \"f\" => \"v\"");
    let unknown = stdout(&cli(&["NOSUCH", "x"]).await.unwrap());
    assert!(unknown.contains("unknown command 'NOSUCH'"), "{unknown}");
}

#[tokio::test]
async fn redis_cli_with_a_password() {
    let server = Server::start(Fake { password: Some("secret"), ..Fake::default() }, Config::default()).await;
    let port = server.port.to_string();
    let Some(noauth) = tool("redis-cli", &["-p", &port, "PING"]).await else { return };
    assert!(stdout(&noauth).contains("NOAUTH Authentication required."), "{noauth:?}");
    let ok = tool("redis-cli", &["-p", &port, "--no-auth-warning", "-a", "secret", "PING"]).await.unwrap();
    assert_eq!(stdout(&ok), "PONG");
    let user = tool(
        "redis-cli",
        &["-p", &port, "--no-auth-warning", "--user", "app", "--pass", "secret", "SET", "k", "v"],
    )
    .await
    .unwrap();
    assert_eq!(stdout(&user), "OK");
    let wrong = tool("redis-cli", &["-p", &port, "--no-auth-warning", "-a", "nope", "PING"]).await.unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&wrong.stdout), String::from_utf8_lossy(&wrong.stderr));
    assert!(text.contains("WRONGPASS invalid username-password pair or user is disabled."), "{text}");
}

#[tokio::test]
async fn redis_benchmark_runs_pipelined() {
    let server = Server::start(Fake::default(), Config::default()).await;
    let port = server.port.to_string();
    let args = ["-p", &port, "-t", "set,get,incr", "-n", "20000", "-P", "16", "-c", "4", "-q"];
    let Some(output) = tool("redis-benchmark", &args).await else { return };
    let text = stdout(&output);
    for test in ["SET: ", "GET: ", "INCR: "] {
        assert!(text.contains(test), "{text}");
    }
    assert!(!text.contains("ERR"), "{text}");
    // 20000 of each, all through the handler in batches.
    let batches = server.handler.batches();
    assert_eq!(batches.iter().sum::<usize>(), 60_000);
    assert!(batches.len() < 60_000 / 4, "pipelines were split up: {} batches", batches.len());
}

const REDIS_PY: &str = r#"
import sys, redis
port = int(sys.argv[1])
for proto in (2, 3):
    r = redis.Redis(port=port, protocol=proto, client_name="py", decode_responses=True)
    assert r.ping() is True
    assert r.set("k", "v") is True and r.get("k") == "v" and r.get("missing") is None
    r.hset("h", mapping={"a": "1", "b": "2"})
    assert r.hgetall("h") == {"a": "1", "b": "2"}, r.hgetall("h")
    p = r.pipeline(transaction=False)
    for i in range(100):
        p.set(f"p{i}", i)
    for i in range(100):
        p.get(f"p{i}")
    assert p.execute() == [True] * 100 + [str(i) for i in range(100)]
    assert r.info("server")["redis_version"] == "7.0.0"
    assert r.info("keyspace")["db0"]["keys"] == 101, r.info("keyspace")
    assert r.client_getname() == "py"
    try:
        r.execute_command("NOPE", "x")
        raise SystemExit("NOPE succeeded")
    except redis.ResponseError as e:
        assert str(e).startswith("unknown command 'NOPE'"), e
# Without retries: redis-py backs off and retries a failed AUTH for seconds by default.
from redis.backoff import NoBackoff
from redis.retry import Retry
try:
    redis.Redis(port=port, password="bad", retry=Retry(NoBackoff(), 0)).ping()
    raise SystemExit("a bad password worked")
except redis.AuthenticationError:
    pass
print("ok")
"#;

#[tokio::test]
async fn redis_py_in_resp2_and_resp3() {
    let python = std::env::var("YUN_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let Some(probe) = tool(&python, &["-c", "import redis"]).await else { return };
    if !probe.status.success() {
        eprintln!("NOTICE: {python} has no redis package (pip install redis); skipping this test");
        return;
    }
    let server = Server::start(Fake::default(), Config::default()).await;
    let output = tool(&python, &["-c", REDIS_PY, &server.port.to_string()]).await.unwrap();
    assert_eq!(stdout(&output), "ok", "{}", String::from_utf8_lossy(&output.stderr));
}
