//! Uploaded code archives for yun's process functions: detecting their format, unpacking them
//! safely into a fresh directory, sealing the result read-only, and packing a directory into a
//! deterministic `.tar.gz` for the CLI.
//!
//! Two formats are understood: gzip-compressed tar (`.tar.gz`, `.tgz`) and zip (stored and
//! deflated entries). The archive is untrusted input. [`extract`] never writes outside its
//! destination: entry names are checked before use, nothing is ever written through a symlink
//! (parents are directories this extraction made itself, files are opened with `O_EXCL` and
//! `O_NOFOLLOW`), symlinks must point inside, hard links must name a file extracted earlier, and
//! device files, fifos and sockets are refused. Sizes are enforced on the bytes actually written
//! (plus the decompressed stream as a whole), so a compression bomb is stopped after about
//! [`Caps::max_unpacked_bytes`], without first being inflated.
//!
//! What this crate is not: it is not a general archive tool. Ownership, timestamps, extended
//! attributes and permission bits other than "executable or not" are dropped on purpose (the
//! unpacked tree is [`seal`]ed read-only afterwards), uncompressed `.tar`, bzip2/xz/zstd and
//! encrypted zips are refused, and the calls are synchronous: async callers run them on
//! `spawn_blocking`. It also does not delete anything: on error the caller removes the partial
//! tree.

mod error;
mod extractor;
mod names;
mod pack;
mod seal;
mod targz;
mod zipfile;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

pub use error::ArchiveError;
pub use pack::pack_dir;
pub use seal::{remove, seal, unseal};

/// The archive formats [`extract`] understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    TarGz,
    Zip,
}

/// How many leading bytes [`detect`] needs to decide.
pub const DETECT_LEN: usize = 4;

/// Recognises an archive from its first bytes: the gzip magic `1f 8b`, or a zip local-file header
/// `PK\x03\x04` (an empty zip starts with its end-of-directory record, `PK\x05\x06`). `None` for
/// anything else, including uncompressed tar. Give it at least [`DETECT_LEN`] bytes.
pub fn detect(head: &[u8]) -> Option<Format> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Some(Format::TarGz)
    } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Some(Format::Zip)
    } else {
        None
    }
}

/// Below this many unpacked bytes the ratio cap is not applied: a small archive of text easily
/// compresses 100-fold or more and is harmless at that size.
pub const RATIO_FLOOR_BYTES: u64 = 1 << 20;

/// Limits on what one archive may unpack to.
#[derive(Clone, Copy, Debug)]
pub struct Caps {
    /// Total bytes of file content written (links and directories count nothing). Default 512 MiB.
    pub max_unpacked_bytes: u64,
    /// Archive entries plus directories created implicitly by a path (`a/b/c` where the archive
    /// has no `a/` entry), so that both the entry count and the number of things created on disk
    /// are bounded. Default 20,000.
    pub max_entries: u64,
    /// Unpacked bytes over archive size, enforced only once more than [`RATIO_FLOOR_BYTES`] have
    /// been written. Default 200 (source code typically compresses 3-10 times; a bomb thousands
    /// of times). `u64::MAX` turns it off.
    pub max_ratio: u64,
}

impl Default for Caps {
    fn default() -> Self {
        Caps { max_unpacked_bytes: 512 << 20, max_entries: 20_000, max_ratio: 200 }
    }
}

/// What [`extract`] created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Non-directories: regular files, hard links and symlinks.
    pub files: u64,
    /// Directories, including ones implied by a path; not the destination itself.
    pub dirs: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// Unpacks `archive` (format detected from its first bytes) into `dest`, which must exist and be
/// empty. Synchronous: async callers use `spawn_blocking`.
///
/// On error `dest` may hold a partial tree, which the caller deletes; nothing is ever written
/// outside `dest`. Files are created 0644, or 0755 when the archive marks them executable, and
/// directories 0755; call [`seal`] afterwards to make the tree read-only.
pub fn extract(archive: &Path, dest: &Path, caps: Caps) -> Result<Summary, ArchiveError> {
    let read_err = |source| ArchiveError::ReadArchive { path: archive.to_path_buf(), source };
    let mut file = File::open(archive).map_err(read_err)?;
    let archive_len = file.metadata().map_err(read_err)?.len();
    let mut head = [0u8; DETECT_LEN];
    let head_len = read_head(&mut file, &mut head).map_err(read_err)?;
    let format = detect(&head[..head_len]).ok_or(ArchiveError::UnknownFormat)?;
    check_destination(dest)?;
    // Both readers want the file from its start.
    file.seek(SeekFrom::Start(0)).map_err(read_err)?;
    let extractor = extractor::Extractor::new(dest, caps, archive_len);
    match format {
        Format::TarGz => targz::extract(file, extractor),
        Format::Zip => zipfile::extract(file, extractor),
    }
}

fn read_head(file: &mut File, head: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < head.len() {
        match file.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn check_destination(dest: &Path) -> Result<(), ArchiveError> {
    let bad = || ArchiveError::BadDestination { dest: dest.to_path_buf() };
    let meta = std::fs::metadata(dest).map_err(|_| bad())?;
    if !meta.is_dir() {
        return Err(bad());
    }
    // The extractor's picture of the tree starts empty; anything already there (above all a
    // symlink) would make that picture wrong.
    let mut listing = std::fs::read_dir(dest).map_err(|_| bad())?;
    if listing.next().is_some() {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats() {
        assert_eq!(detect(&[0x1f, 0x8b, 8, 0]), Some(Format::TarGz));
        assert_eq!(detect(b"PK\x03\x04"), Some(Format::Zip));
        assert_eq!(detect(b"PK\x05\x06"), Some(Format::Zip));
        assert_eq!(detect(b"PK\x07\x08"), None);
        assert_eq!(detect(b"ustar"), None);
        assert_eq!(detect(&[0x1f]), None);
        assert_eq!(detect(b""), None);
    }
}
