//! Argument vectors parsed into [`Request`]: the session commands the server answers itself, and
//! [`Command`], the data commands a [`crate::Handler`] executes. All validation Redis does before
//! touching data (arity, options, integers) happens here, with Redis' error texts, so a handler
//! only ever sees well-formed commands.

use bytes::Bytes;

use crate::reply::{Protocol, Reply};

/// Relative expiry times are bounded so that adding the current Unix time in milliseconds can
/// never overflow an `i64` (Redis refuses exactly at the overflow; this refuses ~146 million
/// years earlier).
pub const MAX_RELATIVE_MILLIS: i64 = i64::MAX / 2;

/// Which end of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Left,
    Right,
}

/// What `TTL` / `PTTL` answer in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlUnit {
    Seconds,
    Milliseconds,
}

/// `SET ... NX` / `XX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetCondition {
    /// NX: only if the key does not exist.
    IfMissing,
    /// XX: only if the key exists.
    IfExists,
}

/// What `SET` does to the key's time to live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetTtl {
    /// No option: the new value has no expiry.
    Clear,
    /// KEEPTTL.
    Keep,
    /// EX / PX: this many milliseconds from now (1..=[`MAX_RELATIVE_MILLIS`]).
    After { millis: i64 },
    /// EXAT / PXAT: at this Unix time in milliseconds (positive).
    At { unix_millis: i64 },
}

/// `EXPIRE`'s NX / XX / GT / LT flags (Redis 7). The combinations Redis refuses (NX with
/// anything, GT with LT) are refused when parsing; [`ExpireCondition::allows`] is the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExpireCondition {
    pub nx: bool,
    pub xx: bool,
    pub gt: bool,
    pub lt: bool,
}

impl ExpireCondition {
    /// Whether an expiry at `new` (Unix ms) may replace the key's current one (`None`: the key
    /// has no expiry, which counts as infinitely far for GT and LT, as in Redis).
    pub fn allows(&self, current: Option<i64>, new: i64) -> bool {
        match current {
            None => !self.xx && !self.gt,
            Some(current) => !self.nx && (!self.gt || new > current) && (!self.lt || new < current),
        }
    }
}

/// A key's type, as `TYPE` names it and `SCAN ... TYPE` filters by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    String,
    List,
    Set,
    Hash,
    ZSet,
    Stream,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::String => "string",
            KeyType::List => "list",
            KeyType::Set => "set",
            KeyType::Hash => "hash",
            KeyType::ZSet => "zset",
            KeyType::Stream => "stream",
        }
    }

    fn parse(name: &[u8]) -> Option<KeyType> {
        [KeyType::String, KeyType::List, KeyType::Set, KeyType::Hash, KeyType::ZSet, KeyType::Stream]
            .into_iter()
            .find(|t| t.as_str().as_bytes().eq_ignore_ascii_case(name))
    }
}

/// A data command, validated. Aliases are folded: `INCR`, `DECR`, `INCRBY`, `DECRBY` are
/// [`Command::IncrBy`]; `EXPIRE` and `PEXPIRE` are [`Command::Expire`] in milliseconds;
/// `UNLINK` is [`Command::Del`]; `LPUSH`/`RPUSH` and `LPOP`/`RPOP` carry a [`Side`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Get {
        key: Bytes,
    },
    /// `get`: reply with the old value (or null) instead of OK; with a condition that fails,
    /// reply null (or the old value with `get`).
    Set {
        key: Bytes,
        value: Bytes,
        ttl: SetTtl,
        condition: Option<SetCondition>,
        get: bool,
    },
    MGet {
        keys: Vec<Bytes>,
    },
    MSet {
        pairs: Vec<(Bytes, Bytes)>,
    },
    IncrBy {
        key: Bytes,
        by: i64,
    },
    Append {
        key: Bytes,
        value: Bytes,
    },
    StrLen {
        key: Bytes,
    },
    Del {
        keys: Vec<Bytes>,
    },
    /// Counts a key named twice twice, as Redis does.
    Exists {
        keys: Vec<Bytes>,
    },
    /// Relative, in milliseconds (|millis| ≤ [`MAX_RELATIVE_MILLIS`]); zero or negative deletes
    /// the key.
    Expire {
        key: Bytes,
        millis: i64,
        condition: ExpireCondition,
    },
    Ttl {
        key: Bytes,
        unit: TtlUnit,
    },
    Persist {
        key: Bytes,
    },
    /// `count` is a hint (≥ 1); `pattern` is a glob for `yun_types::glob::glob_match`.
    Scan {
        cursor: u64,
        pattern: Option<Bytes>,
        count: Option<u64>,
        kind: Option<KeyType>,
    },
    Type {
        key: Bytes,
    },
    Rename {
        key: Bytes,
        new_key: Bytes,
    },
    DbSize,
    FlushDb,
    HSet {
        key: Bytes,
        pairs: Vec<(Bytes, Bytes)>,
    },
    HGet {
        key: Bytes,
        field: Bytes,
    },
    HMGet {
        key: Bytes,
        fields: Vec<Bytes>,
    },
    HGetAll {
        key: Bytes,
    },
    HDel {
        key: Bytes,
        fields: Vec<Bytes>,
    },
    HIncrBy {
        key: Bytes,
        field: Bytes,
        by: i64,
    },
    HLen {
        key: Bytes,
    },
    Push {
        key: Bytes,
        side: Side,
        values: Vec<Bytes>,
    },
    /// Without `count`: a bulk or null; with it (≥ 0): an array, or a null array for a missing key.
    Pop {
        key: Bytes,
        side: Side,
        count: Option<u64>,
    },
    LRange {
        key: Bytes,
        start: i64,
        stop: i64,
    },
    LLen {
        key: Bytes,
    },
    SAdd {
        key: Bytes,
        members: Vec<Bytes>,
    },
    SRem {
        key: Bytes,
        members: Vec<Bytes>,
    },
    SMembers {
        key: Bytes,
    },
    SIsMember {
        key: Bytes,
        member: Bytes,
    },
    SCard {
        key: Bytes,
    },
}

impl Command {
    /// The command's canonical (lower-case) name; folded aliases give the general one.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Get { .. } => "get",
            Command::Set { .. } => "set",
            Command::MGet { .. } => "mget",
            Command::MSet { .. } => "mset",
            Command::IncrBy { .. } => "incrby",
            Command::Append { .. } => "append",
            Command::StrLen { .. } => "strlen",
            Command::Del { .. } => "del",
            Command::Exists { .. } => "exists",
            Command::Expire { .. } => "pexpire",
            Command::Ttl { unit: TtlUnit::Seconds, .. } => "ttl",
            Command::Ttl { unit: TtlUnit::Milliseconds, .. } => "pttl",
            Command::Persist { .. } => "persist",
            Command::Scan { .. } => "scan",
            Command::Type { .. } => "type",
            Command::Rename { .. } => "rename",
            Command::DbSize => "dbsize",
            Command::FlushDb => "flushdb",
            Command::HSet { .. } => "hset",
            Command::HGet { .. } => "hget",
            Command::HMGet { .. } => "hmget",
            Command::HGetAll { .. } => "hgetall",
            Command::HDel { .. } => "hdel",
            Command::HIncrBy { .. } => "hincrby",
            Command::HLen { .. } => "hlen",
            Command::Push { side: Side::Left, .. } => "lpush",
            Command::Push { side: Side::Right, .. } => "rpush",
            Command::Pop { side: Side::Left, .. } => "lpop",
            Command::Pop { side: Side::Right, .. } => "rpop",
            Command::LRange { .. } => "lrange",
            Command::LLen { .. } => "llen",
            Command::SAdd { .. } => "sadd",
            Command::SRem { .. } => "srem",
            Command::SMembers { .. } => "smembers",
            Command::SIsMember { .. } => "sismember",
            Command::SCard { .. } => "scard",
        }
    }

    /// Whether the command may change data (what a read-only credential must not run).
    pub fn is_write(&self) -> bool {
        !matches!(
            self,
            Command::Get { .. }
                | Command::MGet { .. }
                | Command::StrLen { .. }
                | Command::Exists { .. }
                | Command::Ttl { .. }
                | Command::Scan { .. }
                | Command::Type { .. }
                | Command::DbSize
                | Command::HGet { .. }
                | Command::HMGet { .. }
                | Command::HGetAll { .. }
                | Command::HLen { .. }
                | Command::LRange { .. }
                | Command::LLen { .. }
                | Command::SMembers { .. }
                | Command::SIsMember { .. }
                | Command::SCard { .. }
        )
    }
}

/// `CLIENT SETINFO`'s attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAttr {
    LibName,
    LibVer,
}

/// Everything a client can ask: a data [`Command`] or one the connection handles itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Data(Command),
    Ping(Option<Bytes>),
    Echo(Bytes),
    /// Range-checked against the configured number of databases by the server.
    Select(i64),
    /// Lower-cased section names; empty for the default set.
    Info(Vec<String>),
    Auth {
        user: Option<Bytes>,
        password: Bytes,
    },
    /// `protocol: None` keeps the current one (no version, or `HELLO 0`).
    Hello {
        protocol: Option<Protocol>,
        auth: Option<(Bytes, Bytes)>,
        setname: Option<Bytes>,
    },
    ClientSetName(Bytes),
    ClientGetName,
    ClientId,
    ClientSetInfo {
        attr: ClientAttr,
        value: Bytes,
    },
    Quit,
    Reset,
    /// `COMMAND`: the command table (answered empty).
    CommandList,
    CommandCount,
    /// `COMMAND DOCS [name ...]` (answered empty: redis-cli asks at start for hints).
    CommandDocs,
    /// Glob patterns over parameter names.
    ConfigGet(Vec<Bytes>),
}

impl Request {
    /// Whether a client that has not authenticated may send this (Redis' `no-auth` commands).
    pub fn allowed_without_auth(&self) -> bool {
        matches!(self, Request::Auth { .. } | Request::Hello { .. } | Request::Quit | Request::Reset)
    }
}

/// The command names [`parse`] knows (aliases included), for `COMMAND COUNT`.
pub const COMMAND_NAMES: &[&str] = &[
    "get",
    "set",
    "mget",
    "mset",
    "incr",
    "decr",
    "incrby",
    "decrby",
    "append",
    "strlen",
    "del",
    "unlink",
    "exists",
    "expire",
    "pexpire",
    "ttl",
    "pttl",
    "persist",
    "scan",
    "type",
    "rename",
    "dbsize",
    "flushdb",
    "hset",
    "hget",
    "hmget",
    "hgetall",
    "hdel",
    "hincrby",
    "hlen",
    "lpush",
    "rpush",
    "lpop",
    "rpop",
    "lrange",
    "llen",
    "sadd",
    "srem",
    "smembers",
    "sismember",
    "scard",
    "ping",
    "echo",
    "select",
    "info",
    "auth",
    "hello",
    "client",
    "quit",
    "reset",
    "command",
    "config",
];

/// Why an argument vector is not a valid request. `Display` is the error reply's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// `name` as sent; `args` already rendered as Redis does (`'a' 'b' `, at most ~128 bytes).
    #[error("ERR unknown command '{name}', with args beginning with: {args}")]
    Unknown { name: String, args: String },
    #[error("ERR unknown subcommand '{sub}'. Try {command} HELP.")]
    UnknownSubcommand { command: &'static str, sub: String },
    /// The canonical name, `client|setname` for subcommands.
    #[error("ERR wrong number of arguments for '{0}' command")]
    Arity(&'static str),
    #[error("ERR syntax error")]
    Syntax,
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    #[error("ERR invalid expire time in '{0}' command")]
    InvalidExpire(&'static str),
    #[error("ERR invalid cursor")]
    InvalidCursor,
    /// Any other error, its whole text (code included).
    #[error("{0}")]
    Other(String),
}

impl CommandError {
    /// Whether Redis reports this before checking authentication: an unknown command or a wrong
    /// argument count is answered as such even to a client that has not authenticated.
    pub fn precedes_auth(&self) -> bool {
        matches!(
            self,
            CommandError::Unknown { .. } | CommandError::UnknownSubcommand { .. } | CommandError::Arity(_)
        )
    }

    pub fn to_reply(&self) -> Reply {
        Reply::Error(self.to_string().into())
    }
}

/// Parses one request's arguments (the first is the command name, any case).
pub fn parse(args: Vec<Bytes>) -> Result<Request, CommandError> {
    let Some(first) = args.first().cloned() else {
        return Err(CommandError::Unknown { name: String::new(), args: String::new() });
    };
    let mut lower = [0u8; 12];
    let name: &[u8] = if first.len() <= lower.len() {
        lower[..first.len()].copy_from_slice(&first);
        lower[..first.len()].make_ascii_lowercase();
        &lower[..first.len()]
    } else {
        b""
    };
    let mut a = Args { items: args.into_iter().skip(1), len: 0 };
    a.len = a.items.len();
    use Command as C;
    use Request as R;
    let data = |c| Ok(R::Data(c));
    match name {
        b"get" => {
            let [key] = a.exact("get")?;
            data(C::Get { key })
        }
        b"set" => parse_set(a.at_least("set", 2)?),
        b"mget" => data(C::MGet { keys: a.at_least("mget", 1)?.rest() }),
        b"mset" => {
            let a = a.at_least("mset", 2)?;
            if a.len % 2 != 0 {
                return Err(CommandError::Arity("mset"));
            }
            data(C::MSet { pairs: a.pairs() })
        }
        b"incr" => {
            let [key] = a.exact("incr")?;
            data(C::IncrBy { key, by: 1 })
        }
        b"decr" => {
            let [key] = a.exact("decr")?;
            data(C::IncrBy { key, by: -1 })
        }
        b"incrby" => {
            let [key, by] = a.exact("incrby")?;
            data(C::IncrBy { key, by: int(&by)? })
        }
        b"decrby" => {
            let [key, by] = a.exact("decrby")?;
            let by = int(&by)?;
            if by == i64::MIN {
                return Err(CommandError::Other("ERR decrement would overflow".into()));
            }
            data(C::IncrBy { key, by: -by })
        }
        b"append" => {
            let [key, value] = a.exact("append")?;
            data(C::Append { key, value })
        }
        b"strlen" => {
            let [key] = a.exact("strlen")?;
            data(C::StrLen { key })
        }
        b"del" => data(C::Del { keys: a.at_least("del", 1)?.rest() }),
        b"unlink" => data(C::Del { keys: a.at_least("unlink", 1)?.rest() }),
        b"exists" => data(C::Exists { keys: a.at_least("exists", 1)?.rest() }),
        b"expire" => parse_expire(a.at_least("expire", 2)?, "expire", 1000),
        b"pexpire" => parse_expire(a.at_least("pexpire", 2)?, "pexpire", 1),
        b"ttl" => {
            let [key] = a.exact("ttl")?;
            data(C::Ttl { key, unit: TtlUnit::Seconds })
        }
        b"pttl" => {
            let [key] = a.exact("pttl")?;
            data(C::Ttl { key, unit: TtlUnit::Milliseconds })
        }
        b"persist" => {
            let [key] = a.exact("persist")?;
            data(C::Persist { key })
        }
        b"scan" => parse_scan(a.at_least("scan", 1)?),
        b"type" => {
            let [key] = a.exact("type")?;
            data(C::Type { key })
        }
        b"rename" => {
            let [key, new_key] = a.exact("rename")?;
            data(C::Rename { key, new_key })
        }
        b"dbsize" => {
            let [] = a.exact("dbsize")?;
            data(C::DbSize)
        }
        b"flushdb" => {
            let mut a = a;
            match a.len {
                0 => {}
                1 => {
                    let mode = a.next();
                    if !mode.eq_ignore_ascii_case(b"async") && !mode.eq_ignore_ascii_case(b"sync") {
                        return Err(CommandError::Syntax);
                    }
                }
                _ => return Err(CommandError::Syntax),
            }
            data(C::FlushDb)
        }
        b"hset" => {
            let mut a = a.at_least("hset", 3)?;
            if a.len % 2 == 0 {
                return Err(CommandError::Arity("hset"));
            }
            let key = a.next();
            data(C::HSet { key, pairs: a.pairs() })
        }
        b"hget" => {
            let [key, field] = a.exact("hget")?;
            data(C::HGet { key, field })
        }
        b"hmget" => {
            let mut a = a.at_least("hmget", 2)?;
            let key = a.next();
            data(C::HMGet { key, fields: a.rest() })
        }
        b"hgetall" => {
            let [key] = a.exact("hgetall")?;
            data(C::HGetAll { key })
        }
        b"hdel" => {
            let mut a = a.at_least("hdel", 2)?;
            let key = a.next();
            data(C::HDel { key, fields: a.rest() })
        }
        b"hincrby" => {
            let [key, field, by] = a.exact("hincrby")?;
            data(C::HIncrBy { key, field, by: int(&by)? })
        }
        b"hlen" => {
            let [key] = a.exact("hlen")?;
            data(C::HLen { key })
        }
        b"lpush" | b"rpush" => {
            let (side, name) = if name == b"lpush" { (Side::Left, "lpush") } else { (Side::Right, "rpush") };
            let mut a = a.at_least(name, 2)?;
            let key = a.next();
            data(C::Push { key, side, values: a.rest() })
        }
        b"lpop" | b"rpop" => {
            let (side, name) = if name == b"lpop" { (Side::Left, "lpop") } else { (Side::Right, "rpop") };
            let mut a = a.at_least(name, 1)?;
            if a.len > 2 {
                return Err(CommandError::Arity(name));
            }
            let key = a.next();
            let count = match a.len {
                0 => None,
                _ => {
                    let n = int(&a.next()).ok().filter(|n| *n >= 0).ok_or_else(|| {
                        CommandError::Other("ERR value is out of range, must be positive".into())
                    })?;
                    Some(n as u64)
                }
            };
            data(C::Pop { key, side, count })
        }
        b"lrange" => {
            let [key, start, stop] = a.exact("lrange")?;
            data(C::LRange { key, start: int(&start)?, stop: int(&stop)? })
        }
        b"llen" => {
            let [key] = a.exact("llen")?;
            data(C::LLen { key })
        }
        b"sadd" => {
            let mut a = a.at_least("sadd", 2)?;
            let key = a.next();
            data(C::SAdd { key, members: a.rest() })
        }
        b"srem" => {
            let mut a = a.at_least("srem", 2)?;
            let key = a.next();
            data(C::SRem { key, members: a.rest() })
        }
        b"smembers" => {
            let [key] = a.exact("smembers")?;
            data(C::SMembers { key })
        }
        b"sismember" => {
            let [key, member] = a.exact("sismember")?;
            data(C::SIsMember { key, member })
        }
        b"scard" => {
            let [key] = a.exact("scard")?;
            data(C::SCard { key })
        }
        b"ping" => {
            if a.len > 1 {
                return Err(CommandError::Arity("ping"));
            }
            Ok(R::Ping(a.items.next()))
        }
        b"echo" => {
            let [message] = a.exact("echo")?;
            Ok(R::Echo(message))
        }
        b"select" => {
            let [db] = a.exact("select")?;
            Ok(R::Select(int(&db)?))
        }
        b"info" => {
            Ok(R::Info(a.rest().iter().map(|s| String::from_utf8_lossy(s).to_ascii_lowercase()).collect()))
        }
        b"auth" => {
            let mut a = a.at_least("auth", 1)?;
            match a.len {
                1 => Ok(R::Auth { user: None, password: a.next() }),
                2 => Ok(R::Auth { user: Some(a.next()), password: a.next() }),
                _ => Err(CommandError::Syntax),
            }
        }
        b"hello" => parse_hello(a),
        b"client" => parse_client(a.at_least("client", 1)?),
        b"quit" => Ok(R::Quit),
        b"reset" => {
            let [] = a.exact("reset")?;
            Ok(R::Reset)
        }
        b"command" => {
            if a.len == 0 {
                return Ok(R::CommandList);
            }
            let sub = a.next();
            if sub.eq_ignore_ascii_case(b"count") {
                let [] = a.exact("command|count")?;
                Ok(R::CommandCount)
            } else if sub.eq_ignore_ascii_case(b"docs") {
                Ok(R::CommandDocs)
            } else {
                Err(unknown_sub("COMMAND", &sub))
            }
        }
        b"config" => {
            let mut a = a.at_least("config", 1)?;
            let sub = a.next();
            if sub.eq_ignore_ascii_case(b"get") {
                Ok(R::ConfigGet(a.at_least("config|get", 1)?.rest()))
            } else {
                Err(unknown_sub("CONFIG", &sub))
            }
        }
        _ => Err(unknown_command(&first, a.rest())),
    }
}

/// Redis' rendering: the name (up to 128 bytes) and each argument quoted and followed by a space
/// while the list is under 128 bytes.
fn unknown_command(name: &[u8], args: Vec<Bytes>) -> CommandError {
    let mut rendered = String::new();
    for arg in args {
        if rendered.len() >= 128 {
            break;
        }
        let room = 128 - rendered.len();
        rendered.push('\'');
        rendered.push_str(&String::from_utf8_lossy(&arg[..arg.len().min(room)]));
        rendered.push_str("' ");
    }
    CommandError::Unknown {
        name: String::from_utf8_lossy(&name[..name.len().min(128)]).into_owned(),
        args: rendered,
    }
}

fn unknown_sub(command: &'static str, sub: &[u8]) -> CommandError {
    CommandError::UnknownSubcommand {
        command,
        sub: String::from_utf8_lossy(&sub[..sub.len().min(128)]).into_owned(),
    }
}

/// The arguments after the command name.
struct Args {
    items: std::iter::Skip<std::vec::IntoIter<Bytes>>,
    len: usize,
}

impl Args {
    fn exact<const N: usize>(self, name: &'static str) -> Result<[Bytes; N], CommandError> {
        if self.len != N {
            return Err(CommandError::Arity(name));
        }
        Ok(self.rest().try_into().expect("the length was checked"))
    }

    fn at_least(self, name: &'static str, n: usize) -> Result<Args, CommandError> {
        if self.len < n { Err(CommandError::Arity(name)) } else { Ok(self) }
    }

    /// The next argument; callers check `len` first.
    fn next(&mut self) -> Bytes {
        self.len -= 1;
        self.items.next().expect("callers check the length")
    }

    fn peek_len(&self) -> usize {
        self.len
    }

    fn rest(self) -> Vec<Bytes> {
        self.items.collect()
    }

    fn pairs(self) -> Vec<(Bytes, Bytes)> {
        let mut pairs = Vec::with_capacity(self.len / 2);
        let mut items = self.items;
        while let (Some(k), Some(v)) = (items.next(), items.next()) {
            pairs.push((k, v));
        }
        pairs
    }
}

/// A 64-bit integer exactly as Redis' `string2ll` reads one: optional `-`, no `+`, no leading
/// zeros or spaces, no overflow.
pub fn parse_int(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, s),
    };
    match digits {
        [b'0'] if !negative => return Some(0),
        [b'1'..=b'9', ..] => {}
        _ => return None,
    }
    let mut n: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if negative {
        if n > i64::MAX as u64 + 1 { None } else { Some((n as i64).wrapping_neg()) }
    } else {
        i64::try_from(n).ok()
    }
}

fn int(s: &[u8]) -> Result<i64, CommandError> {
    parse_int(s).ok_or(CommandError::NotInteger)
}

fn parse_set(mut a: Args) -> Result<Request, CommandError> {
    let key = a.next();
    let value = a.next();
    let mut condition = None;
    let mut get = false;
    let mut keep = false;
    // Which of EX/PX/EXAT/PXAT was given and its argument, checked after all options as Redis
    // does (so `SET k v EX x NX XX` is a syntax error, not an integer error).
    let mut expire: Option<(&'static str, Bytes)> = None;
    while a.peek_len() > 0 {
        let opt = a.next();
        let opt_is = |name: &str| opt.eq_ignore_ascii_case(name.as_bytes());
        if opt_is("nx") && condition != Some(SetCondition::IfExists) {
            condition = Some(SetCondition::IfMissing);
        } else if opt_is("xx") && condition != Some(SetCondition::IfMissing) {
            condition = Some(SetCondition::IfExists);
        } else if opt_is("get") {
            get = true;
        } else if opt_is("keepttl") && expire.is_none() {
            keep = true;
        } else if let Some(kind) = ["ex", "px", "exat", "pxat"].into_iter().find(|k| opt_is(k)) {
            if keep || expire.as_ref().is_some_and(|(k, _)| *k != kind) || a.peek_len() == 0 {
                return Err(CommandError::Syntax);
            }
            expire = Some((kind, a.next()));
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let ttl = match expire {
        None if keep => SetTtl::Keep,
        None => SetTtl::Clear,
        Some((kind, n)) => {
            let n = int(&n)?;
            let scale = if kind.starts_with('e') { 1000 } else { 1 };
            let millis =
                n.checked_mul(scale).filter(|ms| *ms > 0).ok_or(CommandError::InvalidExpire("set"))?;
            if kind.ends_with("at") {
                SetTtl::At { unix_millis: millis }
            } else if millis > MAX_RELATIVE_MILLIS {
                return Err(CommandError::InvalidExpire("set"));
            } else {
                SetTtl::After { millis }
            }
        }
    };
    Ok(Request::Data(Command::Set { key, value, ttl, condition, get }))
}

fn parse_expire(mut a: Args, name: &'static str, scale: i64) -> Result<Request, CommandError> {
    let key = a.next();
    let time = a.next();
    let mut condition = ExpireCondition::default();
    while a.peek_len() > 0 {
        let opt = a.next();
        match opt.to_ascii_lowercase().as_slice() {
            b"nx" => condition.nx = true,
            b"xx" => condition.xx = true,
            b"gt" => condition.gt = true,
            b"lt" => condition.lt = true,
            _ => {
                return Err(CommandError::Other(format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(&opt)
                )));
            }
        }
    }
    if condition.nx && (condition.xx || condition.gt || condition.lt) {
        return Err(CommandError::Other(
            "ERR NX and XX, GT or LT options at the same time are not compatible".into(),
        ));
    }
    if condition.gt && condition.lt {
        return Err(CommandError::Other("ERR GT and LT options at the same time are not compatible".into()));
    }
    let millis = int(&time)?
        .checked_mul(scale)
        .filter(|ms| ms.unsigned_abs() <= MAX_RELATIVE_MILLIS as u64)
        .ok_or(CommandError::InvalidExpire(name))?;
    Ok(Request::Data(Command::Expire { key, millis, condition }))
}

fn parse_scan(mut a: Args) -> Result<Request, CommandError> {
    let cursor = a.next();
    let cursor = if cursor.is_empty() || !cursor.iter().all(u8::is_ascii_digit) {
        None
    } else {
        std::str::from_utf8(&cursor).ok().and_then(|s| s.parse::<u64>().ok())
    }
    .ok_or(CommandError::InvalidCursor)?;
    let (mut pattern, mut count, mut kind) = (None, None, None);
    while a.peek_len() > 0 {
        let opt = a.next();
        if a.peek_len() == 0 {
            return Err(CommandError::Syntax);
        }
        let value = a.next();
        if opt.eq_ignore_ascii_case(b"match") {
            pattern = Some(value);
        } else if opt.eq_ignore_ascii_case(b"count") {
            let n = int(&value)?;
            if n < 1 {
                return Err(CommandError::Syntax);
            }
            count = Some(n as u64);
        } else if opt.eq_ignore_ascii_case(b"type") {
            kind = Some(KeyType::parse(&value).ok_or_else(|| {
                CommandError::Other(format!("ERR unknown type name '{}'", String::from_utf8_lossy(&value)))
            })?);
        } else {
            return Err(CommandError::Syntax);
        }
    }
    Ok(Request::Data(Command::Scan { cursor, pattern, count, kind }))
}

fn parse_hello(mut a: Args) -> Result<Request, CommandError> {
    let mut protocol = None;
    let mut version = 0;
    if a.peek_len() > 0 {
        version = parse_int(&a.next()).ok_or_else(|| {
            CommandError::Other("ERR Protocol version is not an integer or out of range".into())
        })?;
    }
    let (mut auth, mut setname) = (None, None);
    while a.peek_len() > 0 {
        let opt = a.next();
        if opt.eq_ignore_ascii_case(b"auth") && a.peek_len() >= 2 {
            auth = Some((a.next(), a.next()));
        } else if opt.eq_ignore_ascii_case(b"setname") && a.peek_len() >= 1 {
            setname = Some(a.next());
        } else {
            return Err(CommandError::Other(format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(&opt)
            )));
        }
    }
    match version {
        0 => {}
        2 => protocol = Some(Protocol::Resp2),
        3 => protocol = Some(Protocol::Resp3),
        _ => return Err(CommandError::Other("NOPROTO unsupported protocol version".into())),
    }
    Ok(Request::Hello { protocol, auth, setname })
}

/// What `CLIENT SETNAME` and `CLIENT SETINFO` accept: printable ASCII without spaces.
pub fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|&c| (b'!'..=b'~').contains(&c))
}

fn parse_client(mut a: Args) -> Result<Request, CommandError> {
    let sub = a.next();
    let sub_is = |name: &str| sub.eq_ignore_ascii_case(name.as_bytes());
    if sub_is("setname") {
        let [name] = a.exact("client|setname")?;
        if !valid_client_name(&name) {
            return Err(CommandError::Other(
                "ERR Client names cannot contain spaces, newlines or special characters.".into(),
            ));
        }
        Ok(Request::ClientSetName(name))
    } else if sub_is("getname") {
        let [] = a.exact("client|getname")?;
        Ok(Request::ClientGetName)
    } else if sub_is("id") {
        let [] = a.exact("client|id")?;
        Ok(Request::ClientId)
    } else if sub_is("setinfo") {
        let [attr, value] = a.exact("client|setinfo")?;
        let (attr, label) = if attr.eq_ignore_ascii_case(b"lib-name") {
            (ClientAttr::LibName, "lib-name")
        } else if attr.eq_ignore_ascii_case(b"lib-ver") {
            (ClientAttr::LibVer, "lib-ver")
        } else {
            return Err(CommandError::Other(format!(
                "ERR Unrecognized option '{}'",
                String::from_utf8_lossy(&attr)
            )));
        };
        if !valid_client_name(&value) {
            return Err(CommandError::Other(format!(
                "ERR {label} cannot contain spaces, newlines or special characters."
            )));
        }
        Ok(Request::ClientSetInfo { attr, value })
    } else {
        Err(unknown_sub("CLIENT", &sub))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(line: &str) -> Result<Request, CommandError> {
        let args = crate::frame::split_args(line.as_bytes()).unwrap().into_iter().map(Bytes::from).collect();
        parse(args)
    }

    fn cmd(line: &str) -> Command {
        match req(line) {
            Ok(Request::Data(c)) => c,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn err(line: &str) -> String {
        req(line).unwrap_err().to_string()
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn names_and_options_are_case_insensitive() {
        assert_eq!(cmd("get k"), Command::Get { key: b("k") });
        assert_eq!(cmd("GeT K"), Command::Get { key: b("K") });
        assert_eq!(
            cmd("SET k v nx Px 1500 GET"),
            Command::Set {
                key: b("k"),
                value: b("v"),
                ttl: SetTtl::After { millis: 1500 },
                condition: Some(SetCondition::IfMissing),
                get: true
            }
        );
    }

    #[test]
    fn set_options() {
        let ttl = |line: &str| match cmd(line) {
            Command::Set { ttl, .. } => ttl,
            other => panic!("{other:?}"),
        };
        assert_eq!(ttl("set k v"), SetTtl::Clear);
        assert_eq!(ttl("set k v ex 10"), SetTtl::After { millis: 10_000 });
        assert_eq!(ttl("set k v exat 1700000000"), SetTtl::At { unix_millis: 1_700_000_000_000 });
        assert_eq!(ttl("set k v pxat 5"), SetTtl::At { unix_millis: 5 });
        assert_eq!(ttl("set k v keepttl xx"), SetTtl::Keep);
        assert_eq!(ttl("set k v ex 1 ex 2"), SetTtl::After { millis: 2000 });
        assert!(matches!(
            cmd("set k v xx"),
            Command::Set { condition: Some(SetCondition::IfExists), get: false, .. }
        ));
        for bad in [
            "set k v nx xx",
            "set k v xx nx",
            "set k v ex 1 px 1",
            "set k v ex 1 keepttl",
            "set k v keepttl ex 1",
            "set k v ex",
            "set k v bogus",
            "set k v ex x nx xx",
        ] {
            assert_eq!(err(bad), "ERR syntax error", "{bad}");
        }
        assert_eq!(err("set k v ex x"), "ERR value is not an integer or out of range");
        assert_eq!(err("set k v ex 0"), "ERR invalid expire time in 'set' command");
        assert_eq!(err("set k v px -5"), "ERR invalid expire time in 'set' command");
        assert_eq!(err("set k v ex 9223372036854775807"), "ERR invalid expire time in 'set' command");
        assert_eq!(err("set k"), "ERR wrong number of arguments for 'set' command");
    }

    #[test]
    fn arity_errors_match_redis() {
        for (line, name) in [
            ("get", "get"),
            ("get a b", "get"),
            ("mget", "mget"),
            ("mset a", "mset"),
            ("mset a b c", "mset"),
            ("hset h f", "hset"),
            ("hset h f v g", "hset"),
            ("lpop a 1 2", "lpop"),
            ("dbsize x", "dbsize"),
            ("ping a b", "ping"),
            ("echo", "echo"),
            ("client setname", "client|setname"),
            ("client", "client"),
            ("config get", "config|get"),
            ("command count x", "command|count"),
            ("sismember s", "sismember"),
            ("lrange l 0", "lrange"),
        ] {
            let e = req(line).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("ERR wrong number of arguments for '{name}' command"),
                "{line}"
            );
            assert!(e.precedes_auth());
        }
    }

    #[test]
    fn unknown_commands_quote_their_arguments() {
        assert_eq!(err("FOO a b"), "ERR unknown command 'FOO', with args beginning with: 'a' 'b' ");
        assert_eq!(err("foo"), "ERR unknown command 'foo', with args beginning with: ");
        let long = format!("nope {} x", "y".repeat(200));
        assert_eq!(
            err(&long),
            format!("ERR unknown command 'nope', with args beginning with: '{}' ", "y".repeat(128))
        );
        let name = "z".repeat(300);
        assert!(err(&name).starts_with(&format!("ERR unknown command '{}', ", "z".repeat(128))));
        assert_eq!(err("client kill x"), "ERR unknown subcommand 'kill'. Try CLIENT HELP.");
        assert_eq!(err("config set a b"), "ERR unknown subcommand 'set'. Try CONFIG HELP.");
        assert!(req("FOO").unwrap_err().precedes_auth());
        assert!(!req("set k v nx xx").unwrap_err().precedes_auth());
        assert_eq!(
            parse(Vec::new()).unwrap_err().to_string(),
            "ERR unknown command '', with args beginning with: "
        );
    }

    #[test]
    fn strings_and_counters() {
        assert_eq!(cmd("mget a b"), Command::MGet { keys: vec![b("a"), b("b")] });
        assert_eq!(cmd("mset a 1 b 2"), Command::MSet { pairs: vec![(b("a"), b("1")), (b("b"), b("2"))] });
        assert_eq!(cmd("incr n"), Command::IncrBy { key: b("n"), by: 1 });
        assert_eq!(cmd("decr n"), Command::IncrBy { key: b("n"), by: -1 });
        assert_eq!(cmd("incrby n -7"), Command::IncrBy { key: b("n"), by: -7 });
        assert_eq!(cmd("decrby n 7"), Command::IncrBy { key: b("n"), by: -7 });
        assert_eq!(err("decrby n -9223372036854775808"), "ERR decrement would overflow");
        assert_eq!(err("incrby n 1.5"), "ERR value is not an integer or out of range");
        assert_eq!(err("incrby n 9223372036854775808"), "ERR value is not an integer or out of range");
        assert_eq!(cmd("append k v"), Command::Append { key: b("k"), value: b("v") });
        assert_eq!(cmd("strlen k"), Command::StrLen { key: b("k") });
        assert_eq!(cmd("del a b"), Command::Del { keys: vec![b("a"), b("b")] });
        assert_eq!(cmd("unlink a"), Command::Del { keys: vec![b("a")] });
        assert_eq!(cmd("exists a a"), Command::Exists { keys: vec![b("a"), b("a")] });
        assert_eq!(cmd("ttl k"), Command::Ttl { key: b("k"), unit: TtlUnit::Seconds });
        assert_eq!(cmd("pttl k"), Command::Ttl { key: b("k"), unit: TtlUnit::Milliseconds });
        assert_eq!(cmd("persist k"), Command::Persist { key: b("k") });
    }

    #[test]
    fn expire() {
        let none = ExpireCondition::default();
        assert_eq!(cmd("expire k 10"), Command::Expire { key: b("k"), millis: 10_000, condition: none });
        assert_eq!(cmd("pexpire k -5"), Command::Expire { key: b("k"), millis: -5, condition: none });
        assert_eq!(
            cmd("expire k 1 XX gt"),
            Command::Expire {
                key: b("k"),
                millis: 1000,
                condition: ExpireCondition { xx: true, gt: true, ..none }
            }
        );
        assert_eq!(
            err("expire k 1 nx xx"),
            "ERR NX and XX, GT or LT options at the same time are not compatible"
        );
        assert_eq!(err("expire k 1 gt lt"), "ERR GT and LT options at the same time are not compatible");
        assert_eq!(err("expire k 1 sometimes"), "ERR Unsupported option sometimes");
        assert_eq!(err("expire k soon"), "ERR value is not an integer or out of range");
        assert_eq!(err("expire k 9223372036854775"), "ERR invalid expire time in 'expire' command");
        assert_eq!(err("pexpire k 9223372036854775807"), "ERR invalid expire time in 'pexpire' command");
    }

    #[test]
    fn expire_conditions_follow_redis() {
        let c = |s: &str| ExpireCondition {
            nx: s.contains("nx"),
            xx: s.contains("xx"),
            gt: s.contains("gt"),
            lt: s.contains("lt"),
        };
        assert!(c("").allows(None, 5) && c("").allows(Some(9), 5));
        assert!(c("nx").allows(None, 5) && !c("nx").allows(Some(9), 5));
        assert!(!c("xx").allows(None, 5) && c("xx").allows(Some(9), 5));
        // No expiry counts as infinite: GT can never beat it, LT always does.
        assert!(!c("gt").allows(None, 5) && c("gt").allows(Some(4), 5) && !c("gt").allows(Some(5), 5));
        assert!(c("lt").allows(None, 5) && c("lt").allows(Some(6), 5) && !c("lt").allows(Some(5), 5));
        assert!(!c("xx lt").allows(None, 5) && c("xx lt").allows(Some(6), 5));
    }

    #[test]
    fn keyspace_commands() {
        assert_eq!(cmd("scan 0"), Command::Scan { cursor: 0, pattern: None, count: None, kind: None });
        assert_eq!(
            cmd("SCAN 18446744073709551615 MATCH user:* count 100 TYPE Hash"),
            Command::Scan {
                cursor: u64::MAX,
                pattern: Some(b("user:*")),
                count: Some(100),
                kind: Some(KeyType::Hash)
            }
        );
        assert_eq!(err("scan -1"), "ERR invalid cursor");
        assert_eq!(err("scan x"), "ERR invalid cursor");
        assert_eq!(err("scan 18446744073709551616"), "ERR invalid cursor");
        assert_eq!(err("scan 0 count 0"), "ERR syntax error");
        assert_eq!(err("scan 0 count x"), "ERR value is not an integer or out of range");
        assert_eq!(err("scan 0 match"), "ERR syntax error");
        assert_eq!(err("scan 0 limit 5"), "ERR syntax error");
        assert_eq!(err("scan 0 type blob"), "ERR unknown type name 'blob'");
        assert_eq!(cmd("type k"), Command::Type { key: b("k") });
        assert_eq!(cmd("rename a b"), Command::Rename { key: b("a"), new_key: b("b") });
        assert_eq!(cmd("dbsize"), Command::DbSize);
        assert_eq!(cmd("flushdb"), Command::FlushDb);
        assert_eq!(cmd("flushdb ASYNC"), Command::FlushDb);
        assert_eq!(err("flushdb later"), "ERR syntax error");
        assert_eq!(err("flushdb sync sync"), "ERR syntax error");
    }

    #[test]
    fn hashes_lists_sets() {
        assert_eq!(
            cmd("hset h a 1 b 2"),
            Command::HSet { key: b("h"), pairs: vec![(b("a"), b("1")), (b("b"), b("2"))] }
        );
        assert_eq!(cmd("hget h a"), Command::HGet { key: b("h"), field: b("a") });
        assert_eq!(cmd("hmget h a b"), Command::HMGet { key: b("h"), fields: vec![b("a"), b("b")] });
        assert_eq!(cmd("hgetall h"), Command::HGetAll { key: b("h") });
        assert_eq!(cmd("hdel h a"), Command::HDel { key: b("h"), fields: vec![b("a")] });
        assert_eq!(cmd("hincrby h a -3"), Command::HIncrBy { key: b("h"), field: b("a"), by: -3 });
        assert_eq!(err("hincrby h a x"), "ERR value is not an integer or out of range");
        assert_eq!(cmd("hlen h"), Command::HLen { key: b("h") });
        assert_eq!(
            cmd("lpush l a b"),
            Command::Push { key: b("l"), side: Side::Left, values: vec![b("a"), b("b")] }
        );
        assert_eq!(cmd("rpush l a"), Command::Push { key: b("l"), side: Side::Right, values: vec![b("a")] });
        assert_eq!(cmd("lpop l"), Command::Pop { key: b("l"), side: Side::Left, count: None });
        assert_eq!(cmd("rpop l 0"), Command::Pop { key: b("l"), side: Side::Right, count: Some(0) });
        assert_eq!(err("lpop l -1"), "ERR value is out of range, must be positive");
        assert_eq!(err("lpop l x"), "ERR value is out of range, must be positive");
        assert_eq!(cmd("lrange l 0 -1"), Command::LRange { key: b("l"), start: 0, stop: -1 });
        assert_eq!(err("lrange l a -1"), "ERR value is not an integer or out of range");
        assert_eq!(cmd("llen l"), Command::LLen { key: b("l") });
        assert_eq!(cmd("sadd s a b"), Command::SAdd { key: b("s"), members: vec![b("a"), b("b")] });
        assert_eq!(cmd("srem s a"), Command::SRem { key: b("s"), members: vec![b("a")] });
        assert_eq!(cmd("smembers s"), Command::SMembers { key: b("s") });
        assert_eq!(cmd("sismember s a"), Command::SIsMember { key: b("s"), member: b("a") });
        assert_eq!(cmd("scard s"), Command::SCard { key: b("s") });
    }

    #[test]
    fn session_commands() {
        assert_eq!(req("ping").unwrap(), Request::Ping(None));
        assert_eq!(req("PING hi").unwrap(), Request::Ping(Some(b("hi"))));
        assert_eq!(req("echo x").unwrap(), Request::Echo(b("x")));
        assert_eq!(req("select 3").unwrap(), Request::Select(3));
        assert_eq!(err("select x"), "ERR value is not an integer or out of range");
        assert_eq!(req("info").unwrap(), Request::Info(vec![]));
        assert_eq!(
            req("INFO Server KEYSPACE").unwrap(),
            Request::Info(vec!["server".into(), "keyspace".into()])
        );
        assert_eq!(req("auth pw").unwrap(), Request::Auth { user: None, password: b("pw") });
        assert_eq!(req("auth u pw").unwrap(), Request::Auth { user: Some(b("u")), password: b("pw") });
        assert_eq!(err("auth a b c"), "ERR syntax error");
        assert_eq!(err("auth"), "ERR wrong number of arguments for 'auth' command");
        assert_eq!(req("hello").unwrap(), Request::Hello { protocol: None, auth: None, setname: None });
        assert_eq!(
            req("HELLO 3 auth u p SETNAME me").unwrap(),
            Request::Hello {
                protocol: Some(Protocol::Resp3),
                auth: Some((b("u"), b("p"))),
                setname: Some(b("me"))
            }
        );
        assert_eq!(req("hello 0").unwrap(), Request::Hello { protocol: None, auth: None, setname: None });
        assert_eq!(err("hello 4"), "NOPROTO unsupported protocol version");
        assert_eq!(err("hello 1"), "NOPROTO unsupported protocol version");
        assert_eq!(err("hello three"), "ERR Protocol version is not an integer or out of range");
        assert_eq!(err("hello 3 auth u"), "ERR Syntax error in HELLO option 'auth'");
        assert_eq!(err("hello 9 bogus"), "ERR Syntax error in HELLO option 'bogus'");
        assert_eq!(req("client setname app-1").unwrap(), Request::ClientSetName(b("app-1")));
        assert_eq!(
            err("client setname \"a b\""),
            "ERR Client names cannot contain spaces, newlines or special characters."
        );
        assert_eq!(req("CLIENT GETNAME").unwrap(), Request::ClientGetName);
        assert_eq!(req("client id").unwrap(), Request::ClientId);
        assert_eq!(
            req("client setinfo LIB-NAME redis-py").unwrap(),
            Request::ClientSetInfo { attr: ClientAttr::LibName, value: b("redis-py") }
        );
        assert_eq!(
            req("client setinfo lib-ver 5.0.1").unwrap(),
            Request::ClientSetInfo { attr: ClientAttr::LibVer, value: b("5.0.1") }
        );
        assert_eq!(err("client setinfo lib-os linux"), "ERR Unrecognized option 'lib-os'");
        assert_eq!(req("quit").unwrap(), Request::Quit);
        assert_eq!(req("reset").unwrap(), Request::Reset);
        assert_eq!(req("command").unwrap(), Request::CommandList);
        assert_eq!(req("command docs get").unwrap(), Request::CommandDocs);
        assert_eq!(req("command count").unwrap(), Request::CommandCount);
        assert_eq!(
            req("config get save appendonly").unwrap(),
            Request::ConfigGet(vec![b("save"), b("appendonly")])
        );
        assert!(req("auth x").unwrap().allowed_without_auth());
        assert!(!req("ping").unwrap().allowed_without_auth());
    }

    #[test]
    fn every_listed_name_parses() {
        for name in COMMAND_NAMES {
            if let Err(CommandError::Unknown { .. }) = parse(vec![Bytes::from_static(name.as_bytes())]) {
                panic!("{name} is listed but unknown");
            }
        }
    }

    #[test]
    fn integers_as_redis_reads_them() {
        for (s, v) in
            [("0", Some(0)), ("-1", Some(-1)), ("42", Some(42)), ("9223372036854775807", Some(i64::MAX))]
        {
            assert_eq!(parse_int(s.as_bytes()), v, "{s}");
        }
        assert_eq!(parse_int(b"-9223372036854775808"), Some(i64::MIN));
        for s in ["", "-", "+1", "01", "-0", " 1", "1 ", "1e3", "9223372036854775808", "-9223372036854775809"]
        {
            assert_eq!(parse_int(s.as_bytes()), None, "{s:?}");
        }
    }

    #[test]
    fn writes_are_told_from_reads() {
        assert!(cmd("set k v").is_write());
        assert!(cmd("incr k").is_write());
        assert!(cmd("lpop l").is_write());
        assert!(!cmd("get k").is_write());
        assert!(!cmd("scan 0").is_write());
        assert!(!cmd("hgetall h").is_write());
        assert_eq!(cmd("decr k").name(), "incrby");
        assert_eq!(cmd("rpop k").name(), "rpop");
    }
}
