//! Why an archive was refused or could not be unpacked or packed.

use std::io;
use std::path::PathBuf;

/// Every way [`extract`](crate::extract) and [`pack_dir`](crate::pack_dir) can fail. Each rejection
/// reason is its own variant, and each message names the offending entry and says what would be
/// accepted instead, because it ends up in front of the user who uploaded the code.
///
/// Entry paths and link targets are shown as the archive spells them (lossily decoded when they
/// are not UTF-8).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    // --- the archive as a whole ---
    #[error("the upload is neither a .tar.gz nor a .zip archive")]
    UnknownFormat,
    #[error("the archive is corrupt or truncated: {detail}")]
    Corrupt { detail: String },
    #[error("the zip archive is not supported: {detail} (only stored and deflated entries are)")]
    UnsupportedZip { detail: String },
    #[error("zip entry `{path}` is encrypted; upload an archive made without a password")]
    Encrypted { path: String },
    #[error("the archive has more than {max} entries (files, directories and links)")]
    TooManyEntries { max: u64 },
    #[error("the archive unpacks to more than {}", human_bytes(*.max))]
    TooLarge { max: u64 },
    #[error(
        "the archive unpacks to more than {max_ratio} times its own size, which looks like a \
         compression bomb"
    )]
    RatioExceeded { max_ratio: u64 },
    #[error(
        "a tar header in the archive (long name or pax extension data) is larger than {}",
        human_bytes(*.max)
    )]
    OversizedHeader { max: u64 },

    // --- entry names ---
    #[error("archive entry `{path}` has an absolute path; entries must be relative to the code directory")]
    AbsolutePath { path: String },
    #[error("archive entry `{path}` escapes the code directory (`..` is not allowed in entry names)")]
    ParentDir { path: String },
    #[error("archive entry `{path}` has an empty name")]
    EmptyName { path: String },
    #[error("archive entry `{path}` has a name that is not valid UTF-8")]
    NonUtf8Name { path: String },
    #[error("archive entry `{path}` has a NUL byte in its name")]
    NulInName { path: String },
    #[error("archive entry `{path}` has a name longer than {max} bytes", max = crate::names::MAX_PATH_BYTES)]
    NameTooLong { path: String },

    // --- how entries fit together ---
    #[error(
        "archive entry `{path}` would be written through the symlink `{link}`; entries may not be \
         placed inside a symlink the archive itself created"
    )]
    ThroughSymlink { path: String, link: String },
    #[error("archive entry `{path}` needs `{parent}` to be a directory, but the archive made it a file")]
    ParentNotDir { path: String, parent: String },
    #[error("archive entry `{path}` would replace a {existing} with a {new}")]
    TypeConflict { path: String, existing: &'static str, new: &'static str },
    #[error("archive entry `{path}` appears more than once")]
    Duplicate { path: String },

    // --- links and special files ---
    #[error(
        "symlink `{path}` points to the absolute path `{target}`; symlinks must be relative and \
         stay inside the code directory"
    )]
    SymlinkAbsolute { path: String, target: String },
    #[error(
        "symlink `{path}` -> `{target}` may point outside the code directory (a target may climb \
         only with leading `..`, and not above the top)"
    )]
    SymlinkEscapes { path: String, target: String },
    #[error("symlink `{path}` has an unusable target: {reason}")]
    SymlinkBadTarget { path: String, reason: &'static str },
    #[error("hard link `{path}` points to `{target}`, outside the code directory")]
    HardLinkEscapes { path: String, target: String },
    #[error(
        "hard link `{path}` points to `{target}`, which is not a regular file extracted earlier in \
         the archive"
    )]
    HardLinkTarget { path: String, target: String },
    #[error(
        "archive entry `{path}` is a {kind}; only regular files, directories and links can be \
         deployed"
    )]
    SpecialFile { path: String, kind: &'static str },
    #[error("archive entry `{path}` has an unsupported type ({kind})")]
    UnsupportedEntry { path: String, kind: String },

    // --- the machine side ---
    #[error("the destination `{}` must be an existing, empty directory", .dest.display())]
    BadDestination { dest: PathBuf },
    #[error("could not read the archive `{}`: {source}", .path.display())]
    ReadArchive { path: PathBuf, source: io::Error },
    #[error("could not write `{}`: {source}", .path.display())]
    Write { path: PathBuf, source: io::Error },

    // --- packing a directory ---
    #[error("cannot pack `{}`: it is not a directory", .path.display())]
    PackNotDir { path: PathBuf },
    #[error(
        "cannot pack `{}`: it is a {kind}; only regular files, directories and symlinks can be \
         deployed",
        .path.display()
    )]
    PackSpecialFile { path: PathBuf, kind: &'static str },
    #[error("cannot pack `{}`: its name is not valid UTF-8", .path.display())]
    PackNonUtf8 { path: PathBuf },
    #[error("cannot pack `{}`: it changed while it was being packed", .path.display())]
    PackChanged { path: PathBuf },
    #[error("cannot pack `{}`: {source}", .path.display())]
    PackIo { path: PathBuf, source: io::Error },
    #[error("could not write the packed archive: {0}")]
    PackOutput(#[source] io::Error),
}

/// `512 MiB` rather than `536870912 bytes`: limits are round binary sizes, and users compare them
/// with what `du -h` shows.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if n >= size && n.is_multiple_of(size) {
            return format!("{} {unit}", n / size);
        }
    }
    for (unit, size) in UNITS {
        if n >= size {
            return format!("{:.1} {unit}", n as f64 / size as f64);
        }
    }
    format!("{n} bytes")
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_read_like_du() {
        assert_eq!(human_bytes(512 << 20), "512 MiB");
        assert_eq!(human_bytes(1 << 30), "1 GiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(100), "100 bytes");
    }
}
