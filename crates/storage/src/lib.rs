//! yun's object store: an S3-compatible service (path-style, SigV4) over files plus redb metadata.
