//! `pack_dir`: deterministic output, and a byte-identical round trip through `extract`.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use common::*;
use yun_archive::{ArchiveError, Caps};

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A source tree with a bit of everything `pack_dir` keeps.
fn source_tree(dir: &Path) {
    fs::create_dir_all(dir.join("src/handlers/nested")).unwrap();
    fs::create_dir_all(dir.join("empty")).unwrap();
    fs::write(dir.join("run.sh"), "#!/bin/sh\nexec ./bin/app\n").unwrap();
    set_mode(&dir.join("run.sh"), 0o700); // any x bit counts
    fs::write(dir.join("src/main.js"), "console.log('hi')\n").unwrap();
    set_mode(&dir.join("src/main.js"), 0o600);
    fs::write(
        dir.join("src/handlers/nested/big.bin"),
        (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    fs::write(dir.join("src/handlers/B.txt"), "upper").unwrap();
    fs::write(dir.join("src/handlers/a.txt"), "lower").unwrap();
    fs::write(dir.join("empty.txt"), "").unwrap();
    let long_dir = dir.join("l".repeat(90)).join("m".repeat(90));
    fs::create_dir_all(&long_dir).unwrap();
    fs::write(long_dir.join("long-name.txt"), "long").unwrap();
    symlink("src/main.js", dir.join("entry.js")).unwrap();
    symlink("../main.js", dir.join("src/handlers/up.js")).unwrap();
    symlink("nested", dir.join("src/handlers/dirlink")).unwrap();
    symlink("does-not-exist", dir.join("dangling")).unwrap();
    symlink(format!("{}/{}/long-name.txt", "l".repeat(90), "m".repeat(90)), dir.join("longlink")).unwrap();
}

/// Kind, content, executable bit and link target of everything under `dir`, in a stable order.
fn describe(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut kids: Vec<_> = fs::read_dir(&d).unwrap().map(|e| e.unwrap().path()).collect();
        kids.sort();
        for path in kids {
            let rel = path.strip_prefix(dir).unwrap().display().to_string();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                out.push(format!("L {rel} -> {}", fs::read_link(&path).unwrap().display()));
            } else if meta.is_dir() {
                out.push(format!("D {rel}"));
                stack.push(path);
            } else {
                let x = meta.permissions().mode() & 0o111 != 0;
                let content = fs::read(&path).unwrap();
                out.push(format!("F {rel} x={x} {} {:x}", content.len(), simple_hash(&content)));
            }
        }
    }
    out.sort();
    out
}

fn simple_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

fn pack(dir: &Path) -> Result<Vec<u8>, ArchiveError> {
    let mut out = Vec::new();
    yun_archive::pack_dir(dir, &mut out)?;
    Ok(out)
}

#[test]
fn round_trip_is_identical_and_deterministic() {
    let src = tempfile::tempdir().unwrap();
    source_tree(src.path());
    let first = pack(src.path()).unwrap();
    let second = pack(src.path()).unwrap();
    assert_eq!(first, second, "packing twice gives the same bytes");

    // Another copy of the same tree, made in a different order at a different time, packs the same.
    let other = tempfile::tempdir().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    source_tree(other.path());
    assert_eq!(pack(other.path()).unwrap(), first, "independent of mtimes and the directory's own path");

    let sb = Sandbox::new();
    let summary = sb.extract(&first).unwrap();
    sb.assert_contained();
    assert_eq!(describe(&sb.dest()), describe(src.path()));
    // Dirs: empty, src, handlers, nested, l.., m..; files: 7 regular + 5 symlinks.
    assert_eq!((summary.files, summary.dirs), (12, 6));
    assert_eq!(mode_of(&sb.dest().join("run.sh")), 0o755);
    assert_eq!(mode_of(&sb.dest().join("src/main.js")), 0o644);

    // Repacking the extracted tree gives the same archive again.
    assert_eq!(pack(&sb.dest()).unwrap(), first);
}

#[test]
fn headers_carry_nothing_host_specific() {
    let src = tempfile::tempdir().unwrap();
    source_tree(src.path());
    let bytes = pack(src.path()).unwrap();
    assert_eq!(bytes[4..8], [0, 0, 0, 0], "gzip mtime");
    assert_eq!(bytes[9], 255, "gzip OS: unknown");
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut tar).unwrap();
    let mut archive = tar::Archive::new(&tar[..]);
    let mut names = Vec::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let h = entry.header();
        assert_eq!(h.mtime().unwrap(), 0);
        assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
        assert_eq!(h.username_bytes(), Some(&b""[..]));
        assert_eq!(h.groupname_bytes(), Some(&b""[..]));
        let mode = h.mode().unwrap();
        match h.entry_type() {
            tar::EntryType::Directory => assert_eq!(mode, 0o755),
            tar::EntryType::Regular => assert!(mode == 0o644 || mode == 0o755, "{mode:o}"),
            tar::EntryType::Symlink => {}
            other => panic!("unexpected {other:?}"),
        }
        names.push(String::from_utf8(entry.path_bytes().into_owned()).unwrap());
    }
    // Name order, each directory before what it holds (`B` sorts before `a`: bytes, not locale).
    let pos = |n: &str| names.iter().position(|x| x == n).unwrap_or_else(|| panic!("{n} in {names:?}"));
    assert!(pos("src/") < pos("src/handlers/"));
    assert!(pos("src/handlers/") < pos("src/handlers/B.txt"));
    assert!(pos("src/handlers/B.txt") < pos("src/handlers/a.txt"));
    assert!(pos("src/handlers/a.txt") < pos("src/handlers/dirlink"));
    assert!(pos("empty/") < pos("empty.txt"), "components compare as names, not as paths with `/`");
    assert_eq!(names[0], "dangling");
}

#[test]
fn empty_directory_packs_to_an_empty_archive() {
    let src = tempfile::tempdir().unwrap();
    let bytes = pack(src.path()).unwrap();
    let sb = Sandbox::new();
    assert_eq!(sb.extract(&bytes).unwrap(), yun_archive::Summary::default());
}

#[test]
fn symlinks_leading_out_are_refused() {
    let src = tempfile::tempdir().unwrap();
    fs::create_dir(src.path().join("sub")).unwrap();
    symlink("/etc/passwd", src.path().join("sub/abs")).unwrap();
    let err = pack(src.path()).unwrap_err();
    assert!(matches!(err, ArchiveError::SymlinkAbsolute { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "symlink `sub/abs` points to the absolute path `/etc/passwd`; symlinks must be relative and stay \
         inside the code directory"
    );
    fs::remove_file(src.path().join("sub/abs")).unwrap();
    symlink("../../outside", src.path().join("sub/rel")).unwrap();
    let err = pack(src.path()).unwrap_err();
    assert!(matches!(err, ArchiveError::SymlinkEscapes { .. }), "{err:?}");
    assert!(err.to_string().starts_with("symlink `sub/rel` -> `../../outside` may point outside"), "{err}");
}

#[test]
fn special_files_are_refused() {
    let src = tempfile::tempdir().unwrap();
    let sock = src.path().join("app.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let err = pack(src.path()).unwrap_err();
    assert!(matches!(err, ArchiveError::PackSpecialFile { kind: "socket", .. }), "{err:?}");
    assert!(
        err.to_string()
            .ends_with("it is a socket; only regular files, directories and symlinks can be deployed")
    );
    fs::remove_file(&sock).unwrap();

    let fifo = std::ffi::CString::new(src.path().join("pipe").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let err = pack(src.path()).unwrap_err();
    assert!(matches!(err, ArchiveError::PackSpecialFile { kind: "fifo", .. }), "{err:?}");
}

#[test]
fn not_a_directory_and_non_utf8_names_are_refused() {
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("f"), "x").unwrap();
    let err = pack(&src.path().join("f")).unwrap_err();
    assert!(matches!(err, ArchiveError::PackNotDir { .. }), "{err:?}");
    let err = pack(&src.path().join("missing")).unwrap_err();
    assert!(matches!(err, ArchiveError::PackIo { .. }), "{err:?}");

    use std::os::unix::ffi::OsStrExt;
    fs::write(src.path().join(std::ffi::OsStr::from_bytes(b"caf\xe9")), "x").unwrap();
    let err = pack(src.path()).unwrap_err();
    assert!(matches!(err, ArchiveError::PackNonUtf8 { .. }), "{err:?}");
    assert!(err.to_string().ends_with("its name is not valid UTF-8"), "{err}");
}

#[test]
fn packed_archives_respect_default_caps() {
    // What the CLI packs is what the server accepts: a tree of many small files.
    let src = tempfile::tempdir().unwrap();
    for i in 0..50 {
        let d = src.path().join(format!("d{i}"));
        fs::create_dir(&d).unwrap();
        for j in 0..20 {
            fs::write(d.join(format!("f{j}.txt")), format!("file {i} {j}\n").repeat(100)).unwrap();
        }
    }
    let bytes = pack(src.path()).unwrap();
    let sb = Sandbox::new();
    let summary = sb.extract_with(&bytes, Caps::default()).unwrap();
    assert_eq!((summary.files, summary.dirs), (1000, 50));
}
