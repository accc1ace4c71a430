//! Commands to engine operations, and the engine's replies and errors to Redis replies.

use std::borrow::Cow;

use yun_kv::{Expire, ExpireCondition, KvError, Op, SetCondition, SetOptions};
use yun_resp::{Command, KeyType, Reply, SetTtl, Side, TtlUnit};

/// How an engine reply is presented: the engine answers in RESP2's shapes, and a few commands
/// have richer RESP3 types (degraded back to the same bytes for RESP2 clients by the encoder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Plain,
    /// A flat array of field, value pairs as a map (HGETALL).
    Map,
    /// An array as a set (SMEMBERS).
    Set,
    /// A SCAN whose TYPE filter names a type the engine never stores (zset, stream): the walk
    /// runs for its cursor, and no key matches.
    ScanNothing,
}

/// The engine operation for `command`, and how to present its reply.
pub(crate) fn to_op(command: Command) -> (Op, Shape) {
    let op = match command {
        Command::Get { key } => Op::Get(key),
        Command::Set { key, value, ttl, condition, get } => {
            let condition = match condition {
                None => SetCondition::Always,
                Some(yun_resp::SetCondition::IfMissing) => SetCondition::IfAbsent,
                Some(yun_resp::SetCondition::IfExists) => SetCondition::IfExists,
            };
            let (expire, keep_ttl) = match ttl {
                SetTtl::Clear => (None, false),
                SetTtl::Keep => (None, true),
                SetTtl::After { millis } => (Some(Expire::Millis(millis)), false),
                SetTtl::At { unix_millis } => (Some(Expire::AtMillis(unix_millis)), false),
            };
            Op::Set { key, value, options: SetOptions { condition, expire, keep_ttl, get } }
        }
        Command::MGet { keys } => Op::MGet(keys),
        Command::MSet { pairs } => Op::MSet(pairs),
        Command::IncrBy { key, by } => Op::IncrBy(key, by),
        Command::Append { key, value } => Op::Append(key, value),
        Command::StrLen { key } => Op::StrLen(key),
        Command::Del { keys } => Op::Del(keys),
        Command::Exists { keys } => Op::Exists(keys),
        Command::Expire { key, millis, condition } => Op::Expire {
            key,
            expire: Expire::Millis(millis),
            condition: expire_condition(condition),
            // The parser already refused the times that overflow, so the engine never names
            // the command in an error.
            command: "pexpire",
        },
        Command::Ttl { key, unit: TtlUnit::Seconds } => Op::Ttl(key),
        Command::Ttl { key, unit: TtlUnit::Milliseconds } => Op::Pttl(key),
        Command::Persist { key } => Op::Persist(key),
        Command::Scan { cursor, pattern, count, kind } => {
            let count = count.map_or(10, |c| usize::try_from(c).unwrap_or(usize::MAX));
            let (kind, shape) = match kind {
                None => (None, Shape::Plain),
                Some(KeyType::String) => (Some(yun_kv::KeyType::String), Shape::Plain),
                Some(KeyType::Hash) => (Some(yun_kv::KeyType::Hash), Shape::Plain),
                Some(KeyType::List) => (Some(yun_kv::KeyType::List), Shape::Plain),
                Some(KeyType::Set) => (Some(yun_kv::KeyType::Set), Shape::Plain),
                Some(KeyType::ZSet | KeyType::Stream) => (None, Shape::ScanNothing),
            };
            return (Op::Scan { cursor, pattern, count, kind }, shape);
        }
        Command::Type { key } => Op::Type(key),
        Command::Rename { key, new_key } => Op::Rename(key, new_key),
        Command::DbSize => Op::DbSize,
        Command::FlushDb => Op::FlushDb,
        Command::HSet { key, pairs } => Op::HSet(key, pairs),
        Command::HGet { key, field } => Op::HGet(key, field),
        Command::HMGet { key, fields } => Op::HMGet(key, fields),
        Command::HGetAll { key } => return (Op::HGetAll(key), Shape::Map),
        Command::HDel { key, fields } => Op::HDel(key, fields),
        Command::HIncrBy { key, field, by } => Op::HIncrBy(key, field, by),
        Command::HLen { key } => Op::HLen(key),
        Command::Push { key, side: Side::Left, values } => Op::LPush(key, values),
        Command::Push { key, side: Side::Right, values } => Op::RPush(key, values),
        Command::Pop { key, side, count } => {
            let count = count.map(|c| usize::try_from(c).unwrap_or(usize::MAX));
            match side {
                Side::Left => Op::LPop(key, count),
                Side::Right => Op::RPop(key, count),
            }
        }
        Command::LRange { key, start, stop } => Op::LRange(key, start, stop),
        Command::LLen { key } => Op::LLen(key),
        Command::SAdd { key, members } => Op::SAdd(key, members),
        Command::SRem { key, members } => Op::SRem(key, members),
        Command::SMembers { key } => return (Op::SMembers(key), Shape::Set),
        Command::SIsMember { key, member } => Op::SIsMember(key, member),
        Command::SCard { key } => Op::SCard(key),
    };
    (op, Shape::Plain)
}

/// Redis 7's flags as the engine's one condition. The parser refuses NX with any other and GT
/// with LT; GT already implies XX (no expiry counts as infinitely late, so GT never beats it).
fn expire_condition(c: yun_resp::ExpireCondition) -> ExpireCondition {
    match c {
        c if c.nx => ExpireCondition::Nx,
        c if c.gt => ExpireCondition::Gt,
        c if c.lt && c.xx => ExpireCondition::XxLt,
        c if c.lt => ExpireCondition::Lt,
        c if c.xx => ExpireCondition::Xx,
        _ => ExpireCondition::Always,
    }
}

/// The engine's reply as the client sees it.
pub(crate) fn to_reply(reply: yun_kv::Reply, shape: Shape) -> Reply {
    match (shape, reply) {
        (Shape::Map, yun_kv::Reply::Array(flat)) => {
            let mut pairs = Vec::with_capacity(flat.len() / 2);
            let mut it = flat.into_iter();
            while let (Some(field), Some(value)) = (it.next(), it.next()) {
                pairs.push((plain(field), plain(value)));
            }
            Reply::Map(pairs)
        }
        (Shape::Set, yun_kv::Reply::Array(items)) => Reply::Set(items.into_iter().map(plain).collect()),
        (Shape::ScanNothing, yun_kv::Reply::Array(mut parts)) => {
            parts.truncate(1);
            let mut parts: Vec<Reply> = parts.into_iter().map(plain).collect();
            parts.push(Reply::Array(Vec::new()));
            Reply::Array(parts)
        }
        (_, reply) => plain(reply),
    }
}

fn plain(reply: yun_kv::Reply) -> Reply {
    match reply {
        yun_kv::Reply::Ok => Reply::ok(),
        yun_kv::Reply::Status(s) => Reply::Simple(Cow::Borrowed(s)),
        yun_kv::Reply::Nil => Reply::Null,
        yun_kv::Reply::NilArray => Reply::NullArray,
        yun_kv::Reply::Int(n) => Reply::Integer(n),
        yun_kv::Reply::Bulk(b) => Reply::Bulk(b),
        yun_kv::Reply::Array(items) => Reply::Array(items.into_iter().map(plain).collect()),
    }
}

/// The error line Redis would send, with the limits spelled out where Redis' own text would
/// leave a client guessing.
pub(crate) fn error_reply(e: &KvError) -> Reply {
    match e {
        KvError::WrongType => Reply::wrong_type(),
        KvError::NotInteger => Reply::not_integer(),
        KvError::HashNotInteger => Reply::hash_not_integer(),
        KvError::Overflow => Reply::overflow(),
        KvError::NoSuchKey => Reply::no_such_key(),
        KvError::NoSuchStore(_) => no_such_store(),
        KvError::ValueTooLarge { len, max } => Reply::err(format!(
            "string exceeds maximum allowed size (the value would be {len} bytes, the store's limit is {max})"
        )),
        KvError::KeyTooLarge { len, max } => {
            Reply::err(format!("key exceeds maximum allowed size (it is {len} bytes, the limit is {max})"))
        }
        KvError::CommitFailed(_) | KvError::Io(_) | KvError::Db(_) => {
            tracing::warn!(error = %e, "redis: the KV engine failed");
            Reply::Error(Cow::Owned(e.redis_message()))
        }
        other => Reply::Error(Cow::Owned(other.redis_message())),
    }
}

pub(crate) fn no_such_store() -> Reply {
    Reply::Error(Cow::Borrowed("ERR no such store"))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn cond(s: &str) -> ExpireCondition {
        expire_condition(yun_resp::ExpireCondition {
            nx: s.contains("nx"),
            xx: s.contains("xx"),
            gt: s.contains("gt"),
            lt: s.contains("lt"),
        })
    }

    #[test]
    fn expire_flags_fold_into_one_condition() {
        assert_eq!(cond(""), ExpireCondition::Always);
        assert_eq!(cond("nx"), ExpireCondition::Nx);
        assert_eq!(cond("xx"), ExpireCondition::Xx);
        assert_eq!(cond("gt"), ExpireCondition::Gt);
        assert_eq!(cond("xx gt"), ExpireCondition::Gt);
        assert_eq!(cond("lt"), ExpireCondition::Lt);
        assert_eq!(cond("xx lt"), ExpireCondition::XxLt);
    }

    #[test]
    fn set_options_carry_over() {
        let (op, shape) = to_op(Command::Set {
            key: b("k"),
            value: b("v"),
            ttl: SetTtl::At { unix_millis: 5 },
            condition: Some(yun_resp::SetCondition::IfMissing),
            get: true,
        });
        assert_eq!(shape, Shape::Plain);
        assert_eq!(
            op,
            Op::Set {
                key: b("k"),
                value: b("v"),
                options: SetOptions {
                    condition: SetCondition::IfAbsent,
                    expire: Some(Expire::AtMillis(5)),
                    keep_ttl: false,
                    get: true
                }
            }
        );
        let (op, _) = to_op(Command::Set {
            key: b("k"),
            value: b("v"),
            ttl: SetTtl::Keep,
            condition: None,
            get: false,
        });
        assert!(matches!(op, Op::Set { options: SetOptions { keep_ttl: true, expire: None, .. }, .. }));
    }

    #[test]
    fn resp3_shapes() {
        let flat = yun_kv::Reply::Array(vec![yun_kv::Reply::Bulk(b("f")), yun_kv::Reply::Bulk(b("v"))]);
        assert_eq!(to_reply(flat, Shape::Map), Reply::Map(vec![(Reply::bulk("f"), Reply::bulk("v"))]));
        let members = yun_kv::Reply::Array(vec![yun_kv::Reply::Bulk(b("m"))]);
        assert_eq!(to_reply(members, Shape::Set), Reply::Set(vec![Reply::bulk("m")]));
        let scan = yun_kv::Reply::Array(vec![
            yun_kv::Reply::Bulk(b("42")),
            yun_kv::Reply::Array(vec![yun_kv::Reply::Bulk(b("k"))]),
        ]);
        assert_eq!(
            to_reply(scan, Shape::ScanNothing),
            Reply::Array(vec![Reply::bulk("42"), Reply::Array(vec![])])
        );
        assert_eq!(to_reply(yun_kv::Reply::Status("hash"), Shape::Plain), Reply::simple("hash"));
        assert_eq!(to_reply(yun_kv::Reply::NilArray, Shape::Plain), Reply::NullArray);
    }

    #[test]
    fn errors_read_as_redis_writes_them() {
        let text = |e: KvError| match error_reply(&e) {
            Reply::Error(s) => s.into_owned(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            text(KvError::WrongType),
            "WRONGTYPE Operation against a key holding the wrong kind of value"
        );
        assert_eq!(text(KvError::NotInteger), "ERR value is not an integer or out of range");
        assert_eq!(text(KvError::HashNotInteger), "ERR hash value is not an integer");
        assert_eq!(text(KvError::Overflow), "ERR increment or decrement would overflow");
        assert_eq!(text(KvError::DecrementOverflow), "ERR decrement would overflow");
        assert_eq!(text(KvError::NoSuchKey), "ERR no such key");
        assert_eq!(text(KvError::NoSuchStore("x".into())), "ERR no such store");
        assert_eq!(text(KvError::InvalidExpireTime("set")), "ERR invalid expire time in 'set' command");
        assert_eq!(
            text(KvError::ValueTooLarge { len: 10, max: 5 }),
            "ERR string exceeds maximum allowed size (the value would be 10 bytes, the store's limit is 5)"
        );
        assert!(text(KvError::Closed).starts_with("ERR "));
    }
}
