//! Builders for test archives (honest and malicious) and a sandbox that notices writes outside the
//! destination.

#![allow(dead_code)]

use std::fs;
use std::io::{Cursor, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use tar::{EntryType, Header};
use yun_archive::{ArchiveError, Caps, Summary};

/// A 512-byte tar header with the name and link name written as raw bytes, so that names the tar
/// crate's own setters refuse (`..`, absolute paths) can be built.
pub fn raw_header(name: &[u8], kind: EntryType, size: u64, mode: u32, link: &[u8]) -> [u8; 512] {
    let mut h = Header::new_gnu();
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name);
        old.linkname[..link.len()].copy_from_slice(link);
    }
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    *h.as_bytes()
}

/// An uncompressed tar stream built entry by entry.
#[derive(Default)]
pub struct RawTar {
    pub bytes: Vec<u8>,
    /// Where each header starts, so a fuzzer can fix checksums after mutating.
    pub headers: Vec<usize>,
}

impl RawTar {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn entry(mut self, name: &str, kind: EntryType, mode: u32, link: &str, data: &[u8]) -> Self {
        self.headers.push(self.bytes.len());
        self.bytes.extend_from_slice(&raw_header(
            name.as_bytes(),
            kind,
            data.len() as u64,
            mode,
            link.as_bytes(),
        ));
        self.bytes.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.bytes.extend(std::iter::repeat_n(0, pad));
        self
    }

    pub fn file(self, name: &str, data: &[u8]) -> Self {
        self.entry(name, EntryType::Regular, 0o644, "", data)
    }

    pub fn exe(self, name: &str, data: &[u8]) -> Self {
        self.entry(name, EntryType::Regular, 0o755, "", data)
    }

    pub fn dir(self, name: &str) -> Self {
        self.entry(name, EntryType::Directory, 0o755, "", b"")
    }

    pub fn symlink(self, name: &str, target: &str) -> Self {
        self.entry(name, EntryType::Symlink, 0o777, target, b"")
    }

    pub fn hardlink(self, name: &str, target: &str) -> Self {
        self.entry(name, EntryType::Link, 0o644, target, b"")
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.bytes.extend([0u8; 1024]);
        self.bytes
    }

    pub fn tgz(self) -> Vec<u8> {
        gz(&self.finish())
    }
}

pub fn gz(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// A zip built with the zip crate's writer.
pub struct ZipBuilder(zip::ZipWriter<Cursor<Vec<u8>>>);

pub fn zip_options(mode: u32) -> zip::write::SimpleFileOptions {
    zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(mode)
}

impl ZipBuilder {
    pub fn new() -> Self {
        ZipBuilder(zip::ZipWriter::new(Cursor::new(Vec::new())))
    }

    pub fn file_mode(mut self, name: &str, data: &[u8], mode: u32) -> Self {
        self.0.start_file(name, zip_options(mode)).unwrap();
        self.0.write_all(data).unwrap();
        self
    }

    pub fn file(self, name: &str, data: &[u8]) -> Self {
        self.file_mode(name, data, 0o644)
    }

    pub fn dir(mut self, name: &str) -> Self {
        self.0.add_directory(name, zip_options(0o755)).unwrap();
        self
    }

    pub fn symlink(mut self, name: &str, target: &str) -> Self {
        self.0.add_symlink(name, target, zip_options(0o777)).unwrap();
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.0.finish().unwrap().into_inner()
    }
}

/// Calls `f` with the offset of every local header (`PK\x03\x04`) and central-directory header
/// (`PK\x01\x02`) whose name is `name`, and whether it is the central one.
fn zip_headers(buf: &mut [u8], name: &str, mut f: impl FnMut(&mut [u8], usize, bool)) {
    let mut i = 0;
    while i + 46 <= buf.len() {
        let central = buf[i..].starts_with(b"PK\x01\x02");
        let local = buf[i..].starts_with(b"PK\x03\x04");
        if central || local {
            let (len_at, name_at) = if central { (28, 46) } else { (26, 30) };
            let len = u16::from_le_bytes([buf[i + len_at], buf[i + len_at + 1]]) as usize;
            if buf.get(i + name_at..i + name_at + len) == Some(name.as_bytes()) {
                f(buf, i, central);
            }
        }
        i += 1;
    }
}

/// Rewrites the unix mode (file type bits included) a zip stores for `name`.
pub fn zip_set_mode(buf: &mut [u8], name: &str, mode: u32) {
    zip_headers(buf, name, |buf, at, central| {
        if central {
            buf[at + 5] = 3; // made by: unix
            buf[at + 38..at + 42].copy_from_slice(&(mode << 16).to_le_bytes());
        }
    });
}

/// Sets the "encrypted" flag on `name`'s headers.
pub fn zip_set_encrypted(buf: &mut [u8], name: &str) {
    zip_headers(buf, name, |buf, at, central| {
        let flags_at = if central { at + 8 } else { at + 6 };
        buf[flags_at] |= 1;
    });
}

/// Sets the compression method of `name` (e.g. 12 = bzip2).
pub fn zip_set_method(buf: &mut [u8], name: &str, method: u16) {
    zip_headers(buf, name, |buf, at, central| {
        let method_at = if central { at + 10 } else { at + 8 };
        buf[method_at..method_at + 2].copy_from_slice(&method.to_le_bytes());
    });
}

/// Rewrites the uncompressed size `name`'s headers claim.
pub fn zip_set_size(buf: &mut [u8], name: &str, size: u32) {
    zip_headers(buf, name, |buf, at, central| {
        let size_at = if central { at + 24 } else { at + 22 };
        buf[size_at..size_at + 4].copy_from_slice(&size.to_le_bytes());
    });
}

/// Replaces every occurrence of `from` by `to` (same length), to give a zip entry a name the
/// writer would not accept.
pub fn replace_all(buf: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let mut found = false;
    let mut i = 0;
    while i + from.len() <= buf.len() {
        if &buf[i..i + from.len()] == from {
            buf[i..i + from.len()].copy_from_slice(to);
            found = true;
            i += from.len();
        } else {
            i += 1;
        }
    }
    assert!(found, "{} not found", String::from_utf8_lossy(from));
}

/// A temporary root holding the archive, the destination and a canary directory next to it:
/// `root/{archive, dest/, canary/keep.txt}`. After an extraction, [`Sandbox::assert_contained`]
/// checks that nothing but `dest` changed.
pub struct Sandbox {
    pub root: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        // tmpfs where there is one: creating files on this machine's disk costs ~0.4 ms each, and
        // the fuzz test extracts thousands of archives.
        let shm = Path::new("/dev/shm");
        let root = match shm.is_dir() {
            true => tempfile::tempdir_in(shm).or_else(|_| tempfile::tempdir()),
            false => tempfile::tempdir(),
        }
        .unwrap();
        fs::create_dir(root.path().join("canary")).unwrap();
        fs::write(root.path().join("canary/keep.txt"), b"canary").unwrap();
        Sandbox { root }
    }

    pub fn dest(&self) -> PathBuf {
        self.root.path().join("dest")
    }

    pub fn canary(&self) -> PathBuf {
        self.root.path().join("canary")
    }

    pub fn archive(&self) -> PathBuf {
        self.root.path().join("archive")
    }

    /// Extracts `bytes` into a fresh, empty `dest`.
    pub fn extract_with(&self, bytes: &[u8], caps: Caps) -> Result<Summary, ArchiveError> {
        fs::write(self.archive(), bytes).unwrap();
        let dest = self.dest();
        if dest.exists() {
            yun_archive::remove(&dest).unwrap();
        }
        fs::create_dir(&dest).unwrap();
        yun_archive::extract(&self.archive(), &dest, caps)
    }

    pub fn extract(&self, bytes: &[u8]) -> Result<Summary, ArchiveError> {
        self.extract_with(bytes, Caps::default())
    }

    /// Extracts, expecting an error, checks containment, and returns the error's message.
    pub fn reject(&self, bytes: &[u8]) -> (ArchiveError, String) {
        let err = self.extract(bytes).expect_err("the archive should have been refused");
        self.assert_contained();
        let msg = err.to_string();
        (err, msg)
    }

    /// Nothing but `dest` (and the archive) was touched.
    pub fn assert_contained(&self) {
        let mut names: Vec<String> = fs::read_dir(self.root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["archive", "canary", "dest"], "something was created next to dest");
        let canary: Vec<_> = fs::read_dir(self.canary()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(canary, ["keep.txt"], "something was created in the canary directory");
        assert_eq!(fs::read(self.canary().join("keep.txt")).unwrap(), b"canary");
        assert_eq!(
            fs::symlink_metadata(self.canary().join("keep.txt")).unwrap().permissions().mode() & 0o777,
            0o644
        );
        // And everything in dest is what the rules allow: no symlink leading out.
        check_tree(&self.dest(), &self.dest());
    }
}

/// Every symlink under `dir` resolves (if at all) to somewhere under `top`.
fn check_tree(top: &Path, dir: &Path) {
    let Ok(listing) = fs::read_dir(dir) else { return };
    let top = top.canonicalize().unwrap();
    for entry in listing {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            if let Ok(real) = path.canonicalize() {
                assert!(real.starts_with(&top), "{} leads out to {}", path.display(), real.display());
            }
            let target = fs::read_link(&path).unwrap();
            assert!(target.is_relative(), "{} -> {}", path.display(), target.display());
        } else if meta.is_dir() {
            check_tree(&top, &path);
        } else {
            assert!(meta.is_file(), "{} is a special file", path.display());
            let mode = meta.permissions().mode();
            assert_eq!(mode & 0o7000, 0, "{} has setuid/setgid/sticky", path.display());
        }
    }
}

pub fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

/// A tiny deterministic PRNG (xorshift64*), so fuzz-style tests need no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
