//! redis-cli against the endpoint, and raw bytes where a client would not send them.

mod common;

use std::time::Duration;

use common::{ADMIN, FUNCTION, Server, redis_cli, stdout};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_reads_and_writes_a_store() {
    let server = Server::start().await;
    let port = server.port.to_string();
    let cli = |extra: &[&str]| {
        let mut args: Vec<String> = ["-p", &port, "--no-auth-warning", "--user", "app", "--pass", FUNCTION]
            .map(String::from)
            .to_vec();
        args.extend(extra.iter().map(|s| s.to_string()));
        async move { redis_cli(&args.iter().map(String::as_str).collect::<Vec<_>>()).await }
    };
    let Some(out) = cli(&["set", "greeting", "hello"]).await else { return };
    assert_eq!(stdout(&out), "OK");
    assert_eq!(stdout(&cli(&["get", "greeting"]).await.unwrap()), "hello");
    assert_eq!(stdout(&cli(&["incrby", "n", "5"]).await.unwrap()), "5");
    assert_eq!(stdout(&cli(&["-n", "2", "get", "greeting"]).await.unwrap()), "");
    assert_eq!(stdout(&cli(&["-n", "2", "rpush", "l", "a", "b"]).await.unwrap()), "2");
    assert_eq!(stdout(&cli(&["-n", "2", "lrange", "l", "0", "-1"]).await.unwrap()), "a\nb");
    assert_eq!(stdout(&cli(&["get", "l"]).await.unwrap()), "", "db 0 has no list l");
    for i in 0..50 {
        cli(&["set", &format!("scan:{i}"), "v"]).await.unwrap();
    }
    let mut keys: Vec<String> =
        stdout(&cli(&["--scan", "--pattern", "scan:*"]).await.unwrap()).lines().map(String::from).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 50);
    let info = stdout(&cli(&["info", "keyspace"]).await.unwrap());
    assert!(info.contains("db0:keys=52,expires=0"), "{info}");
    assert!(info.contains("db2:keys=1,expires=0"), "{info}");
    let err = cli(&["-n", "2", "get", "l"]).await.unwrap();
    let text = String::from_utf8_lossy(&err.stdout).to_string() + &String::from_utf8_lossy(&err.stderr);
    assert!(text.contains("WRONGTYPE"), "{text}");

    // The admin token reaches the same store by name; a wrong token is refused.
    let admin =
        redis_cli(&["-p", &port, "--no-auth-warning", "--user", "app", "--pass", ADMIN, "get", "greeting"])
            .await
            .unwrap();
    assert_eq!(stdout(&admin), "hello");
    let wrong =
        redis_cli(&["-p", &port, "--no-auth-warning", "-a", "nope", "get", "greeting"]).await.unwrap();
    let text = String::from_utf8_lossy(&wrong.stdout).to_string() + &String::from_utf8_lossy(&wrong.stderr);
    assert!(text.contains("WRONGPASS") || text.contains("NOAUTH"), "{text}");
    server.stop().await;
}

async fn read_reply(stream: &mut TcpStream, want: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(10), async {
        while !got.ends_with(want) {
            let n = stream.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("a reply");
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_resp_is_a_protocol_error_and_others_are_still_served() {
    let server = Server::start().await;
    let addr = ("127.0.0.1", server.port);
    let mut good = TcpStream::connect(addr).await.unwrap();
    good.write_all(b"*2\r\n$4\r\nAUTH\r\n$8\r\nfn-token\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n")
        .await
        .unwrap();
    assert_eq!(read_reply(&mut good, b"+OK\r\n+OK\r\n").await, b"+OK\r\n+OK\r\n");

    for junk in
        [&b"*2\r\n$3\r\nGET\r\n$x\r\n"[..], b"*1\r\n$3\r\nGETT\r\n", b"*1\r\n+GET\r\n", b"*1\r\n$-1\r\n"]
    {
        let mut bad = TcpStream::connect(addr).await.unwrap();
        bad.write_all(b"AUTH fn-token\r\n").await.unwrap();
        assert_eq!(read_reply(&mut bad, b"\r\n").await, b"+OK\r\n");
        bad.write_all(junk).await.unwrap();
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), bad.read_to_end(&mut got)).await.unwrap().unwrap();
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("-ERR Protocol error"), "{:?}: {text}", String::from_utf8_lossy(junk));

        // The connection opened before, and a new one, are still served.
        good.write_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n").await.unwrap();
        assert_eq!(read_reply(&mut good, b"v\r\n").await, b"$1\r\nv\r\n");
        let mut fresh = TcpStream::connect(addr).await.unwrap();
        fresh.write_all(b"AUTH fn-token\r\nGET k\r\n").await.unwrap();
        assert_eq!(read_reply(&mut fresh, b"v\r\n").await, b"+OK\r\n$1\r\nv\r\n");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databases_past_the_engines_sixteen_are_refused() {
    let config = yun_resp::Config { databases: 20, ..yun_resp::Config::default() };
    let server = Server::with(yun_kv::Config::default(), config).await;
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
    stream
        .write_all(b"AUTH fn-token\r\nSELECT 17\r\nSET k v\r\nGET k\r\nSELECT 15\r\nSET k v\r\n")
        .await
        .unwrap();
    let want: &[u8] =
        b"+OK\r\n+OK\r\n-ERR DB index is out of range\r\n-ERR DB index is out of range\r\n+OK\r\n+OK\r\n";
    assert_eq!(read_reply(&mut stream, want).await, want);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_deleted_under_a_session_is_refused_until_it_exists_again() {
    let server = Server::start().await;
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
    stream.write_all(b"AUTH fn-token\r\nSET k v\r\n").await.unwrap();
    assert_eq!(read_reply(&mut stream, b"+OK\r\n+OK\r\n").await, b"+OK\r\n+OK\r\n");
    server.kv.delete_store("app").await.unwrap();
    // Neither a read (answered from memory) nor a write (through the writer) reaches it.
    stream.write_all(b"GET k\r\nSET k v\r\nINFO keyspace\r\n").await.unwrap();
    let got = read_reply(&mut stream, b"# Keyspace\r\n\r\n").await;
    assert!(
        got.starts_with(b"-ERR no such store\r\n-ERR no such store\r\n$"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    // The session does not bring it back; whoever creates it again does, empty.
    server.kv.create_store("app", false).await.unwrap();
    stream.write_all(b"GET k\r\nSET k w\r\nGET k\r\n").await.unwrap();
    assert_eq!(read_reply(&mut stream, b"w\r\n").await, b"$-1\r\n+OK\r\n$1\r\nw\r\n");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_follows_the_engines_clock() {
    let clock = std::sync::Arc::new(yun_kv::ManualClock::new(1_700_000_000_000));
    let kv = yun_kv::Config { clock: clock.clone(), ..yun_kv::Config::default() };
    let server = Server::with(kv, yun_resp::Config::default()).await;
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
    stream
        .write_all(b"AUTH fn-token\r\nSET a 1 EX 10\r\nSET b 2 PXAT 1700000005000\r\nPEXPIRE c 5\r\nSET c 3\r\nTTL a\r\nPTTL b\r\n")
        .await
        .unwrap();
    let want: &[u8] = b"+OK\r\n+OK\r\n+OK\r\n:0\r\n+OK\r\n:10\r\n:5000\r\n";
    assert_eq!(read_reply(&mut stream, want).await, want);
    clock.advance(Duration::from_millis(5000));
    stream.write_all(b"GET a\r\nGET b\r\nTTL b\r\nTTL a\r\nEXPIRE c 1\r\n").await.unwrap();
    let want: &[u8] = b"$1\r\n1\r\n$-1\r\n:-2\r\n:5\r\n:1\r\n";
    assert_eq!(read_reply(&mut stream, want).await, want);
    clock.advance(Duration::from_millis(5000));
    stream.write_all(b"GET a\r\nEXISTS a b c\r\n").await.unwrap();
    let want: &[u8] = b"$-1\r\n:0\r\n";
    assert_eq!(read_reply(&mut stream, want).await, want);
    server.stop().await;
}
