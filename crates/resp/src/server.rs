//! The listener and one task per connection: read what is buffered, decode every complete
//! request (up to a bound), run the data commands as one batch per stretch between session
//! commands, and write all replies with one flush.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::command::{self, COMMAND_NAMES, Command, Request};
use crate::frame::{Decoder, Limits};
use crate::handler::Handler;
use crate::reply::{Protocol, Reply};
use yun_types::glob::glob_match;

/// How the server behaves; `Config::default()` is what `yun up` uses unless told otherwise.
#[derive(Debug, Clone)]
pub struct Config {
    /// Connections beyond this are answered `-ERR max number of clients reached` and closed.
    pub max_connections: usize,
    /// Request size limits once authenticated (before, [`Limits::unauthenticated`] applies).
    pub limits: Limits,
    /// Most requests decoded from the buffer and answered as one pipeline.
    pub max_pipeline: usize,
    /// Encoded replies are written out once this many bytes are pending, so a connection's
    /// output buffer holds at most this plus one reply.
    pub output_buffer: usize,
    /// How long a connection may sit between requests; `None`: forever, like Redis' `timeout 0`.
    pub idle_timeout: Option<Duration>,
    /// How long a partly received request may go without more bytes arriving.
    pub read_timeout: Duration,
    /// How long a write of replies may block on a client that does not read.
    pub write_timeout: Duration,
    /// At shutdown, how long connections may take to finish their pipeline before being dropped.
    pub drain_timeout: Duration,
    /// `SELECT` accepts 0..databases.
    pub databases: u8,
    /// The Redis version announced in HELLO and INFO, which some clients check for features.
    pub redis_version: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_connections: 10_000,
            limits: Limits::default(),
            max_pipeline: 1024,
            output_buffer: 64 * 1024,
            idle_timeout: Some(Duration::from_secs(300)),
            read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(10),
            databases: 16,
            redis_version: "7.0.0".into(),
        }
    }
}

#[derive(Default)]
struct Stats {
    connected: AtomicU64,
    total_connections: AtomicU64,
    total_commands: AtomicU64,
    rejected: AtomicU64,
    next_id: AtomicU64,
}

struct Shared<H> {
    handler: Arc<H>,
    config: Config,
    unauthenticated: Limits,
    stats: Stats,
    started: Instant,
    port: u16,
}

/// Serves the Redis protocol on `listener` until `shutdown` completes; then stops accepting, lets
/// each connection finish the pipeline it is running (up to `drain_timeout`) and closes them.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let port = listener.local_addr()?.port();
    let permits = Arc::new(Semaphore::new(config.max_connections.clamp(1, Semaphore::MAX_PERMITS)));
    let shared = Arc::new(Shared {
        handler,
        unauthenticated: config.limits.unauthenticated(),
        config,
        stats: Stats::default(),
        started: Instant::now(),
        port,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        shared.stats.rejected.fetch_add(1, Ordering::Relaxed);
                        // Non-blocking on a fresh socket: the line fits its send buffer, and a
                        // client that cannot take it is not worth a task.
                        let _ = stream.try_write(b"-ERR max number of clients reached\r\n");
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let shared = shared.clone();
                    let stop = stop_rx.clone();
                    tasks.spawn(async move {
                        shared.stats.connected.fetch_add(1, Ordering::Relaxed);
                        shared.stats.total_connections.fetch_add(1, Ordering::Relaxed);
                        if let Err(e) = connection(&shared, stream, stop).await {
                            tracing::debug!("redis: connection ended: {e}");
                        }
                        shared.stats.connected.fetch_sub(1, Ordering::Relaxed);
                        drop(permit);
                    });
                }
                Err(e) => {
                    // Out of file descriptors must not end the server: wait and retry.
                    tracing::warn!("redis: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(shared.config.drain_timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("redis: drain timeout passed with {} connections busy; closing them", tasks.len());
        tasks.shutdown().await;
    }
    Ok(())
}

/// One client's state between requests.
struct Conn<'a, H: Handler, S> {
    shared: &'a Shared<H>,
    stream: S,
    out: BytesMut,
    /// `None` until authenticated when the handler requires it.
    session: Option<H::Session>,
    db: u8,
    protocol: Protocol,
    name: Option<Bytes>,
    id: u64,
}

const NOAUTH: &str = "NOAUTH Authentication required.";
const HELLO_NOAUTH: &str = "NOAUTH HELLO must be called with the client already authenticated, otherwise the \
     HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol \
     version at the same time";

/// Buffers above this are given back once empty, so one large request does not keep its memory.
const KEEP_CAPACITY: usize = 1024 * 1024;
const READ_CHUNK: usize = 16 * 1024;

async fn connection<H: Handler, S: AsyncRead + AsyncWrite + Unpin + Send>(
    shared: &Shared<H>,
    stream: S,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let mut conn = Conn {
        shared,
        stream,
        out: BytesMut::with_capacity(READ_CHUNK),
        session: shared.handler.anonymous(),
        db: 0,
        protocol: Protocol::Resp2,
        name: None,
        id: shared.stats.next_id.fetch_add(1, Ordering::Relaxed) + 1,
    };
    let config = &shared.config;
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut decoder = Decoder::new();
    loop {
        // Before authentication one request at a time: what follows AUTH must be decoded with
        // the limits AUTH earns.
        let (limits, max) = match conn.session {
            Some(_) => (&config.limits, config.max_pipeline.max(1)),
            None => (&shared.unauthenticated, 1),
        };
        let mut batch = Vec::new();
        let mut malformed = None;
        while batch.len() < max {
            match decoder.decode(&mut buf, limits) {
                Ok(Some(args)) => batch.push(args),
                Ok(None) => break,
                Err(e) => {
                    malformed = Some(e);
                    break;
                }
            }
        }
        if batch.is_empty() && malformed.is_none() {
            if *stop.borrow() {
                return Ok(());
            }
            if buf.is_empty() && buf.capacity() > KEEP_CAPACITY {
                buf = BytesMut::with_capacity(READ_CHUNK);
            }
            buf.reserve(READ_CHUNK);
            let limit = if decoder.in_progress() || !buf.is_empty() {
                Some(config.read_timeout)
            } else {
                config.idle_timeout
            };
            let read = async {
                match limit {
                    Some(limit) => tokio::time::timeout(limit, conn.stream.read_buf(&mut buf))
                        .await
                        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "read timed out"))),
                    None => conn.stream.read_buf(&mut buf).await,
                }
            };
            tokio::select! {
                biased;
                // Shutting down between requests (or in the middle of one): close.
                _ = stop.changed() => return Ok(()),
                n = read => if n? == 0 { return Ok(()) },
            }
            continue;
        }
        shared.stats.total_commands.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let quit = conn.pipeline(batch).await?;
        if let Some(e) = &malformed {
            Reply::err(format!("Protocol error: {e}")).encode(conn.protocol, &mut conn.out);
        }
        conn.write_out().await?;
        if quit || malformed.is_some() || *stop.borrow() {
            let _ = conn.stream.shutdown().await;
            linger(&mut conn.stream).await;
            return Ok(());
        }
    }
}

/// After the last reply, reads and drops what the client still sends for a moment: closing a
/// socket with unread input makes the kernel reset the connection, and a reset can overtake the
/// reply (the protocol error, QUIT's OK) on its way to the client.
async fn linger<S: AsyncRead + Unpin>(stream: &mut S) {
    const LINGER: Duration = Duration::from_millis(500);
    const LINGER_BYTES: usize = 1024 * 1024;
    let mut sink = [0u8; 8192];
    let mut total = 0;
    let _ = tokio::time::timeout(LINGER, async {
        while total < LINGER_BYTES {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
}

impl<H: Handler, S: AsyncRead + AsyncWrite + Unpin + Send> Conn<'_, H, S> {
    /// Answers a batch of requests in order; data commands between session commands go to the
    /// handler together. Returns whether the client asked to QUIT (later requests are dropped).
    async fn pipeline(&mut self, batch: Vec<Vec<Bytes>>) -> io::Result<bool> {
        // One entry per request in order: a reply, or `None` for the next data reply.
        let mut slots: Vec<Option<Reply>> = Vec::with_capacity(batch.len());
        let mut pending: Vec<Command> = Vec::new();
        for args in batch {
            let allowed_unauthenticated = args.first().is_some_and(|name| {
                ["auth", "hello", "quit", "reset"].iter().any(|n| name.eq_ignore_ascii_case(n.as_bytes()))
            });
            let request = match command::parse(args) {
                Ok(request) if self.session.is_some() || request.allowed_without_auth() => request,
                Err(e) if self.session.is_some() || allowed_unauthenticated || e.precedes_auth() => {
                    slots.push(Some(e.to_reply()));
                    continue;
                }
                _ => {
                    slots.push(Some(Reply::Error(NOAUTH.into())));
                    continue;
                }
            };
            let reply = match request {
                Request::Data(command) => {
                    pending.push(command);
                    slots.push(None);
                    continue;
                }
                Request::Ping(None) => Reply::simple("PONG"),
                Request::Ping(Some(message)) | Request::Echo(message) => Reply::Bulk(message),
                Request::ClientGetName => Reply::bulk_or_null(self.name.clone()),
                Request::ClientId => Reply::Integer(self.id as i64),
                Request::ClientSetName(name) => {
                    self.name = Some(name).filter(|n| !n.is_empty());
                    Reply::ok()
                }
                Request::ClientSetInfo { .. } => Reply::ok(),
                Request::CommandList => Reply::Array(Vec::new()),
                Request::CommandCount => Reply::Integer(COMMAND_NAMES.len() as i64),
                Request::CommandDocs => Reply::Map(Vec::new()),
                Request::ConfigGet(patterns) => self.config_get(&patterns),
                // The rest change what later commands run against, or read the data: the data
                // commands before them run first.
                Request::Select(db) => {
                    self.flush(&mut pending, &mut slots).await?;
                    self.select(db)
                }
                Request::Auth { user, password } => {
                    self.flush(&mut pending, &mut slots).await?;
                    self.auth(user.as_deref(), &password).await
                }
                Request::Hello { protocol, auth, setname } => {
                    self.flush(&mut pending, &mut slots).await?;
                    self.hello(protocol, auth, setname).await
                }
                Request::Info(sections) => {
                    self.flush(&mut pending, &mut slots).await?;
                    self.info(&sections).await
                }
                Request::Reset => {
                    self.flush(&mut pending, &mut slots).await?;
                    self.session = self.shared.handler.anonymous();
                    self.db = 0;
                    self.protocol = Protocol::Resp2;
                    self.name = None;
                    Reply::simple("RESET")
                }
                Request::Quit => {
                    self.flush(&mut pending, &mut slots).await?;
                    Reply::ok().encode(self.protocol, &mut self.out);
                    return Ok(true);
                }
            };
            slots.push(Some(reply));
        }
        self.flush(&mut pending, &mut slots).await?;
        Ok(false)
    }

    /// Runs the queued data commands and encodes every reply so far.
    async fn flush(&mut self, pending: &mut Vec<Command>, slots: &mut Vec<Option<Reply>>) -> io::Result<()> {
        let mut replies = Vec::new().into_iter();
        if !pending.is_empty() {
            let session =
                self.session.as_ref().expect("data commands are only queued for an authenticated session");
            let n = pending.len();
            let mut got = self.shared.handler.execute(session, self.db, std::mem::take(pending)).await;
            if got.len() != n {
                tracing::error!("redis: the handler answered {} of {n} commands", got.len());
                got.resize(n, Reply::err("internal error: no reply for this command"));
            }
            replies = got.into_iter();
        }
        for slot in slots.drain(..) {
            let reply = slot.unwrap_or_else(|| replies.next().expect("one reply per queued command"));
            reply.encode(self.protocol, &mut self.out);
            if self.out.len() >= self.shared.config.output_buffer {
                self.write_out().await?;
            }
        }
        Ok(())
    }

    async fn write_out(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        tokio::time::timeout(self.shared.config.write_timeout, self.stream.write_all(&self.out))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "write timed out"))??;
        if self.out.capacity() > KEEP_CAPACITY {
            self.out = BytesMut::with_capacity(READ_CHUNK);
        } else {
            self.out.clear();
        }
        Ok(())
    }

    fn select(&mut self, db: i64) -> Reply {
        if (0..i64::from(self.shared.config.databases)).contains(&db) {
            self.db = db as u8;
            Reply::ok()
        } else {
            Reply::err("DB index is out of range")
        }
    }

    async fn auth(&mut self, user: Option<&[u8]>, password: &[u8]) -> Reply {
        match self.shared.handler.authenticate(user, password).await {
            Ok(session) => {
                self.session = Some(session);
                Reply::ok()
            }
            // A failed AUTH leaves an earlier successful one in place, as in Redis.
            Err(e) => e.to_reply(),
        }
    }

    async fn hello(
        &mut self,
        protocol: Option<Protocol>,
        auth: Option<(Bytes, Bytes)>,
        setname: Option<Bytes>,
    ) -> Reply {
        if let Some((user, password)) = auth {
            match self.shared.handler.authenticate(Some(&user), &password).await {
                Ok(session) => self.session = Some(session),
                Err(e) => return e.to_reply(),
            }
        } else if self.session.is_none() {
            return Reply::Error(HELLO_NOAUTH.into());
        }
        if let Some(name) = setname {
            if !command::valid_client_name(&name) {
                return Reply::err("Client names cannot contain spaces, newlines or special characters.");
            }
            self.name = Some(name).filter(|n| !n.is_empty());
        }
        if let Some(protocol) = protocol {
            self.protocol = protocol;
        }
        let pair = |k: &'static str, v: Reply| (Reply::from(k), v);
        Reply::Map(vec![
            pair("server", Reply::from("redis")),
            pair("version", Reply::bulk(self.shared.config.redis_version.clone())),
            pair("proto", Reply::Integer(self.protocol.version())),
            pair("id", Reply::Integer(self.id as i64)),
            pair("mode", Reply::from("standalone")),
            pair("role", Reply::from("master")),
            pair("modules", Reply::Array(Vec::new())),
        ])
    }

    fn config_get(&self, patterns: &[Bytes]) -> Reply {
        let config = &self.shared.config;
        let params = [
            ("save", String::new()),
            ("appendonly", "no".into()),
            ("databases", config.databases.to_string()),
            ("maxclients", config.max_connections.to_string()),
            ("timeout", config.idle_timeout.map_or(0, |t| t.as_secs()).to_string()),
            ("proto-max-bulk-len", config.limits.max_bulk_len.to_string()),
        ];
        Reply::Map(
            params
                .into_iter()
                .filter(|(name, _)| patterns.iter().any(|p| glob_match(p, name.as_bytes(), true)))
                .map(|(name, value)| (Reply::from(name), Reply::bulk(value)))
                .collect(),
        )
    }

    async fn info(&self, sections: &[String]) -> Reply {
        let all = sections.is_empty()
            || sections.iter().any(|s| matches!(s.as_str(), "all" | "default" | "everything"));
        let wants = |name: &str| all || sections.iter().any(|s| s == name);
        let shared = self.shared;
        let stats = &shared.stats;
        let mut text = String::new();
        let mut section = |title: &str, lines: Vec<String>| {
            if !text.is_empty() {
                text.push_str("\r\n");
            }
            text.push_str("# ");
            text.push_str(title);
            text.push_str("\r\n");
            for line in lines {
                text.push_str(&line);
                text.push_str("\r\n");
            }
        };
        if wants("server") {
            let uptime = shared.started.elapsed().as_secs();
            section(
                "Server",
                vec![
                    format!("redis_version:{}", shared.config.redis_version),
                    "redis_mode:standalone".into(),
                    format!("yun_version:{}", env!("CARGO_PKG_VERSION")),
                    format!("os:{} {}", std::env::consts::OS, std::env::consts::ARCH),
                    format!("arch_bits:{}", usize::BITS),
                    format!("process_id:{}", std::process::id()),
                    format!("tcp_port:{}", shared.port),
                    format!("uptime_in_seconds:{uptime}"),
                    format!("uptime_in_days:{}", uptime / 86_400),
                ],
            );
        }
        if wants("clients") {
            section(
                "Clients",
                vec![
                    format!("connected_clients:{}", stats.connected.load(Ordering::Relaxed)),
                    format!("maxclients:{}", shared.config.max_connections),
                ],
            );
        }
        if wants("stats") {
            section(
                "Stats",
                vec![
                    format!("total_connections_received:{}", stats.total_connections.load(Ordering::Relaxed)),
                    format!("total_commands_processed:{}", stats.total_commands.load(Ordering::Relaxed)),
                    format!("rejected_connections:{}", stats.rejected.load(Ordering::Relaxed)),
                ],
            );
        }
        if wants("keyspace") {
            let mut dbs = match &self.session {
                Some(session) => shared.handler.keyspace(session).await,
                None => Vec::new(),
            };
            dbs.sort_by_key(|d| d.db);
            section(
                "Keyspace",
                dbs.iter()
                    .filter(|d| d.keys > 0)
                    .map(|d| format!("db{}:keys={},expires={},avg_ttl=0", d.db, d.keys, d.expires))
                    .collect(),
            );
        }
        let text = Bytes::from(text);
        match self.protocol {
            Protocol::Resp2 => Reply::Bulk(text),
            Protocol::Resp3 => Reply::Verbatim { format: *b"txt", text },
        }
    }
}
