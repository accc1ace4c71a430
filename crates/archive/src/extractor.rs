//! The format-independent half of extraction: placing checked entries on disk, and the caps.
//!
//! The extractor keeps its own picture of the tree it has made (the destination starts empty and
//! nothing else writes there), and decides from that picture alone whether a path may be created:
//! every parent must be a directory it made itself, never a symlink or a file. The filesystem
//! calls then back this up on their own: directories are made one level at a time with `mkdir`
//! (which fails on anything already there, symlinks included), files are opened with `O_EXCL`
//! and `O_NOFOLLOW`, and `symlink`/`link` refuse existing names. So even if the picture were wrong,
//! an entry could fail but never land somewhere else.

use std::collections::HashMap;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::names::{self, TargetProblem};
use crate::{ArchiveError, Caps, RATIO_FLOOR_BYTES, Summary};

const ROOT: usize = 0;
const COPY_BUF: usize = 64 * 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Symlink,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Dir => "directory",
            Kind::File => "file",
            Kind::Symlink => "symlink",
        }
    }
}

struct Node {
    kind: Kind,
    /// Only directories have children. One name per node (not full paths) keeps memory linear in
    /// the number of things created, however deep they are.
    children: HashMap<Box<str>, usize>,
}

pub(crate) struct Extractor<'a> {
    dest: &'a Path,
    caps: Caps,
    archive_len: u64,
    nodes: Vec<Node>,
    entries: u64,
    summary: Summary,
    buf: Vec<u8>,
}

/// Where a new entry goes: its parent node and full path.
struct Slot {
    parent: usize,
    path: PathBuf,
}

impl<'a> Extractor<'a> {
    pub(crate) fn new(dest: &'a Path, caps: Caps, archive_len: u64) -> Self {
        Extractor {
            dest,
            caps,
            archive_len,
            nodes: vec![Node { kind: Kind::Dir, children: HashMap::new() }],
            entries: 0,
            summary: Summary::default(),
            buf: Vec::new(),
        }
    }

    pub(crate) fn caps(&self) -> Caps {
        self.caps
    }

    pub(crate) fn finish(self) -> Summary {
        self.summary
    }

    /// Counts one more entry (or implied directory) against [`Caps::max_entries`].
    pub(crate) fn count_entry(&mut self) -> Result<(), ArchiveError> {
        self.entries += 1;
        if self.entries > self.caps.max_entries {
            return Err(ArchiveError::TooManyEntries { max: self.caps.max_entries });
        }
        Ok(())
    }

    /// Checks that `bytes` unpacked bytes in total would still be within the caps.
    fn check_total(&self, bytes: u64) -> Result<(), ArchiveError> {
        if bytes > self.caps.max_unpacked_bytes {
            return Err(ArchiveError::TooLarge { max: self.caps.max_unpacked_bytes });
        }
        if bytes > RATIO_FLOOR_BYTES && bytes > self.archive_len.saturating_mul(self.caps.max_ratio) {
            return Err(ArchiveError::RatioExceeded { max_ratio: self.caps.max_ratio });
        }
        Ok(())
    }

    /// Finds (creating missing parent directories) where `parts` goes. `None` when it names a
    /// directory that already exists and `new` is a directory too, which archives do routinely
    /// (`a/b` listed before `a/`).
    fn slot(&mut self, parts: &[String], shown: &str, new: Kind) -> Result<Option<Slot>, ArchiveError> {
        let Some((last, parents)) = parts.split_last() else {
            return Err(ArchiveError::EmptyName { path: shown.to_owned() });
        };
        let mut node = ROOT;
        let mut path = self.dest.to_path_buf();
        for (i, part) in parents.iter().enumerate() {
            path.push(part);
            match self.nodes[node].children.get(part.as_str()).copied() {
                Some(child) => match self.nodes[child].kind {
                    Kind::Dir => node = child,
                    Kind::File => {
                        return Err(ArchiveError::ParentNotDir {
                            path: shown.to_owned(),
                            parent: parts[..=i].join("/"),
                        });
                    }
                    Kind::Symlink => {
                        return Err(ArchiveError::ThroughSymlink {
                            path: shown.to_owned(),
                            link: parts[..=i].join("/"),
                        });
                    }
                },
                None => {
                    self.count_entry()?;
                    make_dir(&path)?;
                    node = self.add(node, part, Kind::Dir);
                }
            }
        }
        path.push(last);
        match self.nodes[node].children.get(last.as_str()).copied() {
            None => Ok(Some(Slot { parent: node, path })),
            Some(existing) => match (self.nodes[existing].kind, new) {
                (Kind::Dir, Kind::Dir) => Ok(None),
                (existing, new) if existing == Kind::Dir || new == Kind::Dir => {
                    Err(ArchiveError::TypeConflict {
                        path: shown.to_owned(),
                        existing: existing.noun(),
                        new: new.noun(),
                    })
                }
                _ => Err(ArchiveError::Duplicate { path: shown.to_owned() }),
            },
        }
    }

    fn add(&mut self, parent: usize, name: &str, kind: Kind) -> usize {
        let id = self.nodes.len();
        self.nodes.push(Node { kind, children: HashMap::new() });
        self.nodes[parent].children.insert(name.into(), id);
        if kind == Kind::Dir {
            self.summary.dirs += 1;
        } else {
            self.summary.files += 1;
        }
        id
    }

    pub(crate) fn dir(&mut self, parts: &[String], shown: &str) -> Result<(), ArchiveError> {
        if parts.is_empty() {
            // `./`: the destination itself.
            return Ok(());
        }
        if let Some(slot) = self.slot(parts, shown, Kind::Dir)? {
            make_dir(&slot.path)?;
            self.add(slot.parent, last(parts), Kind::Dir);
        }
        Ok(())
    }

    /// Writes a regular file from `content`, which should yield `claimed` bytes. Read errors go
    /// through `read_error`, which knows what they mean for this format.
    pub(crate) fn file(
        &mut self,
        parts: &[String],
        shown: &str,
        executable: bool,
        claimed: u64,
        content: &mut dyn Read,
        read_error: &dyn Fn(io::Error) -> ArchiveError,
    ) -> Result<(), ArchiveError> {
        // The header's claim is checked first so that an oversized entry is refused before any of
        // it is inflated; the bytes actually written are counted below all the same, since the
        // claim (in a zip) may lie.
        self.check_total(self.summary.bytes.saturating_add(claimed))?;
        let Some(slot) = self.slot(parts, shown, Kind::File)? else {
            return Err(ArchiveError::TypeConflict {
                path: shown.to_owned(),
                existing: Kind::Dir.noun(),
                new: Kind::File.noun(),
            });
        };
        let write_err = |source| ArchiveError::Write { path: slot.path.clone(), source };
        // Only "executable or not" survives from the archive's mode: never setuid, setgid or
        // sticky, and never group/world-writable.
        let mode = if executable { 0o755 } else { 0o644 };
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&slot.path)
            .map_err(write_err)?;
        self.add(slot.parent, last(parts), Kind::File);
        if self.buf.is_empty() {
            self.buf = vec![0; COPY_BUF];
        }
        let mut written: u64 = 0;
        loop {
            let n = match content.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_error(e)),
            };
            // Checked before the write, so nothing past the cap ever reaches the disk.
            let total = self.summary.bytes + n as u64;
            self.check_total(total)?;
            out.write_all(&self.buf[..n]).map_err(write_err)?;
            self.summary.bytes = total;
            written += n as u64;
        }
        if written != claimed {
            return Err(ArchiveError::Corrupt {
                detail: format!("entry `{shown}` holds {written} bytes but its header says {claimed}"),
            });
        }
        Ok(())
    }

    pub(crate) fn symlink(
        &mut self,
        parts: &[String],
        shown: &str,
        target: &[u8],
    ) -> Result<(), ArchiveError> {
        let path = || shown.to_owned();
        match names::check_symlink_target(parts, target) {
            Ok(()) => {}
            Err(TargetProblem::Absolute) => {
                return Err(ArchiveError::SymlinkAbsolute { path: path(), target: names::shown(target) });
            }
            Err(TargetProblem::Escapes) => {
                return Err(ArchiveError::SymlinkEscapes { path: path(), target: names::shown(target) });
            }
            Err(TargetProblem::Bad(reason)) => {
                return Err(ArchiveError::SymlinkBadTarget { path: path(), reason });
            }
        }
        let target = std::str::from_utf8(target).expect("checked above");
        let Some(slot) = self.slot(parts, shown, Kind::Symlink)? else {
            return Err(ArchiveError::TypeConflict {
                path: path(),
                existing: Kind::Dir.noun(),
                new: Kind::Symlink.noun(),
            });
        };
        std::os::unix::fs::symlink(target, &slot.path)
            .map_err(|source| ArchiveError::Write { path: slot.path.clone(), source })?;
        self.add(slot.parent, last(parts), Kind::Symlink);
        Ok(())
    }

    /// A hard link to `target`, an archive path (not relative to the link) that must name a
    /// regular file extracted earlier.
    pub(crate) fn hard_link(
        &mut self,
        parts: &[String],
        shown: &str,
        target: &[u8],
    ) -> Result<(), ArchiveError> {
        let escapes =
            || ArchiveError::HardLinkEscapes { path: shown.to_owned(), target: names::shown(target) };
        let not_file =
            || ArchiveError::HardLinkTarget { path: shown.to_owned(), target: names::shown(target) };
        let target_parts = match names::split_entry_name(target, false) {
            Ok(p) => p,
            Err(ArchiveError::AbsolutePath { .. } | ArchiveError::ParentDir { .. }) => return Err(escapes()),
            Err(_) => return Err(not_file()),
        };
        if self.lookup(&target_parts) != Some(Kind::File) {
            return Err(not_file());
        }
        let Some(slot) = self.slot(parts, shown, Kind::File)? else {
            return Err(ArchiveError::TypeConflict {
                path: shown.to_owned(),
                existing: Kind::Dir.noun(),
                new: Kind::File.noun(),
            });
        };
        let source: PathBuf = target_parts.iter().fold(self.dest.to_path_buf(), |p, c| p.join(c));
        // link(2) does not follow a symlink in the source, and the picture says it is a file we
        // wrote, reached only through directories we made.
        fs::hard_link(&source, &slot.path)
            .map_err(|source| ArchiveError::Write { path: slot.path.clone(), source })?;
        self.add(slot.parent, last(parts), Kind::File);
        Ok(())
    }

    /// What `parts` names in the tree made so far, without passing through anything but
    /// directories.
    fn lookup(&self, parts: &[String]) -> Option<Kind> {
        let mut node = ROOT;
        for part in parts {
            if self.nodes[node].kind != Kind::Dir {
                return None;
            }
            node = *self.nodes[node].children.get(part.as_str())?;
        }
        (node != ROOT).then(|| self.nodes[node].kind)
    }
}

fn last(parts: &[String]) -> &str {
    parts.last().map(String::as_str).unwrap_or_default()
}

fn make_dir(path: &Path) -> Result<(), ArchiveError> {
    // mkdir(2) fails on any existing name, a symlink included, so this never follows one.
    DirBuilder::new()
        .mode(0o755)
        .create(path)
        .map_err(|source| ArchiveError::Write { path: path.to_path_buf(), source })
}
