//! Object bodies as files named by generated ids: `blobs/<bucket-id>/<blob-id>`. Keys never
//! become paths, so no key can reach outside its bucket's directory. This is the seam where
//! another body store (an external S3 through `object_store`) would go.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use tokio::task::JoinHandle;

use crate::StorageError;
use crate::checksum::{ChecksumAlgorithm, Digests, Hasher};

/// Bytes gathered before one write call: big enough that a 2 GiB body is a few thousand
/// writes, small enough to bound the memory of every upload in flight.
const WRITE_CHUNK: usize = 1 << 20;
const READ_CHUNK: usize = 256 << 10;

pub(crate) struct Blobs {
    blobs: PathBuf,
    tmp: PathBuf,
}

/// A body written, fsynced and renamed into place, that no metadata names yet. Dropped before
/// [`Staged::keep`], it removes its file.
pub(crate) struct Staged {
    pub bucket_id: String,
    pub id: String,
    pub size: u64,
    pub digests: Digests,
    path: PathBuf,
    kept: bool,
}

impl Staged {
    /// The metadata now names this blob: it stays.
    pub fn keep(&mut self) {
        self.kept = true;
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// An id we generated: anything else found on disk or in a record is not ours to touch.
fn is_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

pub(crate) fn new_bucket_id() -> String {
    new_id()
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Blobs {
    pub fn open(root: &Path) -> Result<Blobs, StorageError> {
        let blobs = root.join("blobs");
        let tmp = root.join("tmp");
        std::fs::create_dir_all(&blobs)?;
        std::fs::create_dir_all(&tmp)?;
        // Only one process has the store open (redb locks its file), so anything in tmp/ is
        // a write that died before its rename.
        for entry in std::fs::read_dir(&tmp)? {
            let entry = entry?;
            let _ = std::fs::remove_file(entry.path());
        }
        sync_dir(root)?;
        Ok(Blobs { blobs, tmp })
    }

    fn bucket_dir(&self, bucket_id: &str) -> PathBuf {
        debug_assert!(is_id(bucket_id));
        self.blobs.join(bucket_id)
    }

    fn path(&self, bucket_id: &str, id: &str) -> PathBuf {
        debug_assert!(is_id(id));
        self.bucket_dir(bucket_id).join(id)
    }

    pub fn create_bucket_dir(&self, bucket_id: &str) -> Result<(), StorageError> {
        std::fs::create_dir_all(self.bucket_dir(bucket_id))?;
        sync_dir(&self.blobs)?;
        Ok(())
    }

    pub fn remove_bucket_dir(&self, bucket_id: &str) {
        if let Err(e) = std::fs::remove_dir_all(self.bucket_dir(bucket_id))
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!("removing the blobs of a deleted bucket: {e}");
        }
    }

    /// Best effort: a blob left behind is an orphan the next open sweeps.
    pub fn remove(&self, bucket_id: &str, id: &str) {
        if !is_id(bucket_id) || !is_id(id) {
            return;
        }
        if let Err(e) = std::fs::remove_file(self.path(bucket_id, id))
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!("removing blob {bucket_id}/{id}: {e}");
        }
    }

    /// Streams `body` into a new blob of `bucket_id`, hashing it on the way; durable (file and
    /// directory fsynced) when this returns. `max` bounds the size.
    pub async fn write<S, E>(
        &self,
        bucket_id: &str,
        body: S,
        algorithms: Vec<ChecksumAlgorithm>,
        max: u64,
    ) -> Result<Staged, StorageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let id = new_id();
        let tmp_path = self.tmp.join(&id);
        let final_path = self.path(bucket_id, &id);
        let file = {
            let p = tmp_path.clone();
            blocking(move || File::create_new(p)).await?
        };
        // The temp file goes as soon as anything fails; after the rename `Staged` owns it.
        let mut guard = TmpGuard(Some(tmp_path.clone()));
        let mut writer = Some((file, Hasher::new(algorithms)));
        let mut size: u64 = 0;
        let mut buf = BytesMut::with_capacity(WRITE_CHUNK);
        let mut body = std::pin::pin!(body);
        loop {
            let next = body.next().await;
            let done = match next {
                Some(Ok(chunk)) => {
                    size += chunk.len() as u64;
                    if size > max {
                        return Err(StorageError::InvalidArgument(format!(
                            "the body is larger than {max} bytes"
                        )));
                    }
                    buf.extend_from_slice(&chunk);
                    false
                }
                Some(Err(e)) => return Err(StorageError::Body(io::Error::other(e.into()))),
                None => true,
            };
            if buf.len() >= WRITE_CHUNK || (done && !buf.is_empty()) {
                let data = buf.split().freeze();
                let (mut file, mut hasher) = writer.take().expect("the writer is put back after each write");
                let (file, hasher) = blocking(move || {
                    hasher.update(&data);
                    file.write_all(&data)?;
                    Ok((file, hasher))
                })
                .await?;
                writer = Some((file, hasher));
            }
            if done {
                break;
            }
        }
        let (file, hasher) = writer.take().expect("the writer is back");
        let dir = self.bucket_dir(bucket_id);
        let (src, dst) = (tmp_path.clone(), final_path.clone());
        // An fsync error may have dropped the dirty pages: the write failed, whatever a later
        // fsync says.
        let digests = blocking(move || {
            file.sync_all()?;
            drop(file);
            std::fs::create_dir_all(&dir)?;
            std::fs::rename(&src, &dst)?;
            sync_dir(&dir)?;
            Ok(hasher.finish())
        })
        .await?;
        guard.0 = None;
        Ok(Staged { bucket_id: bucket_id.to_owned(), id, size, digests, path: final_path, kept: false })
    }

    /// Opens a blob for reading `range` (already clamped to its size).
    pub async fn read(&self, bucket_id: &str, id: &str, start: u64, len: u64) -> io::Result<BlobStream> {
        let path = self.path(bucket_id, id);
        let file = blocking(move || {
            let mut f = File::open(path)?;
            if start > 0 {
                f.seek(SeekFrom::Start(start))?;
            }
            Ok(f)
        })
        .await?;
        Ok(BlobStream { file: Some(file), remaining: len, pending: None })
    }

    /// Removes blobs no record names and bucket directories no bucket owns: what a crash
    /// between a rename and its commit, or between a commit and a removal, leaves behind.
    pub fn sweep(&self, live: &HashMap<String, HashSet<String>>) -> Result<usize, StorageError> {
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.blobs)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(bucket_id) = name.to_str().filter(|n| is_id(n)) else { continue };
            match live.get(bucket_id) {
                None => {
                    let _ = std::fs::remove_dir_all(entry.path());
                    removed += 1;
                }
                Some(ids) => {
                    for blob in std::fs::read_dir(entry.path())? {
                        let blob = blob?;
                        let n = blob.file_name();
                        let Some(id) = n.to_str().filter(|n| is_id(n)) else { continue };
                        if !ids.contains(id) {
                            let _ = std::fs::remove_file(blob.path());
                            removed += 1;
                        }
                    }
                }
            }
        }
        Ok(removed)
    }
}

struct TmpGuard(Option<PathBuf>);

impl Drop for TmpGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(io::Error::other)?
}

/// A blob's bytes, read in bounded chunks on the blocking pool. The open file keeps the bytes
/// readable even if an overwrite removes the blob meanwhile.
pub struct BlobStream {
    file: Option<File>,
    remaining: u64,
    pending: Option<JoinHandle<(File, io::Result<Bytes>)>>,
}

impl Stream for BlobStream {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(pending) = self.pending.as_mut() {
                let (file, result) = match std::task::ready!(Pin::new(pending).poll(cx)) {
                    Ok(r) => r,
                    Err(e) => {
                        self.pending = None;
                        self.remaining = 0;
                        return Poll::Ready(Some(Err(io::Error::other(e))));
                    }
                };
                self.pending = None;
                self.file = Some(file);
                return Poll::Ready(Some(match result {
                    Ok(b) if b.is_empty() => {
                        self.remaining = 0;
                        Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the blob is shorter than its record",
                        ))
                    }
                    Ok(b) => {
                        self.remaining -= b.len() as u64;
                        Ok(b)
                    }
                    Err(e) => {
                        self.remaining = 0;
                        Err(e)
                    }
                }));
            }
            if self.remaining == 0 {
                return Poll::Ready(None);
            }
            let Some(mut file) = self.file.take() else { return Poll::Ready(None) };
            let want = self.remaining.min(READ_CHUNK as u64) as usize;
            self.pending = Some(tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; want];
                let mut filled = 0;
                while filled < want {
                    match file.read(&mut buf[filled..]) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return (file, Err(e)),
                    }
                }
                buf.truncate(filled);
                (file, Ok(Bytes::from(buf)))
            }));
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, None)
    }
}

impl BlobStream {
    /// Bytes still to come.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }
}

use std::future::Future as _;
