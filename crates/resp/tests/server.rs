//! `serve` on port 0 with the HashMap fake, spoken to in raw RESP over TCP.

mod common;

use std::time::Duration;

use common::{Client, Fake, Server, Value, encode};
use yun_resp::{Config, Limits};

fn config() -> Config {
    Config::default()
}

async fn open() -> Server {
    Server::start(Fake::default(), config()).await
}

fn secured() -> Fake {
    Fake { password: Some("secret"), ..Fake::default() }
}

#[tokio::test]
async fn a_pipeline_of_100_commands_in_one_write_gets_100_replies_in_order() {
    let server = open().await;
    let mut client = server.connect().await;
    let mut pipeline = Vec::new();
    for i in 0..50 {
        pipeline.extend(encode(&[b"SET", format!("k{i}").as_bytes(), format!("v{i}").as_bytes()]));
        pipeline.extend(encode(&[b"GET", format!("k{i}").as_bytes()]));
    }
    client.send(&pipeline).await;
    for i in 0..50 {
        assert_eq!(client.read().await, Value::ok());
        assert_eq!(client.read().await, Value::bulk(&format!("v{i}")));
    }
    // Everything that was buffered went to the handler together, not one command at a time.
    let batches = server.handler.batches();
    assert_eq!(batches.iter().sum::<usize>(), 100);
    assert!(batches.len() <= 3, "{batches:?}");
    assert_eq!(client.call(&["DBSIZE"]).await, Value::Int(50));
}

#[tokio::test]
async fn session_commands_split_the_batch_and_keep_order() {
    let server = open().await;
    let mut client = server.connect().await;
    client.send(b"SET a 1\r\nPING\r\nSELECT 1\r\nGET a\r\nSET a 2\r\nECHO hi\r\nSELECT 0\r\nGET a\r\nSELECT 1\r\nGET a\r\n").await;
    let expected = [
        Value::ok(),
        Value::Simple("PONG".into()),
        Value::ok(),
        Value::NullBulk,
        Value::ok(),
        Value::bulk("hi"),
        Value::ok(),
        Value::bulk("1"),
        Value::ok(),
        Value::bulk("2"),
    ];
    for want in expected {
        assert_eq!(client.read().await, want);
    }
    assert_eq!(client.call(&["SELECT", "16"]).await, Value::err("ERR DB index is out of range"));
    assert_eq!(client.call(&["SELECT", "-1"]).await, Value::err("ERR DB index is out of range"));
    assert_eq!(client.call(&["GET", "a"]).await, Value::bulk("2"), "a failed SELECT keeps the database");
}

#[tokio::test]
async fn inline_commands_work_as_redis_cli_and_telnet_send_them() {
    let server = open().await;
    let mut client = server.connect().await;
    client.send(b"PING\r\nSET greeting \"hello world\"\nGET greeting\r\n\r\nping pong\r\n").await;
    assert_eq!(client.read().await, Value::Simple("PONG".into()));
    assert_eq!(client.read().await, Value::ok());
    assert_eq!(client.read().await, Value::bulk("hello world"));
    assert_eq!(client.read().await, Value::bulk("pong"));
}

#[tokio::test]
async fn errors_are_replies_and_the_connection_stays_usable() {
    let server = open().await;
    let mut client = server.connect().await;
    assert_eq!(
        client.call(&["FOO", "bar", "baz"]).await,
        Value::err("ERR unknown command 'FOO', with args beginning with: 'bar' 'baz' ")
    );
    assert_eq!(client.call(&["GET"]).await, Value::err("ERR wrong number of arguments for 'get' command"));
    assert_eq!(client.call(&["SET", "k", "v", "NX", "XX"]).await, Value::err("ERR syntax error"));
    assert_eq!(
        client.call(&["INCRBY", "n", "x"]).await,
        Value::err("ERR value is not an integer or out of range")
    );
    assert_eq!(client.call(&["SET", "s", "v"]).await, Value::ok());
    assert_eq!(
        client.call(&["HSET", "s", "f", "v"]).await,
        Value::err("WRONGTYPE Operation against a key holding the wrong kind of value")
    );
    assert_eq!(client.call(&["INCR", "n"]).await, Value::Int(1));
}

#[tokio::test]
async fn malformed_input_gets_a_protocol_error_and_closes_only_that_connection() {
    let server = open().await;
    let mut bystander = server.connect().await;
    assert_eq!(bystander.call(&["SET", "x", "1"]).await, Value::ok());
    for garbage in
        [&b"*1\r\n$-5\r\n"[..], b"*2\r\n+OK\r\n", b"*abc\r\n", b"*1\r\n$3\r\nGETX\r\n", b"SET \"unclosed\r\n"]
    {
        let mut client = server.connect().await;
        // What came before the garbage in the same write is still answered.
        let mut input = b"GET x\r\n".to_vec();
        input.extend_from_slice(garbage);
        client.send(&input).await;
        assert_eq!(client.read().await, Value::bulk("1"));
        let Value::Error(e) = client.read().await else { panic!("no error for {garbage:?}") };
        assert!(e.starts_with("ERR Protocol error: "), "{e}");
        assert!(client.closed().await, "still open after {garbage:?}");
    }
    let mut client = server.connect().await;
    client.send(&[b'x'; 70 * 1024]).await;
    assert_eq!(client.read().await, Value::err("ERR Protocol error: too big inline request"));
    assert!(client.closed().await);
    let mut client = server.connect().await;
    client.send(b"*1\r\n$536870912\r\n").await;
    assert_eq!(client.read().await, Value::err("ERR Protocol error: invalid bulk length"));
    assert!(client.closed().await);
    assert_eq!(bystander.call(&["GET", "x"]).await, Value::bulk("1"));
    assert_eq!(server.connect().await.call(&["PING"]).await, Value::Simple("PONG".into()));
}

#[tokio::test]
async fn auth_flow() {
    let server = Server::start(secured(), config()).await;
    let mut client = server.connect().await;
    assert_eq!(client.call(&["GET", "k"]).await, Value::err("NOAUTH Authentication required."));
    assert_eq!(client.call(&["PING"]).await, Value::err("NOAUTH Authentication required."));
    assert_eq!(
        client.call(&["SET", "k", "v", "nx", "xx"]).await,
        Value::err("NOAUTH Authentication required.")
    );
    // An unknown command or a wrong argument count is reported as such before auth, as Redis does.
    assert!(client.call(&["NOPE"]).await.text().starts_with("ERR unknown command 'NOPE'"));
    assert_eq!(client.call(&["GET"]).await, Value::err("ERR wrong number of arguments for 'get' command"));
    assert_eq!(client.call(&["AUTH", "a", "b", "c"]).await, Value::err("ERR syntax error"));
    assert_eq!(
        client.call(&["AUTH", "wrong"]).await,
        Value::err("WRONGPASS invalid username-password pair or user is disabled.")
    );
    assert_eq!(client.call(&["AUTH", "unavailable"]).await, Value::err("ERR the key store is unavailable"));
    assert_eq!(client.call(&["HELLO", "3"]).await.text().split(' ').next(), Some("NOAUTH"));
    assert_eq!(client.call(&["AUTH", "secret"]).await, Value::ok());
    assert_eq!(client.call(&["SET", "k", "v"]).await, Value::ok());
    assert_eq!(client.call(&["AUTH", "alice", "wrong"]).await.text().split(' ').next(), Some("WRONGPASS"));
    assert_eq!(client.call(&["GET", "k"]).await, Value::bulk("v"), "a failed AUTH keeps the earlier one");
    // RESET drops the authentication.
    assert_eq!(client.call(&["RESET"]).await, Value::Simple("RESET".into()));
    assert_eq!(client.call(&["GET", "k"]).await, Value::err("NOAUTH Authentication required."));

    // AUTH user pass, then the rest of the same write runs authenticated with the full limits.
    let mut client = server.connect().await;
    let big = vec![b'v'; 100 * 1024];
    let mut input = encode(&[b"AUTH", b"alice", b"secret"]);
    input.extend(encode(&[b"SET", b"big", &big]));
    input.extend(encode(&[b"GET", b"big"]));
    client.send(&input).await;
    assert_eq!(client.read().await, Value::ok());
    assert_eq!(client.read().await, Value::ok());
    assert_eq!(client.read().await, Value::Bulk(big));

    // HELLO with AUTH authenticates and switches protocol at once.
    let mut client = server.connect().await;
    let Value::Map(hello) = client.call(&["HELLO", "3", "AUTH", "default", "secret", "SETNAME", "app"]).await
    else {
        panic!("HELLO 3 answers a map")
    };
    assert!(hello.contains(&(Value::bulk("proto"), Value::Int(3))));
    assert_eq!(client.call(&["CLIENT", "GETNAME"]).await, Value::bulk("app"));
    assert_eq!(client.call(&["GET", "k"]).await, Value::bulk("v"));

    // Strangers get Redis' tight limits before they authenticate.
    let mut client = server.connect().await;
    client.send(b"*11\r\n").await;
    assert_eq!(client.read().await, Value::err("ERR Protocol error: unauthenticated multibulk length"));
    assert!(client.closed().await);
    let mut client = server.connect().await;
    client.send(b"*2\r\n$4\r\nAUTH\r\n$20000\r\n").await;
    assert_eq!(client.read().await, Value::err("ERR Protocol error: unauthenticated bulk length"));
}

#[tokio::test]
async fn hello_3_switches_null_and_map_encodings() {
    let server = open().await;
    let mut client = server.connect().await;
    assert_eq!(client.call(&["HSET", "h", "a", "1", "b", "2"]).await, Value::Int(2));
    assert_eq!(client.call(&["GET", "missing"]).await, Value::NullBulk);
    assert_eq!(
        client.call(&["HGETALL", "h"]).await,
        Value::Array(vec![Value::bulk("a"), Value::bulk("1"), Value::bulk("b"), Value::bulk("2")])
    );
    let Value::Map(hello) = client.call(&["HELLO", "3"]).await else { panic!("HELLO 3 answers a map") };
    for want in [
        (Value::bulk("server"), Value::bulk("redis")),
        (Value::bulk("version"), Value::bulk("7.0.0")),
        (Value::bulk("proto"), Value::Int(3)),
        (Value::bulk("mode"), Value::bulk("standalone")),
        (Value::bulk("role"), Value::bulk("master")),
        (Value::bulk("modules"), Value::Array(vec![])),
    ] {
        assert!(hello.contains(&want), "{want:?} in {hello:?}");
    }
    assert_eq!(client.call(&["GET", "missing"]).await, Value::Null);
    assert_eq!(
        client.call(&["HGETALL", "h"]).await,
        Value::Map(vec![(Value::bulk("a"), Value::bulk("1")), (Value::bulk("b"), Value::bulk("2"))])
    );
    assert_eq!(
        client.call(&["CONFIG", "GET", "appendonly"]).await,
        Value::Map(vec![(Value::bulk("appendonly"), Value::bulk("no"))])
    );
    assert!(matches!(client.call(&["INFO", "server"]).await, Value::Verbatim(f, _) if f == "txt"));
    assert_eq!(client.call(&["HELLO", "4"]).await, Value::err("NOPROTO unsupported protocol version"));
    assert_eq!(client.call(&["GET", "missing"]).await, Value::Null, "a refused HELLO keeps RESP3");
    let Value::Array(flat) = client.call(&["HELLO", "2"]).await else {
        panic!("HELLO 2 answers a flat array")
    };
    assert_eq!(flat.len(), 14);
    assert_eq!(client.call(&["GET", "missing"]).await, Value::NullBulk);
    // RESET goes back to RESP2.
    client.call(&["HELLO", "3"]).await;
    assert_eq!(client.call(&["RESET"]).await, Value::Simple("RESET".into()));
    assert_eq!(client.call(&["GET", "missing"]).await, Value::NullBulk);
}

#[tokio::test]
async fn what_clients_ask_at_connect() {
    let server = open().await;
    let mut client = server.connect().await;
    // redis-benchmark
    assert_eq!(
        client.call(&["CONFIG", "GET", "save"]).await,
        Value::Array(vec![Value::bulk("save"), Value::bulk("")])
    );
    assert_eq!(
        client.call(&["CONFIG", "GET", "appendonly"]).await,
        Value::Array(vec![Value::bulk("appendonly"), Value::bulk("no")])
    );
    assert_eq!(
        client.call(&["CONFIG", "GET", "DATA*", "nothing"]).await,
        Value::Array(vec![Value::bulk("databases"), Value::bulk("16")])
    );
    // redis-py ≥ 5
    assert_eq!(client.call(&["CLIENT", "SETINFO", "LIB-NAME", "redis-py"]).await, Value::ok());
    assert_eq!(client.call(&["CLIENT", "SETINFO", "LIB-VER", "5.0.1"]).await, Value::ok());
    // redis-cli
    assert_eq!(client.call(&["COMMAND", "DOCS"]).await, Value::Array(vec![]));
    assert_eq!(client.call(&["COMMAND"]).await, Value::Array(vec![]));
    assert!(matches!(client.call(&["COMMAND", "COUNT"]).await, Value::Int(n) if n > 40));
    assert_eq!(client.call(&["CLIENT", "GETNAME"]).await, Value::NullBulk);
    assert_eq!(client.call(&["CLIENT", "SETNAME", "worker-1"]).await, Value::ok());
    assert_eq!(client.call(&["CLIENT", "GETNAME"]).await, Value::bulk("worker-1"));
    let Value::Int(id) = client.call(&["CLIENT", "ID"]).await else { panic!("CLIENT ID is an integer") };
    let Value::Int(other) = server.connect().await.call(&["CLIENT", "ID"]).await else { panic!() };
    assert_ne!(id, other);
    assert_eq!(client.call(&["ECHO", "x"]).await, Value::bulk("x"));
    assert_eq!(client.call(&["PING", "hello"]).await, Value::bulk("hello"));
}

#[tokio::test]
async fn info_reports_server_clients_and_keyspace() {
    let server = open().await;
    let mut client = server.connect().await;
    let _second = server.connect().await;
    client.call(&["SET", "a", "1"]).await;
    client.call(&["SET", "b", "1"]).await;
    client.call(&["SELECT", "3"]).await;
    client.call(&["SET", "c", "1"]).await;
    let info = client.call(&["INFO"]).await.text();
    for want in [
        "# Server\r\n",
        "redis_version:7.0.0\r\n",
        "redis_mode:standalone\r\n",
        &format!("tcp_port:{}\r\n", server.port),
        "# Clients\r\nconnected_clients:2\r\n",
        "# Keyspace\r\ndb0:keys=2,expires=0,avg_ttl=0\r\ndb3:keys=1,expires=0,avg_ttl=0\r\n",
        "total_commands_processed:",
    ] {
        assert!(info.contains(want), "{want:?} in {info}");
    }
    let keyspace = client.call(&["INFO", "KEYSPACE"]).await.text();
    assert!(keyspace.starts_with("# Keyspace\r\n") && !keyspace.contains("# Server"), "{keyspace}");
    assert_eq!(client.call(&["INFO", "nosuchsection"]).await, Value::bulk(""));
}

#[tokio::test]
async fn quit_answers_ok_and_closes() {
    let server = open().await;
    let mut client = server.connect().await;
    client.send(b"SET q 1\r\nQUIT\r\nSET q 2\r\n").await;
    assert_eq!(client.read().await, Value::ok());
    assert_eq!(client.read().await, Value::ok());
    assert!(client.closed().await);
    assert_eq!(server.connect().await.call(&["GET", "q"]).await, Value::bulk("1"), "nothing after QUIT runs");
}

#[tokio::test]
async fn large_values_pass_through_the_output_buffer() {
    let server = Server::start(Fake::default(), Config { output_buffer: 4096, ..config() }).await;
    let mut client = server.connect().await;
    let value: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    assert_eq!(client.call_bytes(&[b"SET", b"big", &value]).await, Value::ok());
    let mut input = Vec::new();
    for _ in 0..5 {
        input.extend(encode(&[b"GET", b"big"]));
    }
    input.extend(encode(&[b"PING"]));
    client.send(&input).await;
    for _ in 0..5 {
        assert_eq!(client.read().await, Value::Bulk(value.clone()));
    }
    assert_eq!(client.read().await, Value::Simple("PONG".into()));
}

#[tokio::test]
async fn a_handler_that_loses_a_reply_does_not_desynchronise_the_client() {
    let server = open().await;
    let mut client = server.connect().await;
    client.send(b"SET a 1\r\nGET __drop__\r\nGET a\r\n").await;
    assert_eq!(client.read().await, Value::ok());
    // The fake's replies shifted (its bug); the count is still one per command.
    assert_eq!(client.read().await, Value::bulk("1"));
    assert!(client.read().await.text().contains("internal error"));
    assert_eq!(client.call(&["PING"]).await, Value::Simple("PONG".into()));
}

#[tokio::test]
async fn connections_past_the_limit_are_told_and_closed() {
    let server = Server::start(Fake::default(), Config { max_connections: 1, ..config() }).await;
    let mut first = server.connect().await;
    assert_eq!(first.call(&["PING"]).await, Value::Simple("PONG".into()));
    let mut second = server.connect().await;
    assert_eq!(second.read().await, Value::err("ERR max number of clients reached"));
    assert!(second.closed().await);
    assert_eq!(first.call(&["QUIT"]).await, Value::ok());
    assert!(first.closed().await);
    // The slot is free again once the first connection's task has ended.
    for attempt in 0.. {
        let mut third = server.connect().await;
        third.command(&[b"PING"]).await;
        match third.read().await {
            Value::Simple(pong) if pong == "PONG" => break,
            other => assert!(attempt < 100, "{other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn shutdown_finishes_the_running_pipeline_then_closes() {
    let mut server = open().await;
    let mut busy = server.connect().await;
    let mut idle = server.connect().await;
    assert_eq!(idle.call(&["PING"]).await, Value::Simple("PONG".into()));
    busy.send(b"SET a 1\r\nGET gate\r\nGET a\r\n").await;
    server.handler.entered.notified().await;
    server.shutdown();
    // The idle connection is closed at once; no new connections are served.
    assert!(idle.closed().await);
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.is_err());
    server.handler.release.notify_one();
    assert_eq!(busy.read().await, Value::ok());
    assert_eq!(busy.read().await, Value::bulk("opened"));
    assert_eq!(busy.read().await, Value::bulk("1"));
    assert!(busy.closed().await);
    tokio::time::timeout(Duration::from_secs(5), &mut server.task).await.unwrap().unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let config = Config { idle_timeout: Some(Duration::from_secs(300)), ..config() };
    let server = Server::start(Fake::default(), config).await;
    let start = tokio::time::Instant::now();
    let mut active = server.connect().await;
    let mut idle = server.connect().await;
    assert_eq!(idle.call(&["PING"]).await, Value::Simple("PONG".into()));
    tokio::time::sleep(Duration::from_secs(200)).await;
    assert_eq!(active.call(&["PING"]).await, Value::Simple("PONG".into()));
    // `closed` waits up to 10 s of (paused, auto-advancing) time per call.
    while !idle.closed().await {}
    let idle_for = start.elapsed();
    assert!(idle_for >= Duration::from_secs(300) && idle_for < Duration::from_secs(320), "{idle_for:?}");
    // The active one's clock restarted at its PING.
    assert_eq!(active.call(&["PING"]).await, Value::Simple("PONG".into()));
}

#[tokio::test(start_paused = true)]
async fn a_request_stalled_half_way_is_dropped_after_the_read_timeout() {
    let config = Config { idle_timeout: None, read_timeout: Duration::from_secs(30), ..config() };
    let server = Server::start(Fake::default(), config).await;
    let mut client = server.connect().await;
    let start = tokio::time::Instant::now();
    client.send(b"*2\r\n$3\r\nGET\r\n$10\r\nabc").await;
    while !client.closed().await {}
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(30) && waited < Duration::from_secs(45), "{waited:?}");
}

#[tokio::test]
async fn configured_limits_apply_to_authenticated_clients() {
    let limits = Limits { max_bulk_len: 1024, ..Limits::default() };
    let server = Server::start(Fake::default(), Config { limits, ..config() }).await;
    let mut client = server.connect().await;
    assert_eq!(client.call_bytes(&[b"SET", b"k", &[b'x'; 1024]]).await, Value::ok());
    client.command(&[b"SET", b"k", &[b'x'; 1025]]).await;
    assert_eq!(client.read().await, Value::err("ERR Protocol error: invalid bulk length"));
    assert!(client.closed().await);
}

trait CallBytes {
    async fn call_bytes(&mut self, args: &[&[u8]]) -> Value;
}

impl CallBytes for Client {
    async fn call_bytes(&mut self, args: &[&[u8]]) -> Value {
        self.command(args).await;
        self.read().await
    }
}

#[tokio::test]
async fn a_connection_stuck_in_the_handler_is_dropped_after_the_drain_timeout() {
    let config = Config { drain_timeout: Duration::from_millis(200), ..config() };
    let mut server = Server::start(Fake::default(), config).await;
    let mut stuck = server.connect().await;
    stuck.send(b"GET gate\r\n").await;
    server.handler.entered.notified().await;
    server.shutdown();
    // The gate is never released: serve returns anyway and the connection is closed unanswered.
    tokio::time::timeout(Duration::from_secs(5), &mut server.task).await.unwrap().unwrap().unwrap();
    assert!(stuck.closed().await);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_does_not_read_is_dropped_after_the_write_timeout() {
    let config = Config { write_timeout: Duration::from_secs(30), idle_timeout: None, ..config() };
    let server = Server::start(Fake::default(), config).await;
    let mut client = server.connect().await;
    let value = vec![b'x'; 1024 * 1024];
    assert_eq!(client.call_bytes(&[b"SET", b"big", &value]).await, Value::ok());
    let mut input = Vec::new();
    for _ in 0..64 {
        input.extend(encode(&[b"GET", b"big"]));
    }
    client.send(&input).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    // What the kernel buffered before the server gave up arrives; then the connection ends,
    // well short of the 64 MiB asked for.
    let mut received = 0usize;
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        match tokio::io::AsyncReadExt::read(&mut client.reader, &mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => received += n,
        }
    }
    assert!(received < 32 * 1024 * 1024, "{received}");
}
