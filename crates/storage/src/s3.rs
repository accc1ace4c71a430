//! The S3 operations, as s3s's `S3` trait, over the engine; and the auth and access checks
//! s3s calls before them.
//!
//! s3s verifies SigV4 (headers, presigned queries, aws-chunked chunk and trailer signatures)
//! and `x-amz-content-sha256`; it leaves `Content-MD5` and the `x-amz-checksum-*` values (in
//! headers or aws-chunked trailers) to us, so every body is hashed while it is written and
//! checked before it is committed.

use std::time::{Duration, UNIX_EPOCH};

use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{Credentials, S3Auth, SecretKey};
use s3s::dto::*;
use s3s::path::S3Path;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, TrailingHeaders, s3_error};

use crate::checksum::{ChecksumAlgorithm as Alg, Checksums};
use crate::engine::{self, CompletePart, Conditions, ObjectInfo, ObjectMeta, ObjectStore, PutMeta};
use crate::{ChecksumType as Ct, Keys, StorageError};

pub(crate) struct YunS3 {
    pub store: ObjectStore,
    pub keys: Keys,
    pub region: String,
}

impl From<StorageError> for S3Error {
    fn from(e: StorageError) -> S3Error {
        let code = match &e {
            StorageError::NoSuchBucket(_) => S3ErrorCode::NoSuchBucket,
            StorageError::NoSuchKey(_) => S3ErrorCode::NoSuchKey,
            StorageError::BucketExists(_) => S3ErrorCode::BucketAlreadyOwnedByYou,
            StorageError::BucketNotEmpty(_) => S3ErrorCode::BucketNotEmpty,
            StorageError::InvalidBucketName(_) => S3ErrorCode::InvalidBucketName,
            StorageError::InvalidKey(_) => S3ErrorCode::KeyTooLongError,
            StorageError::PreconditionFailed => S3ErrorCode::PreconditionFailed,
            StorageError::NotModified => S3ErrorCode::NotModified,
            StorageError::NoSuchUpload(_) => S3ErrorCode::NoSuchUpload,
            StorageError::InvalidPart(_) => S3ErrorCode::InvalidPart,
            StorageError::InvalidPartOrder => S3ErrorCode::InvalidPartOrder,
            StorageError::EntityTooSmall => S3ErrorCode::EntityTooSmall,
            StorageError::BadDigest(_) => S3ErrorCode::BadDigest,
            StorageError::InvalidRange => S3ErrorCode::InvalidRange,
            StorageError::InvalidArgument(_) => S3ErrorCode::InvalidArgument,
            StorageError::Body(_) => S3ErrorCode::IncompleteBody,
            StorageError::Io(_) | StorageError::Db(_) => {
                tracing::error!("object store: {e}");
                return S3Error::with_message(S3ErrorCode::InternalError, "internal error");
            }
        };
        S3Error::with_message(code, e.to_string())
    }
}

fn ts(ms: u64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_millis(ms))
}

fn ms(t: &Timestamp) -> u64 {
    let t: time::OffsetDateTime = t.clone().into();
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

fn cond_str(c: &ETagCondition) -> String {
    match c {
        ETagCondition::Any => "*".to_owned(),
        ETagCondition::ETag(e) => e.value().to_owned(),
    }
}

fn etag(s: &str) -> ETag {
    ETag::Strong(s.to_owned())
}

fn alg_of(a: &ChecksumAlgorithm) -> S3Result<Alg> {
    Alg::parse(a.as_str())
        .ok_or_else(|| s3_error!(InvalidArgument, "unknown checksum algorithm {}", a.as_str()))
}

fn alg_dto(a: Alg) -> ChecksumAlgorithm {
    ChecksumAlgorithm::from(a.as_str().to_owned())
}

fn type_dto(t: Ct) -> ChecksumType {
    ChecksumType::from(t.as_str().to_owned())
}

macro_rules! checksums_in {
    ($i:expr) => {
        Checksums {
            crc32: $i.checksum_crc32.clone(),
            crc32c: $i.checksum_crc32c.clone(),
            crc64nvme: $i.checksum_crc64nvme.clone(),
            sha1: $i.checksum_sha1.clone(),
            sha256: $i.checksum_sha256.clone(),
        }
    };
}

macro_rules! checksums_out {
    ($o:expr, $c:expr) => {{
        let c: &Checksums = $c;
        $o.checksum_crc32 = c.crc32.clone();
        $o.checksum_crc32c = c.crc32c.clone();
        $o.checksum_crc64nvme = c.crc64nvme.clone();
        $o.checksum_sha1 = c.sha1.clone();
        $o.checksum_sha256 = c.sha256.clone();
    }};
}

/// The algorithms an aws-chunked body announces in `x-amz-trailer`.
fn trailer_algorithms(headers: &http::HeaderMap) -> Vec<Alg> {
    let Some(v) = headers.get("x-amz-trailer").and_then(|v| v.to_str().ok()) else { return vec![] };
    v.split(',')
        .filter_map(|h| Alg::ALL.into_iter().find(|a| a.header().eq_ignore_ascii_case(h.trim())))
        .collect()
}

/// Once the body is consumed, the trailer's checksums join those of the headers.
fn merge_trailers(declared: &mut Checksums, trailers: Option<&TrailingHeaders>) -> S3Result<()> {
    let Some(t) = trailers else { return Ok(()) };
    let found = t.read(|h| {
        Alg::ALL
            .into_iter()
            .filter_map(|a| h.get(a.header()).map(|v| (a, v.to_str().map(str::to_owned))))
            .collect::<Vec<_>>()
    });
    for (alg, v) in found.unwrap_or_default() {
        let v = v.map_err(|_| s3_error!(InvalidArgument, "a checksum trailer is not text"))?;
        declared.set(alg, Some(v));
    }
    Ok(())
}

fn object_meta(
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    cache_control: Option<String>,
    expires: Option<&Timestamp>,
    metadata: Option<Metadata>,
) -> ObjectMeta {
    let expires = expires.and_then(|t| {
        let mut v = Vec::new();
        t.format(TimestampFormat::HttpDate, &mut v).ok()?;
        String::from_utf8(v).ok()
    });
    ObjectMeta {
        content_type,
        content_encoding,
        content_disposition,
        content_language,
        cache_control,
        expires,
        user: metadata.unwrap_or_default().into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect(),
    }
}

fn expires_of(m: &ObjectMeta) -> Option<Timestamp> {
    m.expires.as_deref().and_then(|e| Timestamp::parse(TimestampFormat::HttpDate, e).ok())
}

fn user_meta(m: &ObjectMeta) -> Option<Metadata> {
    (!m.user.is_empty()).then(|| m.user.clone().into_iter().collect())
}

fn copy_source(src: &CopySource) -> S3Result<(String, String)> {
    match src {
        CopySource::Bucket { bucket, key, version_id: None } => Ok((bucket.to_string(), key.to_string())),
        CopySource::Bucket { .. } => Err(s3_error!(NotImplemented, "versions are not supported")),
        _ => Err(s3_error!(NotImplemented, "access points are not supported")),
    }
}

/// `bytes=first-last` of UploadPartCopy, as a half-open range.
fn copy_range(r: Option<&str>) -> S3Result<Option<std::ops::Range<u64>>> {
    let Some(r) = r else { return Ok(None) };
    let bad = || s3_error!(InvalidArgument, "x-amz-copy-source-range must be bytes=first-last");
    let (a, b) = r.strip_prefix("bytes=").and_then(|x| x.split_once('-')).ok_or_else(bad)?;
    let (a, b): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if b < a {
        return Err(bad());
    }
    Ok(Some(a..b + 1))
}

/// S3's `encoding-type=url`: keys percent-encoded except the unreserved characters and `/`.
const KEY_ENCODE: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');

fn encoder(encoding: Option<&EncodingType>) -> S3Result<impl Fn(&str) -> String> {
    let url = match encoding {
        None => false,
        Some(e) if e.as_str() == EncodingType::URL => true,
        Some(e) => return Err(s3_error!(InvalidArgument, "unknown encoding type {}", e.as_str())),
    };
    Ok(
        move |s: &str| {
            if url { percent_encoding::utf8_percent_encode(s, KEY_ENCODE).to_string() } else { s.to_owned() }
        },
    )
}

fn object_entry(o: &ObjectInfo, enc: &impl Fn(&str) -> String) -> Object {
    Object {
        key: Some(enc(&o.key)),
        size: Some(o.size as i64),
        e_tag: Some(etag(&o.etag)),
        last_modified: Some(ts(o.last_modified_ms)),
        storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
        checksum_algorithm: {
            let algs: Vec<_> = o.checksums.algorithms().map(alg_dto).collect();
            (!algs.is_empty()).then_some(algs)
        },
        checksum_type: o.checksum_type.map(type_dto),
        ..Default::default()
    }
}

fn max_keys(m: Option<i32>) -> S3Result<usize> {
    match m {
        None => Ok(1000),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must not be negative")),
        Some(n) => Ok((n as usize).min(1000)),
    }
}

fn wants_checksum(mode: Option<&ChecksumMode>) -> bool {
    mode.is_some_and(|m| m.as_str().eq_ignore_ascii_case(ChecksumMode::ENABLED))
}

impl YunS3 {
    /// A copy reads its source: the key must be allowed to read that bucket too.
    fn check_source(&self, creds: Option<&Credentials>, bucket: &str) -> S3Result<()> {
        let key = creds.and_then(|c| self.keys.get(&c.access_key).ok().flatten());
        match key {
            Some(k) if k.scope.allows_bucket(bucket) => Ok(()),
            _ => Err(s3_error!(AccessDenied, "the key may not read the copy source's bucket")),
        }
    }

    /// The body of a PUT or UploadPart: hashed with what the headers, `x-amz-sdk-checksum-algorithm`
    /// and `x-amz-trailer` ask for, then checked against the values (trailers included).
    async fn receive(
        &self,
        bucket: &str,
        body: Option<StreamingBlob>,
        headers: &http::HeaderMap,
        mut algorithms: Vec<Alg>,
    ) -> S3Result<crate::blobs::Staged> {
        algorithms.extend(trailer_algorithms(headers));
        let staged = match body {
            Some(b) => self.store.stage(bucket, b, algorithms, engine::MAX_PUT_SIZE).await?,
            None => {
                let empty = futures::stream::empty::<Result<bytes::Bytes, std::io::Error>>();
                self.store.stage(bucket, empty, algorithms, 0).await?
            }
        };
        Ok(staged)
    }
}

#[async_trait::async_trait]
impl S3 for YunS3 {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let scope = req
            .credentials
            .as_ref()
            .and_then(|c| self.keys.get(&c.access_key).ok().flatten())
            .map(|k| k.scope);
        let buckets = self
            .store
            .buckets()?
            .into_iter()
            .filter(|b| scope.as_ref().is_some_and(|s| s.allows_bucket(&b.name)))
            .filter(|b| req.input.prefix.as_deref().is_none_or(|p| b.name.starts_with(p)))
            .map(|b| Bucket {
                name: Some(b.name),
                creation_date: Some(ts(b.created_ms)),
                bucket_region: Some(self.region.clone()),
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(Owner { display_name: Some("yun".into()), id: Some("yun".into()) }),
            ..Default::default()
        }))
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.store.create_bucket(&req.input.bucket).await?;
        Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{}", req.input.bucket)) }))
    }

    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        self.store.bucket(&req.input.bucket)?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.region.clone()),
            ..Default::default()
        }))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.store.delete_bucket(&req.input.bucket).await?;
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.store.bucket(&req.input.bucket)?;
        // us-east-1 is the empty constraint, as in S3.
        let location =
            (self.region != "us-east-1").then(|| BucketLocationConstraint::from(self.region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput { location_constraint: location }))
    }

    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        let S3Request { input, headers, trailing_headers, .. } = req;
        engine::validate_key(&input.key)?;
        let if_none_match = input.if_none_match.as_ref().map(cond_str);
        // Refuse before reading a body that could only be thrown away.
        if if_none_match.as_deref() == Some("*") && self.store.head(&input.bucket, &input.key).is_ok() {
            return Err(StorageError::PreconditionFailed.into());
        }
        let mut declared = checksums_in!(input);
        let algorithm = input.checksum_algorithm.as_ref().map(alg_of).transpose()?;
        let mut algorithms: Vec<Alg> = declared.algorithms().collect();
        algorithms.extend(algorithm);
        let staged = self.receive(&input.bucket, input.body, &headers, algorithms).await?;
        merge_trailers(&mut declared, trailing_headers.as_ref())?;
        let meta = PutMeta {
            meta: object_meta(
                input.content_type,
                input.content_encoding,
                input.content_disposition,
                input.content_language,
                input.cache_control,
                input.expires.as_ref(),
                input.metadata,
            ),
            checksums: declared,
            checksum_algorithm: algorithm,
            content_md5: input.content_md5,
            if_match: input.if_match.as_ref().map(cond_str),
            if_none_match,
        };
        let info = self.store.finish_put(&input.bucket, &input.key, staged, meta).await?;
        let mut out = PutObjectOutput {
            e_tag: Some(etag(&info.etag)),
            size: Some(info.size as i64),
            ..Default::default()
        };
        checksums_out!(out, &info.checksums);
        out.checksum_type = info.checksum_type.map(type_dto);
        Ok(S3Response::new(out))
    }

    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        let i = &req.input;
        let conditions = Conditions {
            if_match: i.if_match.as_ref().map(cond_str),
            if_none_match: i.if_none_match.as_ref().map(cond_str),
            if_modified_since_ms: i.if_modified_since.as_ref().map(ms),
            if_unmodified_since_ms: i.if_unmodified_since.as_ref().map(ms),
        };
        if i.part_number.is_some() {
            return Err(s3_error!(NotImplemented, "GET by part number is not supported"));
        }
        let range = i.range;
        let (info, stream, r) = self
            .store
            .get_with(&i.bucket, &i.key, &conditions, |info| match &range {
                None => Ok(None),
                Some(r) => r.check(info.size).map(Some).map_err(|_| StorageError::InvalidRange),
            })
            .await?;
        let len = r.as_ref().map_or(info.size, |r| r.end - r.start);
        let mut out = GetObjectOutput {
            body: Some(StreamingBlob::wrap(stream)),
            content_length: Some(len as i64),
            content_range: r.as_ref().map(|r| format!("bytes {}-{}/{}", r.start, r.end - 1, info.size)),
            accept_ranges: Some("bytes".into()),
            e_tag: Some(etag(&info.etag)),
            last_modified: Some(ts(info.last_modified_ms)),
            content_type: info.meta.content_type.clone().or_else(|| Some("binary/octet-stream".into())),
            content_encoding: info.meta.content_encoding.clone(),
            content_disposition: info.meta.content_disposition.clone(),
            content_language: info.meta.content_language.clone(),
            cache_control: info.meta.cache_control.clone(),
            expires: expires_of(&info.meta),
            metadata: user_meta(&info.meta),
            parts_count: info.parts.map(|p| p as i32),
            ..Default::default()
        };
        // A range's bytes do not have the object's checksum: S3 returns none then.
        if r.is_none() && wants_checksum(i.checksum_mode.as_ref()) {
            checksums_out!(out, &info.checksums);
            out.checksum_type = info.checksum_type.map(type_dto);
        }
        let i = &req.input;
        if let Some(v) = &i.response_content_type {
            out.content_type = Some(v.clone());
        }
        if let Some(v) = &i.response_content_disposition {
            out.content_disposition = Some(v.clone());
        }
        if let Some(v) = &i.response_content_encoding {
            out.content_encoding = Some(v.clone());
        }
        if let Some(v) = &i.response_content_language {
            out.content_language = Some(v.clone());
        }
        if let Some(v) = &i.response_cache_control {
            out.cache_control = Some(v.clone());
        }
        let status = if r.is_some() { http::StatusCode::PARTIAL_CONTENT } else { http::StatusCode::OK };
        Ok(S3Response::with_status(out, status))
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        let i = &req.input;
        let info = self.store.head(&i.bucket, &i.key)?;
        Conditions {
            if_match: i.if_match.as_ref().map(cond_str),
            if_none_match: i.if_none_match.as_ref().map(cond_str),
            if_modified_since_ms: i.if_modified_since.as_ref().map(ms),
            if_unmodified_since_ms: i.if_unmodified_since.as_ref().map(ms),
        }
        .check(&info)?;
        let mut out = HeadObjectOutput {
            content_length: Some(info.size as i64),
            accept_ranges: Some("bytes".into()),
            e_tag: Some(etag(&info.etag)),
            last_modified: Some(ts(info.last_modified_ms)),
            content_type: info.meta.content_type.clone().or_else(|| Some("binary/octet-stream".into())),
            content_encoding: info.meta.content_encoding.clone(),
            content_disposition: info.meta.content_disposition.clone(),
            content_language: info.meta.content_language.clone(),
            cache_control: info.meta.cache_control.clone(),
            expires: expires_of(&info.meta),
            metadata: user_meta(&info.meta),
            parts_count: info.parts.map(|p| p as i32),
            ..Default::default()
        };
        if wants_checksum(i.checksum_mode.as_ref()) {
            checksums_out!(out, &info.checksums);
            out.checksum_type = info.checksum_type.map(type_dto);
        }
        Ok(S3Response::new(out))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let i = &req.input;
        if let Some(m) = &i.if_match {
            let cur = self.store.head(&i.bucket, &i.key)?;
            Conditions { if_match: Some(cond_str(m)), ..Default::default() }.check(&cur)?;
        }
        self.store.delete(&i.bucket, &i.key).await?;
        Ok(S3Response::with_status(DeleteObjectOutput::default(), http::StatusCode::NO_CONTENT))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let i = req.input;
        if i.delete.objects.len() > 1000 {
            return Err(s3_error!(MalformedXML, "at most 1000 keys at a time"));
        }
        let keys: Vec<String> = i.delete.objects.iter().map(|o| o.key.clone()).collect();
        let results = self.store.delete_many(&i.bucket, keys.clone()).await?;
        let quiet = i.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for (key, r) in keys.into_iter().zip(results) {
            match r {
                Ok(_) if quiet => {}
                Ok(_) => deleted.push(DeletedObject { key: Some(key), ..Default::default() }),
                Err(e) => {
                    let e = S3Error::from(e);
                    errors.push(Error {
                        code: Some(e.code().as_str().to_owned()),
                        key: Some(key),
                        message: e.message().map(str::to_owned),
                        version_id: None,
                    });
                }
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: Some(errors),
            ..Default::default()
        }))
    }

    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        let (src_bucket, src_key) = copy_source(&req.input.copy_source)?;
        self.check_source(req.credentials.as_ref(), &src_bucket)?;
        let i = req.input;
        let replace = i.metadata_directive.as_ref().is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        if src_bucket == i.bucket && src_key == i.key && !replace {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata."
            ));
        }
        let meta = replace.then(|| {
            object_meta(
                i.content_type,
                i.content_encoding,
                i.content_disposition,
                i.content_language,
                i.cache_control,
                i.expires.as_ref(),
                i.metadata,
            )
        });
        let source_conditions = Conditions {
            if_match: i.copy_source_if_match.as_ref().map(cond_str),
            if_none_match: i.copy_source_if_none_match.as_ref().map(cond_str),
            if_modified_since_ms: i.copy_source_if_modified_since.as_ref().map(ms),
            if_unmodified_since_ms: i.copy_source_if_unmodified_since.as_ref().map(ms),
        };
        let put = PutMeta {
            checksum_algorithm: i.checksum_algorithm.as_ref().map(alg_of).transpose()?,
            ..Default::default()
        };
        // A copy's source conditions fail with 412 whichever header it was.
        let info = self
            .store
            .copy(&src_bucket, &src_key, &i.bucket, &i.key, meta, &source_conditions, put)
            .await
            .map_err(|e| {
                if matches!(e, StorageError::NotModified) { StorageError::PreconditionFailed } else { e }
            })?;
        let mut result = CopyObjectResult {
            e_tag: Some(etag(&info.etag)),
            last_modified: Some(ts(info.last_modified_ms)),
            checksum_type: info.checksum_type.map(type_dto),
            ..Default::default()
        };
        checksums_out!(result, &info.checksums);
        Ok(S3Response::new(CopyObjectOutput { copy_object_result: Some(result), ..Default::default() }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let i = &req.input;
        let enc = encoder(i.encoding_type.as_ref())?;
        let max = max_keys(i.max_keys)?;
        let after = match &i.continuation_token {
            Some(t) => Some(
                hex::decode(t)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| s3_error!(InvalidArgument, "the continuation token is not one of ours"))?,
            ),
            None => i.start_after.clone(),
        };
        let prefix = i.prefix.clone().unwrap_or_default();
        let l = self.store.list(&i.bucket, &prefix, i.delimiter.as_deref(), after.as_deref(), max)?;
        let key_count = (l.objects.len() + l.common_prefixes.len()) as i32;
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(i.bucket.clone()),
            prefix: Some(enc(&prefix)),
            delimiter: i.delimiter.as_deref().map(&enc),
            max_keys: Some(max as i32),
            key_count: Some(key_count),
            is_truncated: Some(l.truncated),
            continuation_token: i.continuation_token.clone(),
            next_continuation_token: l.next_start_after.as_ref().map(hex::encode),
            start_after: i.start_after.as_deref().map(&enc),
            encoding_type: i.encoding_type.clone(),
            contents: Some(l.objects.iter().map(|o| object_entry(o, &enc)).collect()),
            common_prefixes: Some(
                l.common_prefixes.iter().map(|p| CommonPrefix { prefix: Some(enc(p)) }).collect(),
            ),
            ..Default::default()
        }))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let i = &req.input;
        let enc = encoder(i.encoding_type.as_ref())?;
        let max = max_keys(i.max_keys)?;
        let prefix = i.prefix.clone().unwrap_or_default();
        let l = self.store.list(&i.bucket, &prefix, i.delimiter.as_deref(), i.marker.as_deref(), max)?;
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(i.bucket.clone()),
            prefix: Some(enc(&prefix)),
            delimiter: i.delimiter.as_deref().map(&enc),
            marker: Some(i.marker.as_deref().map(&enc).unwrap_or_default()),
            max_keys: Some(max as i32),
            is_truncated: Some(l.truncated),
            next_marker: l.next_start_after.as_deref().map(&enc),
            encoding_type: i.encoding_type.clone(),
            contents: Some(l.objects.iter().map(|o| object_entry(o, &enc)).collect()),
            common_prefixes: Some(
                l.common_prefixes.iter().map(|p| CommonPrefix { prefix: Some(enc(p)) }).collect(),
            ),
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let i = req.input;
        let algorithm = i.checksum_algorithm.as_ref().map(alg_of).transpose()?;
        let checksum_type = match i.checksum_type.as_ref().map(|t| t.as_str().to_ascii_uppercase()) {
            None => None,
            Some(t) if t == ChecksumType::FULL_OBJECT => Some(Ct::FullObject),
            Some(t) if t == ChecksumType::COMPOSITE => Some(Ct::Composite),
            Some(t) => return Err(s3_error!(InvalidArgument, "unknown checksum type {t}")),
        };
        // A full-object checksum without a named algorithm is CRC64NVME, as S3 has it.
        let algorithm = algorithm.or((checksum_type == Some(Ct::FullObject)).then_some(Alg::Crc64Nvme));
        let meta = object_meta(
            i.content_type,
            i.content_encoding,
            i.content_disposition,
            i.content_language,
            i.cache_control,
            i.expires.as_ref(),
            i.metadata,
        );
        let upload_id =
            self.store.create_multipart_upload(&i.bucket, &i.key, meta, algorithm, checksum_type)?;
        let up = self.store.upload(&i.bucket, &i.key, &upload_id)?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(i.bucket),
            key: Some(i.key),
            upload_id: Some(upload_id),
            checksum_algorithm: up.checksum_algorithm.map(alg_dto),
            checksum_type: up.checksum_type.map(type_dto),
            ..Default::default()
        }))
    }

    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        let S3Request { input, headers, trailing_headers, .. } = req;
        let number =
            u32::try_from(input.part_number).map_err(|_| s3_error!(InvalidArgument, "bad part number"))?;
        let upload = self.store.upload(&input.bucket, &input.key, &input.upload_id)?;
        let mut declared = checksums_in!(input);
        let mut algorithms = ObjectStore::part_algorithms(&upload, &declared);
        algorithms.extend(input.checksum_algorithm.as_ref().map(alg_of).transpose()?);
        let staged = self.receive(&input.bucket, input.body, &headers, algorithms).await?;
        merge_trailers(&mut declared, trailing_headers.as_ref())?;
        let part = self.store.finish_part(&upload, number, staged, declared, input.content_md5).await?;
        let mut out = UploadPartOutput { e_tag: Some(etag(&part.etag)), ..Default::default() };
        checksums_out!(out, &part.checksums);
        Ok(S3Response::new(out))
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let (src_bucket, src_key) = copy_source(&req.input.copy_source)?;
        self.check_source(req.credentials.as_ref(), &src_bucket)?;
        let i = &req.input;
        let number =
            u32::try_from(i.part_number).map_err(|_| s3_error!(InvalidArgument, "bad part number"))?;
        let range = copy_range(i.copy_source_range.as_deref())?;
        let source_conditions = Conditions {
            if_match: i.copy_source_if_match.as_ref().map(cond_str),
            if_none_match: i.copy_source_if_none_match.as_ref().map(cond_str),
            if_modified_since_ms: i.copy_source_if_modified_since.as_ref().map(ms),
            if_unmodified_since_ms: i.copy_source_if_unmodified_since.as_ref().map(ms),
        };
        let part = self
            .store
            .upload_part_copy(
                &i.bucket,
                &i.key,
                &i.upload_id,
                number,
                &src_bucket,
                &src_key,
                range,
                &source_conditions,
            )
            .await
            .map_err(|e| {
                if matches!(e, StorageError::NotModified) { StorageError::PreconditionFailed } else { e }
            })?;
        let mut result = CopyPartResult {
            e_tag: Some(etag(&part.etag)),
            last_modified: Some(ts(part.last_modified_ms)),
            ..Default::default()
        };
        checksums_out!(result, &part.checksums);
        Ok(S3Response::new(UploadPartCopyOutput { copy_part_result: Some(result), ..Default::default() }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let i = req.input;
        let mut list = Vec::new();
        for p in i.multipart_upload.as_ref().and_then(|m| m.parts.as_ref()).into_iter().flatten() {
            let number = p.part_number.and_then(|n| u32::try_from(n).ok());
            let (Some(number), Some(e)) = (number, &p.e_tag) else {
                return Err(s3_error!(MalformedXML, "every part needs a PartNumber and an ETag"));
            };
            list.push(CompletePart { number, etag: e.value().to_owned(), checksums: checksums_in!(p) });
        }
        if list.is_empty() {
            return Err(s3_error!(MalformedXML, "the list of parts is empty"));
        }
        let full = checksums_in!(i);
        let info = self
            .store
            .complete_multipart_upload(
                &i.bucket,
                &i.key,
                &i.upload_id,
                &list,
                full,
                i.if_match.as_ref().map(cond_str),
                i.if_none_match.as_ref().map(cond_str),
            )
            .await?;
        let mut out = CompleteMultipartUploadOutput {
            bucket: Some(i.bucket.clone()),
            key: Some(i.key.clone()),
            e_tag: Some(etag(&info.etag)),
            location: Some(format!("/{}/{}", i.bucket, i.key)),
            checksum_type: info.checksum_type.map(type_dto),
            ..Default::default()
        };
        checksums_out!(out, &info.checksums);
        Ok(S3Response::new(out))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let i = &req.input;
        self.store.abort_multipart_upload(&i.bucket, &i.key, &i.upload_id).await?;
        Ok(S3Response::with_status(AbortMultipartUploadOutput::default(), http::StatusCode::NO_CONTENT))
    }

    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        let i = &req.input;
        let max = max_keys(i.max_parts)?;
        let after = i.part_number_marker.and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
        let (up, parts, truncated) = self.store.list_parts(&i.bucket, &i.key, &i.upload_id, after, max)?;
        let next = parts.last().map(|p| p.number as i32);
        let parts = parts
            .into_iter()
            .map(|p| {
                let mut part = Part {
                    part_number: Some(p.number as i32),
                    size: Some(p.size as i64),
                    e_tag: Some(etag(&p.etag)),
                    last_modified: Some(ts(p.last_modified_ms)),
                    ..Default::default()
                };
                checksums_out!(part, &p.checksums);
                part
            })
            .collect();
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(i.bucket.clone()),
            key: Some(i.key.clone()),
            upload_id: Some(i.upload_id.clone()),
            max_parts: Some(max as i32),
            part_number_marker: i.part_number_marker,
            next_part_number_marker: if truncated { next } else { None },
            is_truncated: Some(truncated),
            checksum_algorithm: up.checksum_algorithm.map(alg_dto),
            checksum_type: up.checksum_type.map(type_dto),
            parts: Some(parts),
            ..Default::default()
        }))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let i = &req.input;
        let max = max_keys(i.max_uploads)?;
        let enc = encoder(i.encoding_type.as_ref())?;
        let prefix = i.prefix.clone().unwrap_or_default();
        let (uploads, truncated) = self.store.list_uploads(
            &i.bucket,
            &prefix,
            i.key_marker.as_deref(),
            i.upload_id_marker.as_deref(),
            max,
        )?;
        let last = uploads.last().map(|u| (u.key.clone(), u.upload_id.clone()));
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(i.bucket.clone()),
            prefix: Some(enc(&prefix)),
            key_marker: i.key_marker.clone(),
            upload_id_marker: i.upload_id_marker.clone(),
            max_uploads: Some(max as i32),
            is_truncated: Some(truncated),
            next_key_marker: last.as_ref().filter(|_| truncated).map(|l| enc(&l.0)),
            next_upload_id_marker: last.filter(|_| truncated).map(|l| l.1),
            encoding_type: i.encoding_type.clone(),
            uploads: Some(
                uploads
                    .into_iter()
                    .map(|u| MultipartUpload {
                        key: Some(enc(&u.key)),
                        upload_id: Some(u.upload_id),
                        initiated: Some(ts(u.initiated_ms)),
                        checksum_algorithm: u.checksum_algorithm.map(alg_dto),
                        checksum_type: u.checksum_type.map(type_dto),
                        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }))
    }
}

/// Gives s3s the secret of an access key, so it can verify the request's signature.
pub(crate) struct Auth {
    pub keys: Keys,
}

#[async_trait::async_trait]
impl S3Auth for Auth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.keys.get(access_key) {
            Ok(Some(k)) => Ok(SecretKey::from(k.secret.unwrap_or_default())),
            Ok(None) => Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )),
            Err(e) => Err(e.into()),
        }
    }
}

/// Operations a read-only key may perform; anything else is a write.
const READ_OPERATIONS: &[&str] = &[
    "GetObject",
    "HeadObject",
    "ListObjects",
    "ListObjectsV2",
    "ListBuckets",
    "HeadBucket",
    "GetBucketLocation",
    "ListParts",
    "ListMultipartUploads",
];

/// A signed request's key must cover the bucket, and be read-write for a write.
pub(crate) struct Access {
    pub keys: Keys,
}

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let Some(creds) = cx.credentials() else {
            return Err(s3_error!(AccessDenied, "Signature is required"));
        };
        let Some(key) = self.keys.get(&creds.access_key)? else {
            return Err(s3_error!(InvalidAccessKeyId));
        };
        let bucket = match cx.s3_path() {
            S3Path::Root => None,
            S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => Some(bucket),
        };
        if let Some(b) = bucket
            && !key.scope.allows_bucket(b)
        {
            return Err(s3_error!(AccessDenied, "the access key may not use this bucket"));
        }
        if key.scope.read_only && !READ_OPERATIONS.contains(&cx.s3_op().name()) {
            return Err(s3_error!(AccessDenied, "the access key is read-only"));
        }
        Ok(())
    }
}
