//! `.zip`: the zip crate reads the central directory and inflates entries; everything it yields
//! goes through the [`Extractor`]. Its own `extract` is not used.

use std::fs::File;
use std::io::{BufReader, Read};

use zip::CompressionMethod;
use zip::result::ZipError;

use crate::ArchiveError;
use crate::extractor::Extractor;
use crate::names::{self, MAX_PATH_BYTES, split_entry_name};

// File-type bits of a unix mode (`st_mode & S_IFMT`), as zip tools store them in the upper half of
// the external attributes.
const S_IFMT: u32 = 0o170000;
const S_IFSOCK: u32 = 0o140000;
const S_IFLNK: u32 = 0o120000;
const S_IFREG: u32 = 0o100000;
const S_IFBLK: u32 = 0o060000;
const S_IFDIR: u32 = 0o040000;
const S_IFCHR: u32 = 0o020000;
const S_IFIFO: u32 = 0o010000;

fn zip_error(e: ZipError) -> ArchiveError {
    match e {
        ZipError::UnsupportedArchive(detail) => ArchiveError::UnsupportedZip { detail: detail.to_string() },
        other => ArchiveError::Corrupt { detail: other.to_string() },
    }
}

fn read_error(e: std::io::Error) -> ArchiveError {
    ArchiveError::Corrupt { detail: e.to_string() }
}

pub(crate) fn extract(file: File, mut ex: Extractor<'_>) -> Result<crate::Summary, ArchiveError> {
    let mut zip = zip::ZipArchive::new(BufReader::with_capacity(64 * 1024, file)).map_err(zip_error)?;
    // The central directory is parsed up front (its size is bounded by the archive's), so the
    // entry count is known before anything is written.
    if zip.len() as u64 > ex.caps().max_entries {
        return Err(ArchiveError::TooManyEntries { max: ex.caps().max_entries });
    }
    if zip.has_duplicate_names() {
        // The zip crate keeps one of them; which one a given unzip tool keeps varies.
        return Err(ArchiveError::Corrupt { detail: "the central directory lists a name twice".into() });
    }
    for i in 0..zip.len() {
        ex.count_entry()?;
        let (raw, encrypted, method, mode, claimed) = {
            let meta = zip.by_index_data(i).map_err(zip_error)?;
            (meta.name_raw().to_vec(), meta.encrypted(), meta.compression(), meta.unix_mode(), meta.size())
        };
        let shown = names::shown(&raw);
        if encrypted {
            return Err(ArchiveError::Encrypted { path: shown });
        }
        let parts = split_entry_name(&raw, true)?;
        let file_type = mode.map_or(0, |m| m & S_IFMT);
        let named_dir = raw.ends_with(b"/") || raw.ends_with(b"\\");
        match file_type {
            S_IFDIR => {
                ex.dir(&parts, &shown)?;
                continue;
            }
            _ if named_dir && (file_type == 0 || file_type == S_IFREG) => {
                ex.dir(&parts, &shown)?;
                continue;
            }
            S_IFCHR | S_IFBLK => return Err(ArchiveError::SpecialFile { path: shown, kind: "device file" }),
            S_IFIFO => return Err(ArchiveError::SpecialFile { path: shown, kind: "fifo" }),
            S_IFSOCK => return Err(ArchiveError::SpecialFile { path: shown, kind: "socket" }),
            0 | S_IFREG | S_IFLNK => {}
            other => {
                return Err(ArchiveError::UnsupportedEntry {
                    path: shown,
                    kind: format!("unix mode {other:o}"),
                });
            }
        }
        if !matches!(method, CompressionMethod::Stored | CompressionMethod::Deflated) {
            return Err(ArchiveError::UnsupportedZip { detail: format!("entry `{shown}` uses {method}") });
        }
        let mut content = zip.by_index(i).map_err(zip_error)?;
        if file_type == S_IFLNK {
            // A unix symlink in a zip (`zip --symlinks`): the content is the target.
            let mut target = Vec::new();
            (&mut content).take(MAX_PATH_BYTES as u64 + 1).read_to_end(&mut target).map_err(read_error)?;
            ex.symlink(&parts, &shown, &target)?;
        } else {
            let executable = mode.is_some_and(|m| m & 0o111 != 0);
            ex.file(&parts, &shown, executable, claimed, &mut content, &read_error)?;
        }
    }
    Ok(ex.finish())
}
