//! Packing a directory into the `.tar.gz` the CLI uploads.
//!
//! The output depends only on the tree's names, contents, executable bits and symlink targets, so
//! the same code packs to the same bytes on any machine (and a deploy can be recognised as
//! unchanged by hashing the upload). Everything [`extract`](crate::extract) would refuse is refused
//! here already, with the local path in the message, so a deploy fails before it uploads.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder};
use tar::{EntryType, Header};

use crate::ArchiveError;
use crate::names::{self, TargetProblem};

/// Packs the contents of `dir` (entry names relative to it, `dir` itself not included) into a
/// deterministic `.tar.gz` written to `out`: entries in name order with each directory before its
/// contents, mtime 0, uid/gid 0, no user or group names, modes 0755 for directories and executable
/// files and 0644 for other files. Symlinks are kept as symlinks and must be relative and point
/// inside `dir`; fifos, sockets and device files are refused. Nothing else is skipped (no
/// ignore files: the CLI decides what directory to pack).
pub fn pack_dir(dir: &Path, out: impl Write) -> Result<(), ArchiveError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ArchiveError::PackIo { path, source }
    };
    let meta = fs::metadata(dir).map_err(io_err(dir))?;
    if !meta.is_dir() {
        return Err(ArchiveError::PackNotDir { path: dir.to_path_buf() });
    }
    // Fixed header: no mtime, no file name, OS "unknown", so the bytes do not depend on the host.
    let gz = GzBuilder::new().mtime(0).operating_system(255).write(out, Compression::default());
    let mut tar = tar::Builder::new(gz);

    // Depth-first, each directory's children sorted by name, pushed in reverse so they pop in order.
    let mut stack: Vec<(PathBuf, Vec<String>)> = children(dir, &[])?;
    stack.reverse();
    while let Some((path, parts)) = stack.pop() {
        let name = parts.join("/");
        let meta = fs::symlink_metadata(&path).map_err(io_err(&path))?;
        let ft = meta.file_type();
        if ft.is_dir() {
            let mut header = header(EntryType::Directory, 0o755, 0);
            tar.append_data(&mut header, format!("{name}/"), io::empty())
                .map_err(ArchiveError::PackOutput)?;
            let mut kids = children(&path, &parts)?;
            kids.reverse();
            stack.extend(kids);
        } else if ft.is_file() {
            let (file, size, executable) = open_regular(&path)?;
            let mode = if executable { 0o755 } else { 0o644 };
            let mut header = header(EntryType::Regular, mode, size);
            let mut content = Exact { inner: file.take(size), left: size, changed: false };
            let result = tar.append_data(&mut header, &name, &mut content);
            if content.changed {
                return Err(ArchiveError::PackChanged { path });
            }
            result.map_err(ArchiveError::PackOutput)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&path).map_err(io_err(&path))?;
            let target_bytes = std::os::unix::ffi::OsStrExt::as_bytes(target.as_os_str());
            let shown = name.clone();
            match names::check_symlink_target(&parts, target_bytes) {
                Ok(()) => {}
                Err(TargetProblem::Absolute) => {
                    return Err(ArchiveError::SymlinkAbsolute {
                        path: shown,
                        target: names::shown(target_bytes),
                    });
                }
                Err(TargetProblem::Escapes) => {
                    return Err(ArchiveError::SymlinkEscapes {
                        path: shown,
                        target: names::shown(target_bytes),
                    });
                }
                Err(TargetProblem::Bad(reason)) => {
                    return Err(ArchiveError::SymlinkBadTarget { path: shown, reason });
                }
            }
            let mut header = header(EntryType::Symlink, 0o777, 0);
            tar.append_link(&mut header, &name, &target).map_err(ArchiveError::PackOutput)?;
        } else {
            let kind = if ft.is_fifo() {
                "fifo"
            } else if ft.is_socket() {
                "socket"
            } else if ft.is_block_device() || ft.is_char_device() {
                "device file"
            } else {
                "special file"
            };
            return Err(ArchiveError::PackSpecialFile { path, kind });
        }
    }
    let gz = tar.into_inner().map_err(ArchiveError::PackOutput)?;
    let mut out = gz.finish().map_err(ArchiveError::PackOutput)?;
    out.flush().map_err(ArchiveError::PackOutput)
}

/// The children of `dir`, sorted by name, with their archive name components.
fn children(dir: &Path, parts: &[String]) -> Result<Vec<(PathBuf, Vec<String>)>, ArchiveError> {
    let io_err = |source| ArchiveError::PackIo { path: dir.to_path_buf(), source };
    let mut kids = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        let path = entry.path();
        let Ok(name) = entry.file_name().into_string() else {
            return Err(ArchiveError::PackNonUtf8 { path });
        };
        let mut child = parts.to_vec();
        child.push(name);
        kids.push((path, child));
    }
    kids.sort_by(|a, b| a.1.last().cmp(&b.1.last()));
    Ok(kids)
}

/// Opens a regular file without following a symlink swapped in since it was listed, and checks
/// that it is still a regular file.
fn open_regular(path: &Path) -> Result<(File, u64, bool), ArchiveError> {
    let io_err = |source| ArchiveError::PackIo { path: path.to_path_buf(), source };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if !meta.is_file() {
        return Err(ArchiveError::PackChanged { path: path.to_path_buf() });
    }
    Ok((file, meta.len(), meta.permissions().mode() & 0o111 != 0))
}

fn header(kind: EntryType, mode: u32, size: u64) -> Header {
    let mut header = Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header
}

/// Yields exactly `left` bytes or fails: the tar header already holds the size, so a file that
/// shrinks while it is read would otherwise leave a short entry and a corrupt archive. (Growth is
/// cut off by the `take`.)
struct Exact<R> {
    inner: R,
    left: u64,
    changed: bool,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            self.changed = true;
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while being packed"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}
