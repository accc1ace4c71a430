use std::io;

/// What an object store operation can fail with; [`StorageError::status`] maps it to HTTP.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("no such bucket: {0}")]
    NoSuchBucket(String),
    #[error("no such key: {0}")]
    NoSuchKey(String),
    #[error("bucket already exists: {0}")]
    BucketExists(String),
    #[error("bucket is not empty: {0}")]
    BucketNotEmpty(String),
    #[error("invalid bucket name {0:?}: 3-63 characters of lowercase letters, digits, dots and hyphens")]
    InvalidBucketName(String),
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("at least one of the preconditions did not hold")]
    PreconditionFailed,
    #[error("not modified")]
    NotModified,
    #[error("no such upload: {0}")]
    NoSuchUpload(String),
    #[error("invalid part: {0}")]
    InvalidPart(String),
    #[error("the list of parts was not in ascending order")]
    InvalidPartOrder,
    #[error("a part other than the last is smaller than 5 MiB")]
    EntityTooSmall,
    #[error("the body does not match its digest: {0}")]
    BadDigest(String),
    #[error("the range is not satisfiable")]
    InvalidRange,
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The client's body stream failed (cut off, a bad chunk signature): nothing was stored.
    #[error("reading the request body: {0}")]
    Body(io::Error),
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
    #[error("metadata store: {0}")]
    Db(String),
}

impl StorageError {
    /// The HTTP status S3 answers this error with.
    pub fn status(&self) -> u16 {
        match self {
            StorageError::NoSuchBucket(_) | StorageError::NoSuchKey(_) | StorageError::NoSuchUpload(_) => 404,
            StorageError::BucketExists(_) | StorageError::BucketNotEmpty(_) => 409,
            StorageError::InvalidBucketName(_)
            | StorageError::InvalidKey(_)
            | StorageError::InvalidPart(_)
            | StorageError::InvalidPartOrder
            | StorageError::EntityTooSmall
            | StorageError::BadDigest(_)
            | StorageError::InvalidArgument(_)
            | StorageError::Body(_) => 400,
            StorageError::PreconditionFailed => 412,
            StorageError::NotModified => 304,
            StorageError::InvalidRange => 416,
            StorageError::Io(_) | StorageError::Db(_) => 500,
        }
    }
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StorageError {
            fn from(e: $t) -> Self { StorageError::Db(e.to_string()) }
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
    redb::SetDurabilityError,
    serde_json::Error
);
