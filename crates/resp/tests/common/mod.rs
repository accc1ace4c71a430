//! A HashMap-backed handler (strings and hashes only, no expiry) and a raw RESP client, to test
//! the protocol layer over real TCP.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};
use yun_resp::{AuthError, Command, Config, Handler, KeyspaceStats, Reply, SetCondition, SetTtl};

#[derive(Default)]
pub struct Fake {
    /// `Some`: AUTH with this password (any user, or none) is required.
    pub password: Option<&'static str>,
    pub strings: Mutex<HashMap<(u8, Bytes), Bytes>>,
    pub hashes: Mutex<HashMap<(u8, Bytes), BTreeMap<Bytes, Bytes>>>,
    /// How many commands each `execute` call got.
    pub batches: Mutex<Vec<usize>>,
    /// `GET gate` signals `entered` and waits for `release`.
    pub entered: Notify,
    pub release: Notify,
}

impl Fake {
    pub fn batches(&self) -> Vec<usize> {
        self.batches.lock().unwrap().clone()
    }
}

impl Handler for Fake {
    type Session = String;

    fn anonymous(&self) -> Option<String> {
        self.password.is_none().then(|| "default".to_string())
    }

    async fn authenticate(&self, user: Option<&[u8]>, password: &[u8]) -> Result<String, AuthError> {
        if password == b"unavailable" {
            return Err(AuthError::Unavailable("the key store is unavailable".into()));
        }
        match self.password {
            Some(p) if p.as_bytes() == password => {
                Ok(String::from_utf8_lossy(user.unwrap_or(b"default")).into_owned())
            }
            _ => Err(AuthError::Invalid),
        }
    }

    async fn execute(&self, _session: &String, db: u8, commands: Vec<Command>) -> Vec<Reply> {
        self.batches.lock().unwrap().push(commands.len());
        let mut replies = Vec::with_capacity(commands.len());
        for command in commands {
            if let Command::Get { key } = &command {
                if key.as_ref() == b"gate" {
                    self.entered.notify_one();
                    self.release.notified().await;
                    replies.push(Reply::bulk("opened"));
                    continue;
                }
                if key.as_ref() == b"__drop__" {
                    continue;
                }
            }
            let mut strings = self.strings.lock().unwrap();
            let mut hashes = self.hashes.lock().unwrap();
            replies.push(match command {
                Command::Get { key } => Reply::bulk_or_null(strings.get(&(db, key)).cloned()),
                Command::Set { key, value, ttl: SetTtl::Clear, condition, get: false } => {
                    let exists = strings.contains_key(&(db, key.clone()));
                    match condition {
                        Some(SetCondition::IfMissing) if exists => Reply::Null,
                        Some(SetCondition::IfExists) if !exists => Reply::Null,
                        _ => {
                            strings.insert((db, key), value);
                            Reply::ok()
                        }
                    }
                }
                Command::IncrBy { key, by } => {
                    let entry = strings.entry((db, key)).or_insert_with(|| Bytes::from_static(b"0"));
                    match std::str::from_utf8(entry).ok().and_then(|s| s.parse::<i64>().ok()) {
                        None => Reply::not_integer(),
                        Some(n) => match n.checked_add(by) {
                            None => Reply::overflow(),
                            Some(n) => {
                                *entry = Bytes::from(n.to_string());
                                Reply::Integer(n)
                            }
                        },
                    }
                }
                Command::Del { keys } => Reply::Integer(
                    keys.into_iter().filter(|k| strings.remove(&(db, k.clone())).is_some()).count() as i64,
                ),
                Command::DbSize => Reply::Integer(strings.keys().filter(|(d, _)| *d == db).count() as i64),
                Command::HSet { key, pairs } => {
                    if strings.contains_key(&(db, key.clone())) {
                        Reply::wrong_type()
                    } else {
                        let hash = hashes.entry((db, key)).or_default();
                        Reply::Integer(
                            pairs
                                .into_iter()
                                .filter(|(f, v)| hash.insert(f.clone(), v.clone()).is_none())
                                .count() as i64,
                        )
                    }
                }
                Command::HGetAll { key } => Reply::Map(
                    hashes
                        .get(&(db, key))
                        .map(|h| {
                            h.iter().map(|(f, v)| (Reply::Bulk(f.clone()), Reply::Bulk(v.clone()))).collect()
                        })
                        .unwrap_or_default(),
                ),
                other => Reply::err(format!("'{}' is not in the fake", other.name())),
            });
        }
        replies
    }

    async fn keyspace(&self, _session: &String) -> Vec<KeyspaceStats> {
        let strings = self.strings.lock().unwrap();
        let mut counts: BTreeMap<u8, u64> = BTreeMap::new();
        for (db, _) in strings.keys() {
            *counts.entry(*db).or_default() += 1;
        }
        counts.into_iter().map(|(db, keys)| KeyspaceStats { db, keys, expires: 0 }).collect()
    }
}

pub struct Server {
    pub port: u16,
    pub handler: Arc<Fake>,
    stop: Option<oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    pub async fn start(handler: Fake, config: Config) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let handler = Arc::new(handler);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(yun_resp::serve(listener, handler.clone(), config, async {
            let _ = stopped.await;
        }));
        Server { port, handler, stop: Some(stop), task }
    }

    pub async fn connect(&self) -> Client {
        Client::connect(self.port).await
    }

    pub fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A reply as the client sees it, RESP3 types kept apart.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    /// `$-1`
    NullBulk,
    /// `*-1`
    NullArray,
    /// `_`
    Null,
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Set(Vec<Value>),
    Double(String),
    Bool(bool),
    Verbatim(String, Vec<u8>),
}

impl Value {
    pub fn bulk(s: &str) -> Value {
        Value::Bulk(s.as_bytes().to_vec())
    }

    pub fn ok() -> Value {
        Value::Simple("OK".into())
    }

    pub fn err(s: &str) -> Value {
        Value::Error(s.into())
    }

    pub fn text(&self) -> String {
        match self {
            Value::Bulk(b) | Value::Verbatim(_, b) => String::from_utf8_lossy(b).into_owned(),
            Value::Simple(s) | Value::Error(s) => s.clone(),
            other => format!("{other:?}"),
        }
    }
}

pub struct Client {
    pub reader: BufReader<TcpStream>,
}

impl Client {
    pub async fn connect(port: u16) -> Client {
        Client { reader: BufReader::new(TcpStream::connect(("127.0.0.1", port)).await.unwrap()) }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).await.unwrap();
    }

    /// Sends one multibulk command.
    pub async fn command(&mut self, args: &[&[u8]]) {
        self.send(&encode(args)).await;
    }

    /// Sends one multibulk command and reads its reply.
    pub async fn call(&mut self, args: &[&str]) -> Value {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.command(&args).await;
        self.read().await
    }

    pub async fn read(&mut self) -> Value {
        tokio::time::timeout(Duration::from_secs(10), read_value(&mut self.reader))
            .await
            .expect("a reply within 10 s")
            .expect("a well-formed reply")
    }

    /// Whether the server closed the connection (after any replies were read).
    pub async fn closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_secs(10), self.reader.read(&mut byte)).await,
            Ok(Ok(0) | Err(_))
        )
    }
}

pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn read_value(
    r: &mut BufReader<TcpStream>,
) -> std::pin::Pin<Box<dyn Future<Output = std::io::Result<Value>> + Send + '_>> {
    Box::pin(async move {
        let mut line = Vec::new();
        r.read_until(b'\n', &mut line).await?;
        if !line.ends_with(b"\r\n") {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("line {line:?}")));
        }
        let kind = line[0];
        let text = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
        let n = || text.parse::<i64>().unwrap();
        Ok(match kind {
            b'+' => Value::Simple(text),
            b'-' => Value::Error(text),
            b':' => Value::Int(n()),
            b'_' => Value::Null,
            b',' => Value::Double(text),
            b'#' => Value::Bool(text == "t"),
            b'$' if n() < 0 => Value::NullBulk,
            b'*' if n() < 0 => Value::NullArray,
            b'$' | b'=' => {
                let mut data = vec![0; n() as usize + 2];
                r.read_exact(&mut data).await?;
                data.truncate(data.len() - 2);
                if kind == b'=' {
                    let rest = data.split_off(4);
                    Value::Verbatim(String::from_utf8_lossy(&data[..3]).into_owned(), rest)
                } else {
                    Value::Bulk(data)
                }
            }
            b'*' | b'~' => {
                let mut items = Vec::new();
                for _ in 0..n() {
                    items.push(read_value(r).await?);
                }
                if kind == b'*' { Value::Array(items) } else { Value::Set(items) }
            }
            b'%' => {
                let mut pairs = Vec::new();
                for _ in 0..n() {
                    pairs.push((read_value(r).await?, read_value(r).await?));
                }
                Value::Map(pairs)
            }
            other => panic!("unexpected reply type {:?}", other as char),
        })
    })
}
