//! Operations as values (what a pipeline submits), their replies, and the read path.

use std::time::Duration;

use bytes::Bytes;

use crate::KvError;
use crate::value::{DbMem, Entry, KeyType, SHARDS, Value, key_hash, shard_of};
use yun_types::glob::glob_match;

/// `SET`'s `NX` / `XX`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SetCondition {
    #[default]
    Always,
    /// `NX`: only if the key does not exist.
    IfAbsent,
    /// `XX`: only if the key exists.
    IfExists,
}

/// An expiry as Redis commands give it: relative (`EX`, `PX`, `EXPIRE`, `PEXPIRE`) or absolute
/// unix time (`EXAT`, `PXAT`, `EXPIREAT`, `PEXPIREAT`), signed because clients may send anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expire {
    Seconds(i64),
    Millis(i64),
    AtSeconds(i64),
    AtMillis(i64),
}

impl Expire {
    /// The absolute unix ms, with Redis's overflow checks (`command` names the error).
    pub(crate) fn at_ms(self, now: u64, command: &'static str) -> Result<i64, KvError> {
        let err = || KvError::InvalidExpireTime(command);
        let (ms, relative) = match self {
            Expire::Seconds(s) => (s.checked_mul(1000).ok_or_else(err)?, true),
            Expire::Millis(ms) => (ms, true),
            Expire::AtSeconds(s) => (s.checked_mul(1000).ok_or_else(err)?, false),
            Expire::AtMillis(ms) => (ms, false),
        };
        if relative { ms.checked_add(now as i64).ok_or_else(err) } else { Ok(ms) }
    }

    fn raw(self) -> i64 {
        match self {
            Expire::Seconds(v) | Expire::Millis(v) | Expire::AtSeconds(v) | Expire::AtMillis(v) => v,
        }
    }

    /// `SET`'s rule: the given number must be positive, and the absolute time must not overflow.
    pub(crate) fn for_set(self, now: u64) -> Result<i64, KvError> {
        if self.raw() <= 0 {
            return Err(KvError::InvalidExpireTime("set"));
        }
        self.at_ms(now, "set")
    }
}

/// `EXPIRE`'s `NX` / `XX` / `GT` / `LT` (Redis 7).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExpireCondition {
    #[default]
    Always,
    /// Only if the key has no expiry.
    Nx,
    /// Only if the key has an expiry.
    Xx,
    /// Only if the new expiry is later (no expiry counts as infinitely late).
    Gt,
    /// Only if the new expiry is earlier.
    Lt,
    /// `XX LT`: only if the key has an expiry and the new one is earlier (`XX GT` is `Gt`).
    XxLt,
}

/// The options of `SET`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetOptions {
    pub condition: SetCondition,
    /// `None` clears an existing expiry unless `keep_ttl`.
    pub expire: Option<Expire>,
    /// `KEEPTTL`.
    pub keep_ttl: bool,
    /// `GET`: reply with the previous value.
    pub get: bool,
}

/// One item of an all-or-nothing batch set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetItem {
    pub key: Bytes,
    pub value: Bytes,
    /// A time to live; `None` keeps the key forever (and clears an existing expiry).
    pub ttl: Option<Duration>,
}

/// One operation on one database, as a pipeline submits it. The reply each gives is documented
/// on the variant in Redis's terms; the typed methods of [`crate::Db`] convert them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Bulk or Nil; WRONGTYPE for a non-string.
    Get(Bytes),
    /// Ok, or Nil if the condition failed; with `get`: the old value (Bulk/Nil).
    Set {
        key: Bytes,
        value: Bytes,
        options: SetOptions,
    },
    /// Array of Bulk/Nil (Nil for non-strings too).
    MGet(Vec<Bytes>),
    /// Ok. Atomic: every pair or none; clears expiries.
    MSet(Vec<(Bytes, Bytes)>),
    /// Ok. Atomic like `MSet`, each item with its own time to live.
    SetMany(Vec<SetItem>),
    /// Int: the new value (`INCR`/`DECR`/`INCRBY`/`DECRBY`; `DecrBy` with `i64::MIN` overflows).
    IncrBy(Bytes, i64),
    DecrBy(Bytes, i64),
    /// Int: the new length.
    Append(Bytes, Bytes),
    /// Int.
    StrLen(Bytes),
    /// Int 1 if set, 0 if the current value was not `expected` (`None` = the key is absent).
    CompareAndSwap {
        key: Bytes,
        expected: Option<Bytes>,
        value: Bytes,
        ttl: Option<Duration>,
    },
    /// Int: keys removed.
    Del(Vec<Bytes>),
    /// Int: how many of the keys exist (a key named twice counts twice).
    Exists(Vec<Bytes>),
    /// Int 1 if the expiry was set (or the key deleted for a past time), 0 otherwise.
    /// `command` names Redis's error ("expire", "pexpire", ...).
    Expire {
        key: Bytes,
        expire: Expire,
        condition: ExpireCondition,
        command: &'static str,
    },
    /// Int 1 if an expiry was removed.
    Persist(Bytes),
    /// Int: seconds to live (rounded), -1 without expiry, -2 if the key is absent.
    Ttl(Bytes),
    /// Int: ms to live, -1 without expiry, -2 if the key is absent.
    Pttl(Bytes),
    /// Status: "string", "hash", "list", "set" or "none".
    Type(Bytes),
    /// Ok; "no such key" if the source is absent. Keeps the source's expiry.
    Rename(Bytes, Bytes),
    /// Array [Bulk(next cursor in decimal), Array(keys)]: `count` keys visited (a hint, as in
    /// Redis), then filtered by `pattern` and `kind`.
    Scan {
        cursor: u64,
        pattern: Option<Bytes>,
        count: usize,
        kind: Option<KeyType>,
    },
    /// Array [Array(keys), Bulk(last key) or Nil]: live keys starting with `prefix` in byte
    /// order after `after`, at most `limit`; the second element is the cursor of the next page.
    List {
        prefix: Bytes,
        after: Option<Bytes>,
        limit: usize,
    },
    /// Int.
    DbSize,
    /// Ok.
    FlushDb,
    /// Int: fields added.
    HSet(Bytes, Vec<(Bytes, Bytes)>),
    HGet(Bytes, Bytes),
    HMGet(Bytes, Vec<Bytes>),
    /// Array of field, value, field, value...
    HGetAll(Bytes),
    /// Int: fields removed.
    HDel(Bytes, Vec<Bytes>),
    /// Int: the new value.
    HIncrBy(Bytes, Bytes, i64),
    HLen(Bytes),
    /// Int: the new length.
    LPush(Bytes, Vec<Bytes>),
    RPush(Bytes, Vec<Bytes>),
    /// Without a count: Bulk or Nil. With one: Array, or NilArray if the key is absent.
    LPop(Bytes, Option<usize>),
    RPop(Bytes, Option<usize>),
    /// Array; indexes as Redis's (negative from the end, clamped).
    LRange(Bytes, i64, i64),
    LLen(Bytes),
    /// Int: members added.
    SAdd(Bytes, Vec<Bytes>),
    /// Int: members removed.
    SRem(Bytes, Vec<Bytes>),
    /// Array (byte order).
    SMembers(Bytes),
    /// Int 1/0.
    SIsMember(Bytes, Bytes),
    SCard(Bytes),
}

impl Op {
    /// Whether the op only reads, so it never needs the writer.
    pub fn is_read(&self) -> bool {
        matches!(
            self,
            Op::Get(_)
                | Op::MGet(_)
                | Op::StrLen(_)
                | Op::Exists(_)
                | Op::Ttl(_)
                | Op::Pttl(_)
                | Op::Type(_)
                | Op::Scan { .. }
                | Op::List { .. }
                | Op::DbSize
                | Op::HGet(..)
                | Op::HMGet(..)
                | Op::HGetAll(_)
                | Op::HLen(_)
                | Op::LRange(..)
                | Op::LLen(_)
                | Op::SMembers(_)
                | Op::SIsMember(..)
                | Op::SCard(_)
        )
    }
}

/// A reply in the shapes RESP has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Ok,
    /// A simple string (`TYPE`'s answer).
    Status(&'static str),
    /// The null bulk string.
    Nil,
    /// The null array (`LPOP key count` on an absent key).
    NilArray,
    Int(i64),
    Bulk(Bytes),
    Array(Vec<Reply>),
}

/// HDEL / SREM / a pop on an absent key.
pub(crate) fn absent_shrink_reply(kind: KeyType) -> Reply {
    match kind {
        KeyType::List => Reply::Nil,
        _ => Reply::Int(0),
    }
}

pub(crate) fn opt_bulk(v: Option<Bytes>) -> Reply {
    v.map_or(Reply::Nil, Reply::Bulk)
}

pub(crate) fn bulks(v: impl IntoIterator<Item = Bytes>) -> Reply {
    Reply::Array(v.into_iter().map(Reply::Bulk).collect())
}

/// Redis's `string2ll`: an optional `-`, no `+`, no spaces, no leading zeros, fits an i64.
pub(crate) fn parse_i64(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    if b == b"0" {
        return Some(0);
    }
    let (neg, digits) = match b[0] {
        b'-' => (true, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() || !(b'1'..=b'9').contains(&digits[0]) {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        let d = i64::from(c - b'0');
        v = v.checked_mul(10)?;
        v = if neg { v.checked_sub(d)? } else { v.checked_add(d)? };
    }
    Some(v)
}

/// Redis's LRANGE index rules: the inclusive range of positions, if any.
pub(crate) fn list_range(len: usize, start: i64, stop: i64) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 { (len + start).max(0) } else { start };
    let stop = if stop < 0 { len + stop } else { stop.min(len - 1) };
    (start <= stop && start < len).then_some((start as usize, stop as usize))
}

fn live(e: Option<&Entry>, now: u64) -> Option<&Entry> {
    e.filter(|e| !e.is_expired(now))
}

/// Runs `f` on the key's live entry under its shard's read lock.
pub(crate) fn with_entry<R>(db: &DbMem, key: &[u8], now: u64, f: impl FnOnce(Option<&Entry>) -> R) -> R {
    let h = key_hash(key);
    let shard = db.shards[shard_of(h)].read();
    f(live(shard.get(h, key), now))
}

pub(crate) fn ttl_reply(e: Option<&Entry>, now: u64, millis: bool) -> i64 {
    match e {
        None => -2,
        Some(e) if e.expires_at == 0 => -1,
        Some(e) => {
            let left = e.expires_at.saturating_sub(now) as i64;
            if millis { left } else { (left + 500) / 1000 }
        }
    }
}

fn typed(e: Option<&Entry>, kind: KeyType) -> Result<Option<&Value>, KvError> {
    match e {
        None => Ok(None),
        Some(e) if e.value.kind() == kind => Ok(Some(&e.value)),
        Some(_) => Err(KvError::WrongType),
    }
}

/// Executes a read-only op against memory (`None` if `op` is not one).
pub(crate) fn read(db: &DbMem, op: &Op, now: u64) -> Option<Result<Reply, KvError>> {
    let r = match op {
        Op::Get(k) => with_entry(db, k, now, |e| match typed(e, KeyType::String)? {
            Some(Value::Str(b)) => Ok(Reply::Bulk(b.clone())),
            _ => Ok(Reply::Nil),
        }),
        Op::MGet(keys) => Ok(Reply::Array(
            keys.iter()
                .map(|k| {
                    with_entry(db, k, now, |e| match e.map(|e| &e.value) {
                        Some(Value::Str(b)) => Reply::Bulk(b.clone()),
                        _ => Reply::Nil,
                    })
                })
                .collect(),
        )),
        Op::StrLen(k) => with_entry(db, k, now, |e| match typed(e, KeyType::String)? {
            Some(Value::Str(b)) => Ok(Reply::Int(b.len() as i64)),
            _ => Ok(Reply::Int(0)),
        }),
        Op::Exists(keys) => {
            Ok(Reply::Int(keys.iter().filter(|k| with_entry(db, k, now, |e| e.is_some())).count() as i64))
        }
        Op::Ttl(k) => Ok(Reply::Int(with_entry(db, k, now, |e| ttl_reply(e, now, false)))),
        Op::Pttl(k) => Ok(Reply::Int(with_entry(db, k, now, |e| ttl_reply(e, now, true)))),
        Op::Type(k) => {
            Ok(Reply::Status(with_entry(db, k, now, |e| e.map_or("none", |e| e.value.kind().as_str()))))
        }
        Op::Scan { cursor, pattern, count, kind } => {
            let (next, keys) = scan(db, *cursor, pattern.as_deref(), *count, *kind, now);
            Ok(Reply::Array(vec![Reply::Bulk(Bytes::from(next.to_string())), bulks(keys)]))
        }
        Op::List { prefix, after, limit } => {
            let (keys, next) = list(db, prefix, after.as_deref(), *limit, now);
            Ok(Reply::Array(vec![bulks(keys), opt_bulk(next)]))
        }
        Op::DbSize => Ok(Reply::Int(db.len() as i64)),
        Op::HGet(k, f) => with_entry(db, k, now, |e| match typed(e, KeyType::Hash)? {
            Some(Value::Hash(h)) => Ok(opt_bulk(h.get(f.as_ref()).cloned())),
            _ => Ok(Reply::Nil),
        }),
        Op::HMGet(k, fields) => with_entry(db, k, now, |e| {
            let h = match typed(e, KeyType::Hash)? {
                Some(Value::Hash(h)) => Some(h),
                _ => None,
            };
            Ok(Reply::Array(
                fields.iter().map(|f| opt_bulk(h.and_then(|h| h.get(f.as_ref()).cloned()))).collect(),
            ))
        }),
        Op::HGetAll(k) => with_entry(db, k, now, |e| match typed(e, KeyType::Hash)? {
            Some(Value::Hash(h)) => Ok(bulks(h.iter().flat_map(|(f, v)| [f.clone(), v.clone()]))),
            _ => Ok(Reply::Array(Vec::new())),
        }),
        Op::HLen(k) => with_entry(db, k, now, |e| match typed(e, KeyType::Hash)? {
            Some(Value::Hash(h)) => Ok(Reply::Int(h.len() as i64)),
            _ => Ok(Reply::Int(0)),
        }),
        Op::LRange(k, start, stop) => with_entry(db, k, now, |e| match typed(e, KeyType::List)? {
            Some(Value::List(l)) => Ok(match list_range(l.len(), *start, *stop) {
                Some((a, b)) => bulks(l.range(a..=b).cloned()),
                None => Reply::Array(Vec::new()),
            }),
            _ => Ok(Reply::Array(Vec::new())),
        }),
        Op::LLen(k) => with_entry(db, k, now, |e| match typed(e, KeyType::List)? {
            Some(Value::List(l)) => Ok(Reply::Int(l.len() as i64)),
            _ => Ok(Reply::Int(0)),
        }),
        Op::SMembers(k) => with_entry(db, k, now, |e| match typed(e, KeyType::Set)? {
            Some(Value::Set(s)) => Ok(bulks(s.iter().cloned())),
            _ => Ok(Reply::Array(Vec::new())),
        }),
        Op::SIsMember(k, m) => with_entry(db, k, now, |e| match typed(e, KeyType::Set)? {
            Some(Value::Set(s)) => Ok(Reply::Int(i64::from(s.contains(m.as_ref())))),
            _ => Ok(Reply::Int(0)),
        }),
        Op::SCard(k) => with_entry(db, k, now, |e| match typed(e, KeyType::Set)? {
            Some(Value::Set(s)) => Ok(Reply::Int(s.len() as i64)),
            _ => Ok(Reply::Int(0)),
        }),
        _ => return None,
    };
    Some(r)
}

/// SCAN: keys in hash order from `cursor`; the next cursor is the hash after the last visited
/// key (0 when the walk is done). A key present for the whole walk is returned at least once:
/// the cursor names a position in a fixed order, not an index that shifts as keys come and go.
fn scan(
    db: &DbMem,
    cursor: u64,
    pattern: Option<&[u8]>,
    count: usize,
    kind: Option<KeyType>,
    now: u64,
) -> (u64, Vec<Bytes>) {
    let count = count.max(1);
    let mut out = Vec::new();
    let mut visited = 0;
    let mut last: Option<u64> = None;
    for shard in db.shards.iter().skip(shard_of(cursor)).take(SHARDS) {
        let shard = shard.read();
        for (h, k, e) in shard.iter_from(cursor) {
            // Keys that share a hash share a cursor position: never stop between them.
            if visited >= count && last != Some(h) {
                return (h, out);
            }
            visited += 1;
            last = Some(h);
            if e.is_expired(now)
                || kind.is_some_and(|t| t != e.value.kind())
                || pattern.is_some_and(|p| !glob_match(p, k, false))
            {
                continue;
            }
            out.push(k.clone());
        }
    }
    (0, out)
}

/// Listing by prefix in byte order. Candidates come from the ordered index and are checked
/// against the shards after its lock is released (the writer takes the two in the other order).
fn list(
    db: &DbMem,
    prefix: &[u8],
    after: Option<&[u8]>,
    limit: usize,
    now: u64,
) -> (Vec<Bytes>, Option<Bytes>) {
    use std::ops::Bound;
    let limit = limit.max(1);
    let mut out = Vec::new();
    let mut from: Bound<Bytes> = match after {
        Some(a) if a >= prefix => Bound::Excluded(Bytes::copy_from_slice(a)),
        _ => Bound::Included(Bytes::copy_from_slice(prefix)),
    };
    loop {
        let batch: Vec<Bytes> = {
            let ordered = db.ordered.read();
            ordered
                .range((from.clone(), Bound::Unbounded))
                .take_while(|k| k.starts_with(prefix))
                .take(limit - out.len() + 17)
                .cloned()
                .collect()
        };
        let Some(tail) = batch.last().cloned() else { return (out, None) };
        for k in batch {
            if with_entry(db, &k, now, |e| e.is_some()) {
                if out.len() == limit {
                    let next = out.last().cloned();
                    return (out, next);
                }
                out.push(k);
            }
        }
        from = Bound::Excluded(tail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_parse_as_redis_does() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-1"), Some(-1));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [&b""[..], b"9223372036854775808", b"01", b"-0", b"+1", b" 1", b"1 ", b"1.0", b"-", b"abc"]
        {
            assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn lrange_indexes() {
        assert_eq!(list_range(5, 0, -1), Some((0, 4)));
        assert_eq!(list_range(5, -2, -1), Some((3, 4)));
        assert_eq!(list_range(5, -100, 100), Some((0, 4)));
        assert_eq!(list_range(5, 3, 1), None);
        assert_eq!(list_range(5, 5, 10), None);
        assert_eq!(list_range(0, 0, -1), None);
        assert_eq!(list_range(5, 0, -6), None);
    }

    #[test]
    fn expiry_conversions() {
        let now = 1_000_000;
        assert_eq!(Expire::Seconds(10).for_set(now).unwrap(), 1_010_000);
        assert_eq!(Expire::AtMillis(5).for_set(now).unwrap(), 5);
        assert!(matches!(Expire::Seconds(0).for_set(now), Err(KvError::InvalidExpireTime("set"))));
        assert!(matches!(Expire::Millis(-1).for_set(now), Err(KvError::InvalidExpireTime("set"))));
        assert!(Expire::Seconds(i64::MAX / 100).for_set(now).is_err());
        assert!(Expire::Millis(i64::MAX).at_ms(now, "pexpire").is_err());
        assert_eq!(Expire::Seconds(-5).at_ms(now, "expire").unwrap(), 995_000);
    }
}
