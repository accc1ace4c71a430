use std::io;

/// What a KV operation can fail with.
///
/// The data errors carry Redis's exact wording: [`KvError::redis_message`] is the error line a
/// Redis server would send (`WRONGTYPE ...`, `ERR ...`), [`KvError::http_status`] the status an
/// HTTP API answers with.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("invalid store name {0:?}: 1-63 characters of lowercase letters, digits and hyphens")]
    InvalidStoreName(String),
    #[error("no such store: {0}")]
    NoSuchStore(String),
    #[error("store already exists: {0}")]
    StoreExists(String),
    #[error("invalid database index {0}: a store has databases 0 to 15")]
    InvalidDb(u32),
    #[error("Operation against a key holding the wrong kind of value")]
    WrongType,
    #[error("value is not an integer or out of range")]
    NotInteger,
    #[error("hash value is not an integer")]
    HashNotInteger,
    #[error("increment or decrement would overflow")]
    Overflow,
    #[error("decrement would overflow")]
    DecrementOverflow,
    #[error("invalid expire time in '{0}' command")]
    InvalidExpireTime(&'static str),
    #[error("no such key")]
    NoSuchKey,
    #[error("key of {len} bytes exceeds the limit of {max}")]
    KeyTooLarge { len: usize, max: usize },
    #[error("value of {len} bytes exceeds the limit of {max}")]
    ValueTooLarge { len: usize, max: usize },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("the KV engine is closed")]
    Closed,
    /// The group this operation was committed with failed to commit: nothing of it is durable and
    /// the in-memory copy was reloaded from the last commit.
    #[error("commit failed: {0}")]
    CommitFailed(String),
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
    #[error("database: {0}")]
    Db(String),
}

impl KvError {
    /// The error line a Redis server answers with (without `-` and CRLF).
    pub fn redis_message(&self) -> String {
        match self {
            KvError::WrongType => format!("WRONGTYPE {self}"),
            KvError::KeyTooLarge { .. } | KvError::ValueTooLarge { .. } => {
                "ERR string exceeds maximum allowed size".to_string()
            }
            KvError::InvalidDb(_) => "ERR DB index is out of range".to_string(),
            _ => format!("ERR {self}"),
        }
    }

    /// The HTTP status an API answers this error with.
    pub fn http_status(&self) -> u16 {
        match self {
            KvError::NoSuchStore(_) | KvError::NoSuchKey => 404,
            KvError::StoreExists(_) | KvError::WrongType => 409,
            KvError::KeyTooLarge { .. } | KvError::ValueTooLarge { .. } => 413,
            KvError::InvalidStoreName(_)
            | KvError::InvalidDb(_)
            | KvError::NotInteger
            | KvError::HashNotInteger
            | KvError::Overflow
            | KvError::DecrementOverflow
            | KvError::InvalidExpireTime(_)
            | KvError::InvalidArgument(_) => 400,
            KvError::Closed => 503,
            KvError::CommitFailed(_) | KvError::Io(_) | KvError::Db(_) => 500,
        }
    }

    /// A copy for fanning one failure out to every operation of a group.
    pub(crate) fn duplicate(&self) -> KvError {
        match self {
            KvError::Io(e) => KvError::Io(io::Error::new(e.kind(), e.to_string())),
            KvError::CommitFailed(s) => KvError::CommitFailed(s.clone()),
            KvError::Db(s) => KvError::CommitFailed(s.clone()),
            KvError::Closed => KvError::Closed,
            other => KvError::CommitFailed(other.to_string()),
        }
    }
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for KvError {
            fn from(e: $t) -> Self { KvError::Db(e.to_string()) }
        }
    )*};
}
db_err!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);
