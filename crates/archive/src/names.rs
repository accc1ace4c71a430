//! Entry names and link targets: what is accepted, as pure functions over bytes.

use crate::ArchiveError;

/// Linux's PATH_MAX. Longer names could not be created anyway, and capping them keeps the memory
/// the extractor spends on names bounded.
pub(crate) const MAX_PATH_BYTES: usize = 4096;

/// How the archive spells a name, for messages.
pub(crate) fn shown(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

/// Splits an entry name into its normal components, refusing anything that could name a place
/// outside the destination. `.` and empty components (`a//b`, a trailing `/`) are dropped; the
/// result is empty for the top directory itself (`./`).
///
/// `backslash_separates`: zip archives made on Windows separate with `\` even though the format
/// says `/`; tar names are POSIX, where `\` is an ordinary character.
pub(crate) fn split_entry_name(raw: &[u8], backslash_separates: bool) -> Result<Vec<String>, ArchiveError> {
    let path = || shown(raw);
    if raw.len() > MAX_PATH_BYTES {
        return Err(ArchiveError::NameTooLong { path: path() });
    }
    if raw.contains(&0) {
        return Err(ArchiveError::NulInName { path: path() });
    }
    let name = std::str::from_utf8(raw).map_err(|_| ArchiveError::NonUtf8Name { path: path() })?;
    let is_sep = |c: char| c == '/' || (backslash_separates && c == '\\');
    if name.starts_with(is_sep) {
        return Err(ArchiveError::AbsolutePath { path: path() });
    }
    let mut parts = Vec::new();
    for part in name.split(is_sep) {
        match part {
            "" | "." => {}
            // Any `..` at all is refused, even one that would stay inside: no legitimate archive
            // tool writes them, and refusing them keeps the check obviously right.
            ".." => return Err(ArchiveError::ParentDir { path: path() }),
            _ => parts.push(part.to_owned()),
        }
    }
    Ok(parts)
}

/// Why a symlink target was refused; [`check_symlink_target`] callers turn it into an error that
/// names the link.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TargetProblem {
    Absolute,
    Escapes,
    Bad(&'static str),
}

/// Checks the target of a symlink at `link` (its normal components, as returned by
/// [`split_entry_name`]).
///
/// The rule: the target is relative, and `..` may appear only as leading components, no more of
/// them than the link has parent directories. So the target is "some ancestor directory of the
/// link, inside the destination, then only downward names". Why this and not "lexically
/// normalises to somewhere inside": `a/..` is not `.` when `a` is itself a symlink (the kernel
/// resolves `a` first), and `a` may be created by a later entry, so a lexical check would pass
/// `x -> sub/link/..` whose real meaning escapes. With only downward names after the climb, every
/// step stays inside: a downward name is a real directory the extractor made, or a symlink
/// checked by this same rule (entries are never written through symlinks, so the link's own
/// parents are real directories).
pub(crate) fn check_symlink_target(link: &[String], target: &[u8]) -> Result<(), TargetProblem> {
    if target.is_empty() {
        return Err(TargetProblem::Bad("it is empty"));
    }
    if target.len() > MAX_PATH_BYTES {
        return Err(TargetProblem::Bad("it is longer than 4096 bytes"));
    }
    if target.contains(&0) {
        return Err(TargetProblem::Bad("it contains a NUL byte"));
    }
    let target = std::str::from_utf8(target).map_err(|_| TargetProblem::Bad("it is not valid UTF-8"))?;
    if target.starts_with('/') {
        return Err(TargetProblem::Absolute);
    }
    // The link's own directory is `link` minus its last component.
    let depth = link.len().saturating_sub(1);
    let mut climbed = 0;
    let mut descended = false;
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." if descended => return Err(TargetProblem::Escapes),
            ".." => {
                climbed += 1;
                if climbed > depth {
                    return Err(TargetProblem::Escapes);
                }
            }
            _ => descended = true,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> Result<Vec<String>, ArchiveError> {
        split_entry_name(s.as_bytes(), false)
    }

    fn parts(s: &str) -> Vec<String> {
        split(s).unwrap()
    }

    #[test]
    fn entry_names() {
        assert_eq!(parts("a/b/c.txt"), ["a", "b", "c.txt"]);
        assert_eq!(parts("./a//b/"), ["a", "b"]);
        assert!(parts("./").is_empty());
        assert_eq!(parts("a\\b"), ["a\\b"]);
        assert_eq!(split_entry_name(b"a\\b", true).unwrap(), ["a", "b"]);
        assert!(matches!(split("/etc/passwd"), Err(ArchiveError::AbsolutePath { .. })));
        assert!(matches!(split_entry_name(b"\\x", true), Err(ArchiveError::AbsolutePath { .. })));
        assert!(matches!(split("a/../b"), Err(ArchiveError::ParentDir { .. })));
        assert!(matches!(split(".."), Err(ArchiveError::ParentDir { .. })));
        assert!(matches!(split_entry_name(b"a\0b", false), Err(ArchiveError::NulInName { .. })));
        assert!(matches!(split_entry_name(b"a\xffb", false), Err(ArchiveError::NonUtf8Name { .. })));
        let long = "a/".repeat(2049);
        assert!(matches!(split(&long), Err(ArchiveError::NameTooLong { .. })));
    }

    #[test]
    fn symlink_targets() {
        let link = |s: &str| parts(s);
        assert_eq!(check_symlink_target(&link("a"), b"b"), Ok(()));
        assert_eq!(check_symlink_target(&link("a"), b"./b/c"), Ok(()));
        assert_eq!(check_symlink_target(&link("x/a"), b"../b"), Ok(()));
        assert_eq!(check_symlink_target(&link("x/y/a"), b"../../b"), Ok(()));
        assert_eq!(check_symlink_target(&link("a"), b"."), Ok(()));
        assert_eq!(check_symlink_target(&link("a"), b"../b"), Err(TargetProblem::Escapes));
        assert_eq!(check_symlink_target(&link("x/a"), b"../../b"), Err(TargetProblem::Escapes));
        assert_eq!(check_symlink_target(&link("x/a"), b"b/../c"), Err(TargetProblem::Escapes));
        assert_eq!(check_symlink_target(&link("a"), b"/etc"), Err(TargetProblem::Absolute));
        assert!(matches!(check_symlink_target(&link("a"), b""), Err(TargetProblem::Bad(_))));
        assert!(matches!(check_symlink_target(&link("a"), b"\xff"), Err(TargetProblem::Bad(_))));
    }
}
