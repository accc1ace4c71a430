//! The engine through its public API: visibility, overwrite, delete, listing, multipart,
//! conditions, the orphan sweep, traversal-looking keys, events and keys.

use std::io;
use std::path::Path;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use yun_storage::*;

fn body(data: &[u8]) -> impl futures::Stream<Item = io::Result<Bytes>> + Send + use<> {
    stream::iter(vec![Ok(Bytes::copy_from_slice(data))])
}

async fn read_all(s: BlobStream) -> Vec<u8> {
    s.try_fold(Vec::new(), |mut v, b| async move {
        v.extend_from_slice(&b);
        Ok(v)
    })
    .await
    .unwrap()
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn put_get_overwrite_delete() {
    let dir = tempfile::tempdir().unwrap();
    let s = ObjectStore::open(dir.path()).await.unwrap();
    s.create_bucket("photos").await.unwrap();
    assert!(matches!(s.create_bucket("photos").await, Err(StorageError::BucketExists(_))));
    let mut meta = PutMeta::default();
    meta.meta.content_type = Some("text/plain".into());
    meta.meta.user.insert("owner".into(), "ann".into());
    let info = s.put("photos", "a.txt", body(b"hello world"), meta).await.unwrap();
    assert_eq!(info.etag, "5eb63bbbe01eeed093cb22bb8f5acdc3");
    assert_eq!(info.size, 11);
    let (got, stream) = s.get("photos", "a.txt", None).await.unwrap();
    assert_eq!(got.meta.user["owner"], "ann");
    assert_eq!(read_all(stream).await, b"hello world");
    let (_, stream) = s.get("photos", "a.txt", Some(6..100)).await.unwrap();
    assert_eq!(read_all(stream).await, b"world");
    assert!(matches!(s.get("photos", "a.txt", Some(11..12)).await, Err(StorageError::InvalidRange)));

    s.put("photos", "a.txt", body(b"second"), PutMeta::default()).await.unwrap();
    let (_, stream) = s.get("photos", "a.txt", None).await.unwrap();
    assert_eq!(read_all(stream).await, b"second");
    // The overwritten blob is gone: one blob on disk.
    assert_eq!(files_under(&dir.path().join("blobs")).len(), 1);
    assert_eq!(s.usage().unwrap(), vec![("photos".to_string(), 6, 1)]);

    assert!(matches!(s.delete_bucket("photos").await, Err(StorageError::BucketNotEmpty(_))));
    assert!(s.delete("photos", "a.txt").await.unwrap());
    assert!(!s.delete("photos", "a.txt").await.unwrap());
    assert!(matches!(s.head("photos", "a.txt"), Err(StorageError::NoSuchKey(_))));
    assert!(files_under(&dir.path().join("blobs")).is_empty());
    s.delete_bucket("photos").await.unwrap();
    assert!(s.buckets().unwrap().is_empty());
    assert!(matches!(s.head("photos", "a.txt"), Err(StorageError::NoSuchBucket(_))));
}

#[tokio::test]
async fn names_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let s = ObjectStore::open(dir.path()).await.unwrap();
    for bad in ["ab", "Upper", "a..b", "-ab", "ab-", "192.168.1.1", "a_b", &"a".repeat(64)] {
        assert!(matches!(s.create_bucket(bad).await, Err(StorageError::InvalidBucketName(_))), "{bad}");
    }
    s.create_bucket("my.bucket-1").await.unwrap();
    assert!(matches!(
        s.put("my.bucket-1", "", body(b"x"), PutMeta::default()).await,
        Err(StorageError::InvalidKey(_))
    ));
    let long = "k".repeat(1025);
    assert!(matches!(
        s.put("my.bucket-1", &long, body(b"x"), PutMeta::default()).await,
        Err(StorageError::InvalidKey(_))
    ));
}

#[tokio::test]
async fn a_reader_never_sees_a_partial_object() {
    let dir = tempfile::tempdir().unwrap();
    let s = ObjectStore::open(dir.path()).await.unwrap();
    s.create_bucket("b00").await.unwrap();
    s.put("b00", "k", body(b"old"), PutMeta::default()).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(1);
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            let body = tokio_stream(rx);
            s.put("b00", "k", body, PutMeta::default()).await
        })
    };
    tx.send(Ok(Bytes::from(vec![b'x'; 3 << 20]))).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    // Half written: still the old object, whole.
    let (info, stream) = s.get("b00", "k", None).await.unwrap();
    assert_eq!(info.size, 3);
    assert_eq!(read_all(stream).await, b"old");
    assert_eq!(s.list("b00", "", None, None, 100).unwrap().objects[0].size, 3);
    tx.send(Ok(Bytes::from(vec![b'y'; 10]))).await.unwrap();
    drop(tx);
    let info = writer.await.unwrap().unwrap();
    assert_eq!(info.size, (3 << 20) + 10);
    assert_eq!(s.head("b00", "k").unwrap().size, (3 << 20) + 10);

    // A body that fails midway stores nothing and leaves no file.
    let failing = stream::iter(vec![Ok(Bytes::from_static(b"abc")), Err(io::Error::other("cut"))]);
    assert!(matches!(s.put("b00", "k2", failing, PutMeta::default()).await, Err(StorageError::Body(_))));
    assert!(matches!(s.head("b00", "k2"), Err(StorageError::NoSuchKey(_))));
    assert_eq!(files_under(&dir.path().join("blobs")).len(), 1);
    assert!(files_under(&dir.path().join("tmp")).is_empty());
}

fn tokio_stream(
    mut rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
) -> impl futures::Stream<Item = io::Result<Bytes>> + Send {
    stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn listing_with_delimiter_and_continuation() {
    let dir = tempfile::tempdir().unwrap();
    let s = ObjectStore::open(dir.path()).await.unwrap();
    s.create_bucket("list").await.unwrap();
    let keys = ["a", "b/1", "b/2", "b/3", "c/x/1", "c/y", "d", "e/1"];
    for k in keys {
        s.put("list", k, body(k.as_bytes()), PutMeta::default()).await.unwrap();
    }
    let all = s.list("list", "", None, None, 1000).unwrap();
    assert_eq!(all.objects.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), keys);
    assert!(!all.truncated);

    let l = s.list("list", "", Some("/"), None, 1000).unwrap();
    assert_eq!(l.objects.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), ["a", "d"]);
    assert_eq!(l.common_prefixes, ["b/", "c/", "e/"]);

    // Two at a time, prefixes and keys counted together, each page resuming after the last.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = s.list("list", "", Some("/"), after.as_deref(), 2).unwrap();
        seen.extend(page.objects.iter().map(|o| o.key.clone()));
        seen.extend(page.common_prefixes.iter().cloned());
        if !page.truncated {
            break;
        }
        after = page.next_start_after.clone();
    }
    seen.sort();
    assert_eq!(seen, ["a", "b/", "c/", "d", "e/"]);

    let l = s.list("list", "c/", Some("/"), None, 1000).unwrap();
    assert_eq!(l.objects.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), ["c/y"]);
    assert_eq!(l.common_prefixes, ["c/x/"]);
    let l = s.list("list", "b/", None, Some("b/1"), 1000).unwrap();
    assert_eq!(l.objects.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), ["b/2", "b/3"]);
}

#[tokio::test]
async fn multipart_upload() {
    let dir = tempfile::tempdir().unwrap();
    let s = ObjectStore::open(dir.path()).await.unwrap();
    s.create_bucket("mp0").await.unwrap();
    let id = s
        .create_multipart_upload("mp0", "big", ObjectMeta::default(), Some(ChecksumAlgorithm::Crc32), None)
        .unwrap();
    let p1 = vec![1u8; MIN_PART_SIZE as usize];
    let p2 = vec![2u8; 1000];
    let a = s.upload_part("mp0", "big", &id, 1, body(&p1), Checksums::default(), None).await.unwrap();
    // A part uploaded again replaces the first one.
    s.upload_part("mp0", "big", &id, 2, body(b"wrong"), Checksums::default(), None).await.unwrap();
    let b = s.upload_part("mp0", "big", &id, 2, body(&p2), Checksums::default(), None).await.unwrap();
    assert!(a.checksums.crc32.is_some());
    let (_, parts, truncated) = s.list_parts("mp0", "big", &id, 0, 100).unwrap();
    assert_eq!(parts.len(), 2);
    assert!(!truncated);
    assert_eq!(s.list_uploads("mp0", "", None, None, 10).unwrap().0.len(), 1);
    // Not visible before completion.
    assert!(s.head("mp0", "big").is_err());

    let list = |x: &PartInfo| CompletePart {
        number: x.number,
        etag: format!("\"{}\"", x.etag),
        checksums: Checksums::default(),
    };
    assert!(matches!(
        s.complete_multipart_upload(
            "mp0",
            "big",
            &id,
            &[list(&b), list(&a)],
            Checksums::default(),
            None,
            None
        )
        .await,
        Err(StorageError::InvalidPartOrder)
    ));
    let mut bad = list(&b);
    bad.etag = "00".into();
    assert!(matches!(
        s.complete_multipart_upload("mp0", "big", &id, &[list(&a), bad], Checksums::default(), None, None)
            .await,
        Err(StorageError::InvalidPart(_))
    ));
    let info = s
        .complete_multipart_upload("mp0", "big", &id, &[list(&a), list(&b)], Checksums::default(), None, None)
        .await
        .unwrap();
    assert!(info.etag.ends_with("-2"));
    assert_eq!(info.size, p1.len() as u64 + 1000);
    assert!(info.checksums.crc32.as_deref().unwrap().ends_with("-2"));
    let (_, stream) = s.get("mp0", "big", Some(p1.len() as u64 - 1..p1.len() as u64 + 2)).await.unwrap();
    assert_eq!(read_all(stream).await, [1, 2, 2]);
    // The parts' blobs are gone; only the object's remains.
    assert_eq!(files_under(&dir.path().join("blobs")).len(), 1);
    assert!(matches!(s.upload("mp0", "big", &id), Err(StorageError::NoSuchUpload(_))));

    // An aborted upload leaves nothing.
    let id = s.create_multipart_upload("mp0", "gone", ObjectMeta::default(), None, None).unwrap();
    s.upload_part("mp0", "gone", &id, 1, body(b"abc"), Checksums::default(), None).await.unwrap();
    s.abort_multipart_upload("mp0", "gone", &id).await.unwrap();
    assert_eq!(files_under(&dir.path().join("blobs")).len(), 1);
    let ev: Vec<_> = s.events(0, 100).unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(ev, [EventKind::CompleteMultipartUpload]);
}

#[tokio::test]
async fn conditions() {
    let dir = tempfile::tempdir().unwrap();
    let s = ObjectStore::open(dir.path()).await.unwrap();
    s.create_bucket("cond").await.unwrap();
    let once = PutMeta { if_none_match: Some("*".into()), ..Default::default() };
    let info = s.put("cond", "k", body(b"1"), once.clone()).await.unwrap();
    assert!(matches!(s.put("cond", "k", body(b"2"), once).await, Err(StorageError::PreconditionFailed)));
    let wrong = PutMeta { if_match: Some("\"abc\"".into()), ..Default::default() };
    assert!(matches!(s.put("cond", "k", body(b"2"), wrong).await, Err(StorageError::PreconditionFailed)));
    let right = PutMeta { if_match: Some(format!("\"{}\"", info.etag)), ..Default::default() };
    s.put("cond", "k", body(b"2"), right).await.unwrap();
    let missing = PutMeta { if_match: Some("*".into()), ..Default::default() };
    assert!(matches!(s.put("cond", "nope", body(b"2"), missing).await, Err(StorageError::NoSuchKey(_))));

    let cur = s.head("cond", "k").unwrap();
    let c = |f: fn(&mut Conditions, &ObjectInfo)| {
        let mut c = Conditions::default();
        f(&mut c, &cur);
        c.check(&cur)
    };
    assert!(matches!(
        c(|c, i| c.if_none_match = Some(format!("\"{}\"", i.etag))),
        Err(StorageError::NotModified)
    ));
    assert!(c(|c, _| c.if_none_match = Some("\"other\"".into())).is_ok());
    assert!(matches!(c(|c, _| c.if_match = Some("\"other\"".into())), Err(StorageError::PreconditionFailed)));
    assert!(c(|c, i| c.if_match = Some(format!("\"x\", \"{}\"", i.etag))).is_ok());
    assert!(matches!(
        c(|c, i| c.if_modified_since_ms = Some(i.last_modified_ms + 5000)),
        Err(StorageError::NotModified)
    ));
    assert!(c(|c, i| c.if_modified_since_ms = Some(i.last_modified_ms - 5000)).is_ok());
    assert!(matches!(
        c(|c, i| c.if_unmodified_since_ms = Some(i.last_modified_ms - 5000)),
        Err(StorageError::PreconditionFailed)
    ));
    let wrong = PutMeta {
        checksums: Checksums { crc32: Some("AAAAAA==".into()), ..Default::default() },
        ..Default::default()
    };
    assert!(matches!(s.put("cond", "k", body(b"3"), wrong).await, Err(StorageError::BadDigest(_))));
    let md5 = PutMeta { content_md5: Some("AAAAAAAAAAAAAAAAAAAAAA==".into()), ..Default::default() };
    assert!(matches!(s.put("cond", "k", body(b"3"), md5).await, Err(StorageError::BadDigest(_))));
}

#[tokio::test]
async fn reopen_sweeps_orphans_and_keeps_objects() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = ObjectStore::open(dir.path()).await.unwrap();
        s.create_bucket("keep").await.unwrap();
        s.put("keep", "x", body(b"kept"), PutMeta::default()).await.unwrap();
        let id = s.create_multipart_upload("keep", "mp", ObjectMeta::default(), None, None).unwrap();
        s.upload_part("keep", "mp", &id, 1, body(b"part"), Checksums::default(), None).await.unwrap();
    }
    let blobs = dir.path().join("blobs");
    let bucket_dir = std::fs::read_dir(&blobs).unwrap().next().unwrap().unwrap().path();
    // What crashes leave: a renamed blob whose commit never happened, a temp file, the
    // directory of a bucket whose creation never committed.
    std::fs::write(bucket_dir.join("0123456789abcdef0123456789abcdef"), b"orphan").unwrap();
    std::fs::write(dir.path().join("tmp").join("fedcba9876543210fedcba9876543210"), b"partial").unwrap();
    std::fs::create_dir(blobs.join("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")).unwrap();
    assert_eq!(files_under(&blobs).len(), 3);

    let s = ObjectStore::open(dir.path()).await.unwrap();
    assert_eq!(files_under(&blobs).len(), 2, "the object's and the part's blobs stay");
    assert!(!blobs.join("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").exists());
    assert!(files_under(&dir.path().join("tmp")).is_empty());
    let (_, stream) = s.get("keep", "x", None).await.unwrap();
    assert_eq!(read_all(stream).await, b"kept");
    assert_eq!(s.list_uploads("keep", "", None, None, 10).unwrap().0.len(), 1);
}

#[tokio::test]
async fn traversal_keys_are_just_keys() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let s = ObjectStore::open(&root).await.unwrap();
    s.create_bucket("trav").await.unwrap();
    let evil = ["../../etc/passwd", "/etc/passwd", "..", "a/../../../x", "..\\..\\win", "./.", "k\0nul"];
    for k in evil {
        s.put("trav", k, body(k.as_bytes()), PutMeta::default()).await.unwrap();
    }
    for k in evil {
        let (_, stream) = s.get("trav", k, None).await.unwrap();
        assert_eq!(read_all(stream).await, k.as_bytes());
    }
    // Nothing was written outside the store's root, and inside it only generated names.
    let outside: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(outside, ["store"]);
    for f in files_under(&root.join("blobs")) {
        let name = f.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
    }
    assert_eq!(s.list("trav", "", None, None, 100).unwrap().objects.len(), evil.len());
}

#[tokio::test]
async fn events_are_an_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let s = ObjectStore::open(dir.path()).await.unwrap();
    s.create_bucket("ev0").await.unwrap();
    let waker = s.event_waker();
    let put = s.put("ev0", "a", body(b"1"), PutMeta::default()).await.unwrap();
    // The permit is kept: a drainer that waits after the commit is not left hanging.
    tokio::time::timeout(std::time::Duration::from_secs(1), waker.notified()).await.unwrap();
    s.copy("ev0", "a", "ev0", "b", None, &Conditions::default(), PutMeta::default()).await.unwrap();
    s.delete_many("ev0", vec!["a".into(), "b".into(), "zz".into()]).await.unwrap();
    let ev = s.events(0, 100).unwrap();
    let kinds: Vec<_> = ev.iter().map(|e| (e.kind.name(), e.key.as_str())).collect();
    assert_eq!(
        kinds,
        [
            ("ObjectCreated:Put", "a"),
            ("ObjectCreated:Copy", "b"),
            ("ObjectRemoved:Delete", "a"),
            ("ObjectRemoved:Delete", "b")
        ]
    );
    assert_eq!(ev[0].etag.as_deref(), Some(put.etag.as_str()));
    assert_eq!(ev[0].size, Some(1));
    assert!(ev.windows(2).all(|w| w[0].seq < w[1].seq && w[0].sequencer < w[1].sequencer));
    s.ack_events(ev[1].seq).unwrap();
    assert_eq!(s.events(0, 100).unwrap().len(), 2);
    drop(s);
    // Sequence numbers survive a restart and keep increasing.
    let s = ObjectStore::open(dir.path()).await.unwrap();
    assert_eq!(s.events(0, 100).unwrap().len(), 2);
    s.put("ev0", "c", body(b"1"), PutMeta::default()).await.unwrap();
    assert_eq!(s.events(ev[3].seq, 100).unwrap()[0].seq, ev[3].seq + 1);
}

#[tokio::test]
async fn access_keys() {
    let dir = tempfile::tempdir().unwrap();
    let s = ObjectStore::open(dir.path()).await.unwrap();
    let keys = s.keys();
    let k = keys.create(KeyScope { buckets: Some(vec!["only".into()]), read_only: true }).unwrap();
    assert_eq!(k.id.len(), 20);
    assert_eq!(k.secret.as_ref().unwrap().len(), 40);
    let listed = keys.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].secret.is_none());
    assert_eq!(keys.get(&k.id).unwrap().unwrap().secret, k.secret);
    assert!(listed[0].scope.allows_bucket("only") && !listed[0].scope.allows_bucket("other"));
    assert!(keys.remove(&k.id).unwrap());
    assert!(!keys.remove(&k.id).unwrap());
    assert!(keys.get(&k.id).unwrap().is_none());
}

#[tokio::test]
async fn copy_keeps_or_replaces_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let s = ObjectStore::open(dir.path()).await.unwrap();
    s.create_bucket("src").await.unwrap();
    s.create_bucket("dst").await.unwrap();
    let mut meta = PutMeta::default();
    meta.meta.user.insert("a".into(), "1".into());
    let src = s.put("src", "k", body(b"payload"), meta).await.unwrap();
    let c = s.copy("src", "k", "dst", "k2", None, &Conditions::default(), PutMeta::default()).await.unwrap();
    assert_eq!(c.etag, src.etag);
    assert_eq!(c.meta.user["a"], "1");
    let c = s
        .copy(
            "src",
            "k",
            "dst",
            "k3",
            Some(ObjectMeta::default()),
            &Conditions::default(),
            PutMeta::default(),
        )
        .await
        .unwrap();
    assert!(c.meta.user.is_empty());
    let (_, st) = s.get("dst", "k3", None).await.unwrap();
    assert_eq!(read_all(st).await, b"payload");
    let _ = st_count(&s).await;
}

async fn st_count(s: &ObjectStore) -> usize {
    stream::iter(s.buckets().unwrap()).count().await
}
