//! yun's object store: an S3-compatible service over local files.
//!
//! The engine (`ObjectStore`) keeps bucket and object metadata, multipart uploads, access
//! keys and an outbox of storage events in one redb file, and bodies as files named by
//! generated ids under `blobs/`; `serve` speaks the S3 REST API (path-style, SigV4 in headers
//! and presigned URLs, aws-chunked bodies and the checksums current SDKs send) through s3s.
//!
//! Bodies go through [`BlobBackend`]; [`FsBlobs`] is the embedded default, and an external
//! S3/MinIO/Garage fits the trait (through `object_store`) without touching the engine.
//!
//! It is not: versioned, a policy/ACL engine (a key is scoped to buckets and read-only or
//! not), or the delivery of storage events to functions (the caller drains `events`).

mod blobs;
mod checksum;
mod engine;
mod error;
mod keys;
mod s3;
mod server;

pub use blobs::{BlobBackend, BlobStream, BlobWriter, FsBlobs};
pub use checksum::{ChecksumAlgorithm, Checksums};
pub use engine::{
    BucketInfo, ChecksumType, CompletePart, Conditions, EventKind, Listing, MAX_PARTS, MAX_PUT_SIZE,
    MIN_PART_SIZE, ObjectEvent, ObjectInfo, ObjectMeta, ObjectStore, PartInfo, PutMeta, UploadInfo,
    validate_bucket_name, validate_key,
};
pub use error::StorageError;
pub use keys::{AccessKey, KeyScope, Keys};
pub use server::{DRAIN_TIMEOUT, HEADER_TIMEOUT, S3Server, serve};
