//! Values in memory, their on-disk encoding, and the sharded maps that hold them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::hash::BuildHasher;

use bytes::Bytes;
use parking_lot::RwLock;

use crate::KvError;

/// The databases of a store, as Redis's `SELECT 0..15`.
pub const DATABASES: u8 = 16;
pub(crate) const SHARDS: usize = 16;
const SHARD_SHIFT: u32 = 60;

const TAG_STRING: u8 = 0;
const TAG_HASH: u8 = 1;
const TAG_LIST: u8 = 2;
const TAG_SET: u8 = 3;
pub(crate) const ENTRY_HEADER: usize = 9;

/// The type of a key's value, as `TYPE` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    String,
    Hash,
    List,
    Set,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::String => "string",
            KeyType::Hash => "hash",
            KeyType::List => "list",
            KeyType::Set => "set",
        }
    }

    /// Parses `TYPE`'s names (as `SCAN ... TYPE` takes them), case-insensitively.
    pub fn parse(name: &[u8]) -> Option<KeyType> {
        match name.to_ascii_lowercase().as_slice() {
            b"string" => Some(KeyType::String),
            b"hash" => Some(KeyType::Hash),
            b"list" => Some(KeyType::List),
            b"set" => Some(KeyType::Set),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Str(Bytes),
    Hash(BTreeMap<Bytes, Bytes>),
    List(VecDeque<Bytes>),
    Set(BTreeSet<Bytes>),
}

impl Value {
    pub(crate) fn kind(&self) -> KeyType {
        match self {
            Value::Str(_) => KeyType::String,
            Value::Hash(_) => KeyType::Hash,
            Value::List(_) => KeyType::List,
            Value::Set(_) => KeyType::Set,
        }
    }

    /// The bytes its encoding takes after the header: what the value limit applies to.
    pub(crate) fn payload_len(&self) -> usize {
        match self {
            Value::Str(b) => b.len(),
            Value::Hash(h) => h.iter().map(|(f, v)| 8 + f.len() + v.len()).sum(),
            Value::List(l) => l.iter().map(|v| 4 + v.len()).sum(),
            Value::Set(s) => s.iter().map(|v| 4 + v.len()).sum(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) value: Value,
    /// Unix ms after which the key is gone; 0 = no expiry.
    pub(crate) expires_at: u64,
    /// What the key counts in its store's byte total (key plus encoded entry) as of the last
    /// flush; 0 until its first. The writer keeps it, so the total needs no disk reads.
    pub(crate) size: u32,
}

impl Entry {
    pub(crate) fn new(value: Value, expires_at: u64) -> Entry {
        Entry { value, expires_at, size: 0 }
    }

    pub(crate) fn is_expired(&self, now: u64) -> bool {
        self.expires_at != 0 && self.expires_at <= now
    }

    /// `[tag u8][expires_at u64 LE][payload]`; a string's payload is its bytes, a collection's
    /// its elements each as `[len u32 LE][bytes]` (a hash: field then value).
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        let tag = match &self.value {
            Value::Str(_) => TAG_STRING,
            Value::Hash(_) => TAG_HASH,
            Value::List(_) => TAG_LIST,
            Value::Set(_) => TAG_SET,
        };
        out.reserve(ENTRY_HEADER + self.value.payload_len());
        out.push(tag);
        out.extend_from_slice(&self.expires_at.to_le_bytes());
        let put = |out: &mut Vec<u8>, b: &[u8]| {
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(b);
        };
        match &self.value {
            Value::Str(b) => out.extend_from_slice(b),
            Value::Hash(h) => h.iter().for_each(|(f, v)| {
                put(out, f);
                put(out, v);
            }),
            Value::List(l) => l.iter().for_each(|v| put(out, v)),
            Value::Set(s) => s.iter().for_each(|v| put(out, v)),
        }
    }

    pub(crate) fn decode(b: &[u8]) -> Result<Entry, KvError> {
        let bad = || KvError::Db("corrupt value record".into());
        if b.len() < ENTRY_HEADER {
            return Err(bad());
        }
        let expires_at = u64::from_le_bytes(b[1..9].try_into().map_err(|_| bad())?);
        let payload = &b[ENTRY_HEADER..];
        let value = match b[0] {
            TAG_STRING => Value::Str(Bytes::copy_from_slice(payload)),
            TAG_HASH => {
                let items = elements(payload).ok_or_else(bad)?;
                if items.len() % 2 != 0 {
                    return Err(bad());
                }
                let mut it = items.into_iter();
                let mut h = BTreeMap::new();
                while let (Some(f), Some(v)) = (it.next(), it.next()) {
                    h.insert(f, v);
                }
                Value::Hash(h)
            }
            TAG_LIST => Value::List(elements(payload).ok_or_else(bad)?.into()),
            TAG_SET => Value::Set(elements(payload).ok_or_else(bad)?.into_iter().collect()),
            _ => return Err(bad()),
        };
        Ok(Entry { value, expires_at, size: 0 })
    }
}

/// `[len u32 LE][bytes]` elements to the end; `None` if the last one is cut short.
fn elements(mut rest: &[u8]) -> Option<Vec<Bytes>> {
    let mut out = Vec::new();
    while !rest.is_empty() {
        let n = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        out.push(Bytes::copy_from_slice(rest.get(4..4 + n)?));
        rest = &rest[4 + n..];
    }
    Some(out)
}

/// The hash that places a key: its top bits pick the shard, and SCAN walks keys in its order,
/// so a cursor is just the next hash to visit. Fixed seed: cursors stay valid across restarts.
pub(crate) fn key_hash(key: &[u8]) -> u64 {
    foldhash::fast::FixedState::with_seed(0x79_75_6e_6b_76).hash_one(key)
}

pub(crate) fn shard_of(hash: u64) -> usize {
    (hash >> SHARD_SHIFT) as usize
}

/// The keys that share one hash (almost always one).
#[derive(Debug)]
enum Slot {
    One(Bytes, Entry),
    Many(Vec<(Bytes, Entry)>),
}

/// One shard of a database: keys in hash order.
#[derive(Debug, Default)]
pub(crate) struct Shard {
    map: BTreeMap<u64, Slot>,
    len: usize,
}

impl Shard {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn get(&self, h: u64, key: &[u8]) -> Option<&Entry> {
        match self.map.get(&h)? {
            Slot::One(k, e) => (k.as_ref() == key).then_some(e),
            Slot::Many(v) => v.iter().find(|(k, _)| k.as_ref() == key).map(|(_, e)| e),
        }
    }

    pub(crate) fn get_mut(&mut self, h: u64, key: &[u8]) -> Option<&mut Entry> {
        match self.map.get_mut(&h)? {
            Slot::One(k, e) => (k.as_ref() == key).then_some(e),
            Slot::Many(v) => v.iter_mut().find(|(k, _)| k.as_ref() == key).map(|(_, e)| e),
        }
    }

    /// The previous entry, if the key was present.
    pub(crate) fn insert(&mut self, h: u64, key: Bytes, entry: Entry) -> Option<Entry> {
        use std::collections::btree_map::Entry as M;
        match self.map.entry(h) {
            M::Vacant(v) => {
                v.insert(Slot::One(key, entry));
                self.len += 1;
                None
            }
            M::Occupied(mut o) => {
                let slot = o.get_mut();
                if let Slot::One(k, e) = slot {
                    if *k == key {
                        return Some(std::mem::replace(e, entry));
                    }
                    let Slot::One(k, e) = std::mem::replace(slot, Slot::Many(Vec::new())) else {
                        unreachable!("matched One above")
                    };
                    *slot = Slot::Many(vec![(k, e)]);
                }
                let Slot::Many(v) = slot else { unreachable!("made Many above") };
                if let Some((_, e)) = v.iter_mut().find(|(k, _)| *k == key) {
                    return Some(std::mem::replace(e, entry));
                }
                v.push((key, entry));
                self.len += 1;
                None
            }
        }
    }

    pub(crate) fn remove(&mut self, h: u64, key: &[u8]) -> Option<Entry> {
        use std::collections::btree_map::Entry as M;
        let M::Occupied(mut o) = self.map.entry(h) else { return None };
        let removed = match o.get_mut() {
            Slot::One(k, _) if k.as_ref() == key => match o.remove() {
                Slot::One(_, e) => Some(e),
                Slot::Many(_) => unreachable!("matched One above"),
            },
            Slot::One(..) => None,
            Slot::Many(v) => {
                let i = v.iter().position(|(k, _)| k.as_ref() == key)?;
                let (_, e) = v.swap_remove(i);
                if v.is_empty() {
                    o.remove();
                }
                Some(e)
            }
        };
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// Keys whose hash is at least `from`, in hash order, with their hash.
    pub(crate) fn iter_from(&self, from: u64) -> impl Iterator<Item = (u64, &Bytes, &Entry)> {
        self.map.range(from..).flat_map(|(h, slot)| {
            let items: Box<dyn Iterator<Item = (&Bytes, &Entry)>> = match slot {
                Slot::One(k, e) => Box::new(std::iter::once((k, e))),
                Slot::Many(v) => Box::new(v.iter().map(|(k, e)| (k, e))),
            };
            items.map(move |(k, e)| (*h, k, e))
        })
    }

    pub(crate) fn for_each(&self, mut f: impl FnMut(&Bytes, &Entry)) {
        for slot in self.map.values() {
            match slot {
                Slot::One(k, e) => f(k, e),
                Slot::Many(v) => v.iter().for_each(|(k, e)| f(k, e)),
            }
        }
    }

    pub(crate) fn clear(&mut self) {
        self.map.clear();
        self.len = 0;
    }
}

/// One database of a store in memory: the shards, and the keys in byte order for listing
/// by prefix (changed only when a key appears or goes).
#[derive(Debug)]
pub(crate) struct DbMem {
    pub(crate) shards: Box<[RwLock<Shard>]>,
    pub(crate) ordered: RwLock<BTreeSet<Bytes>>,
}

impl Default for DbMem {
    fn default() -> DbMem {
        DbMem {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            ordered: RwLock::new(BTreeSet::new()),
        }
    }
}

impl DbMem {
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(v: Value) -> Entry {
        Entry::new(v, 1234)
    }

    #[test]
    fn encoding_round_trips() {
        let b = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        let values = [
            Value::Str(b("hello")),
            Value::Str(Bytes::new()),
            Value::Hash([(b("f"), b("v")), (b(""), b("empty field"))].into_iter().collect()),
            Value::List([b("a"), b(""), b("c")].into_iter().collect()),
            Value::Set([b("x"), b("y")].into_iter().collect()),
        ];
        let mut buf = Vec::new();
        for v in values {
            let entry = e(v);
            entry.encode(&mut buf);
            assert_eq!(buf.len(), ENTRY_HEADER + entry.value.payload_len());
            assert_eq!(Entry::decode(&buf).unwrap(), entry);
        }
    }

    #[test]
    fn corrupt_records_are_errors() {
        let mut buf = Vec::new();
        e(Value::List([Bytes::from_static(b"abc")].into_iter().collect())).encode(&mut buf);
        buf.pop();
        assert!(Entry::decode(&buf).is_err());
        assert!(Entry::decode(&[9; 12]).is_err());
        assert!(Entry::decode(&[0; 3]).is_err());
    }

    #[test]
    fn shard_handles_colliding_hashes() {
        let mut s = Shard::default();
        let v = |x: &str| Entry::new(Value::Str(Bytes::copy_from_slice(x.as_bytes())), 0);
        assert!(s.insert(7, Bytes::from_static(b"a"), v("1")).is_none());
        assert!(s.insert(7, Bytes::from_static(b"b"), v("2")).is_none());
        assert_eq!(s.insert(7, Bytes::from_static(b"a"), v("3")), Some(v("1")));
        assert_eq!(s.len(), 2);
        assert_eq!(s.get(7, b"b"), Some(&v("2")));
        assert_eq!(s.iter_from(7).count(), 2);
        assert_eq!(s.iter_from(8).count(), 0);
        assert_eq!(s.remove(7, b"a"), Some(v("3")));
        assert_eq!(s.remove(7, b"a"), None);
        assert_eq!(s.remove(7, b"b"), Some(v("2")));
        assert_eq!(s.len(), 0);
        assert!(s.get(7, b"b").is_none());
    }
}
