//! `extract` and `seal` on honest and hostile archives.

mod common;

use std::fs;
use std::io::Write;
use std::time::{Duration, Instant};

use common::*;
use flate2::Compression;
use flate2::write::GzEncoder;
use tar::EntryType;
use yun_archive::{ArchiveError, Caps, Summary};

// ---------------------------------------------------------------- happy paths

#[test]
fn tar_gz_happy_path() {
    let sb = Sandbox::new();
    let bytes = RawTar::new()
        .dir("app/")
        .exe("app/run.sh", b"#!/bin/sh\necho hi\n")
        .file("app/lib/deep/util.txt", b"util")
        .symlink("app/current", "lib/deep/util.txt")
        .symlink("app/lib/up", "../run.sh")
        .hardlink("app/hard.txt", "app/lib/deep/util.txt")
        .entry("app/suid", EntryType::Regular, 0o6755, "", b"x")
        .dir("./")
        .dir("app/lib/") // again, after its contents: fine
        .tgz();
    let summary = sb.extract(&bytes).unwrap();
    sb.assert_contained();
    // Files: run.sh, util.txt, current, up, hard.txt, suid; dirs: app, lib, deep.
    assert_eq!(summary, Summary { files: 6, dirs: 3, bytes: 18 + 4 + 1 });
    let d = sb.dest();
    assert_eq!(fs::read(d.join("app/run.sh")).unwrap(), b"#!/bin/sh\necho hi\n");
    assert_eq!(mode_of(&d.join("app/run.sh")), 0o755);
    assert_eq!(mode_of(&d.join("app/lib/deep/util.txt")), 0o644);
    assert_eq!(mode_of(&d.join("app/suid")), 0o755, "setuid/setgid dropped, x kept");
    assert_eq!(fs::read_link(d.join("app/current")).unwrap().to_str(), Some("lib/deep/util.txt"));
    assert_eq!(fs::read(d.join("app/current")).unwrap(), b"util");
    assert_eq!(fs::read(d.join("app/lib/up")).unwrap(), b"#!/bin/sh\necho hi\n");
    assert_eq!(fs::read(d.join("app/hard.txt")).unwrap(), b"util");

    yun_archive::seal(&d).unwrap();
    assert_eq!(mode_of(&d), 0o555);
    assert_eq!(mode_of(&d.join("app")), 0o555);
    assert_eq!(mode_of(&d.join("app/lib/deep")), 0o555);
    assert_eq!(mode_of(&d.join("app/run.sh")), 0o555);
    assert_eq!(mode_of(&d.join("app/lib/deep/util.txt")), 0o444);
    assert!(fs::symlink_metadata(d.join("app/current")).unwrap().file_type().is_symlink());
    assert_eq!(fs::read(d.join("app/current")).unwrap(), b"util", "links still resolve");
    yun_archive::remove(&d).unwrap();
    assert!(!d.exists());
    yun_archive::remove(&d).unwrap(); // already gone: fine
}

#[test]
fn zip_happy_path() {
    let sb = Sandbox::new();
    let mut bytes = ZipBuilder::new()
        .dir("app/")
        .file_mode("app/run.sh", b"#!/bin/sh\n", 0o755)
        .file("app/lib/deep/util.txt", b"util") // parents implied
        .symlink("app/current", "lib/deep/util.txt")
        .symlink("app/lib/up", "../run.sh")
        .file("winXdir\\file.txt", b"win")
        .dir("empty/")
        .finish();
    // Windows tools write `\` separators.
    replace_all(&mut bytes, b"winXdir\\", b"win\\dir\\");
    let summary = sb.extract(&bytes).unwrap();
    sb.assert_contained();
    // Files: run.sh, util.txt, current, up, file.txt; dirs: app, lib, deep, win, dir, empty.
    assert_eq!(summary, Summary { files: 5, dirs: 6, bytes: 10 + 4 + 3 });
    let d = sb.dest();
    assert_eq!(mode_of(&d.join("app/run.sh")), 0o755);
    assert_eq!(mode_of(&d.join("app/lib/deep/util.txt")), 0o644);
    assert_eq!(fs::read_link(d.join("app/current")).unwrap().to_str(), Some("lib/deep/util.txt"));
    assert_eq!(fs::read(d.join("app/lib/up")).unwrap(), b"#!/bin/sh\n");
    assert_eq!(fs::read(d.join("win/dir/file.txt")).unwrap(), b"win");
    assert!(d.join("empty").is_dir());
}

#[test]
fn empty_zip_and_tar() {
    let sb = Sandbox::new();
    assert_eq!(sb.extract(&ZipBuilder::new().finish()).unwrap(), Summary::default());
    assert_eq!(sb.extract(&RawTar::new().tgz()).unwrap(), Summary::default());
}

#[test]
fn long_gnu_names_are_read() {
    let sb = Sandbox::new();
    let mut builder = tar::Builder::new(Vec::new());
    let long = format!("{}/file.txt", "d".repeat(150));
    let mut header = tar::Header::new_gnu();
    header.set_size(3);
    header.set_mode(0o644);
    builder.append_data(&mut header, &long, &b"abc"[..]).unwrap();
    let bytes = gz(&builder.into_inner().unwrap());
    sb.extract(&bytes).unwrap();
    assert_eq!(fs::read(sb.dest().join(&long)).unwrap(), b"abc");
}

#[test]
fn concatenated_gzip_members_are_one_stream() {
    let sb = Sandbox::new();
    let tar = RawTar::new().file("a.txt", b"hello").finish();
    let (first, second) = tar.split_at(700);
    let mut bytes = gz(first);
    bytes.extend(gz(second));
    sb.extract(&bytes).unwrap();
    assert_eq!(fs::read(sb.dest().join("a.txt")).unwrap(), b"hello");
}

// ---------------------------------------------------------------- the archive as a whole

#[test]
fn unknown_format() {
    let sb = Sandbox::new();
    let (err, msg) = sb.reject(b"hello, world");
    assert!(matches!(err, ArchiveError::UnknownFormat), "{err:?}");
    assert_eq!(msg, "the upload is neither a .tar.gz nor a .zip archive");
    // An uncompressed tar is not accepted either.
    let (err, _) = sb.reject(&RawTar::new().file("a", b"a").finish());
    assert!(matches!(err, ArchiveError::UnknownFormat), "{err:?}");
    let (err, _) = sb.reject(b"");
    assert!(matches!(err, ArchiveError::UnknownFormat), "{err:?}");
}

#[test]
fn corrupt_and_truncated() {
    let sb = Sandbox::new();
    let good = RawTar::new().file("a.txt", &[7u8; 5000]).file("b.txt", b"b").tgz();
    for cut in [3, 10, good.len() / 2, good.len() - 4] {
        let (err, msg) = sb.reject(&good[..cut]);
        assert!(matches!(err, ArchiveError::Corrupt { .. }), "cut at {cut}: {err:?}");
        assert!(msg.starts_with("the archive is corrupt or truncated: "), "{msg}");
    }
    let mut garbage = vec![0x1f, 0x8b];
    garbage.extend([0x55; 100]);
    let (err, _) = sb.reject(&garbage);
    assert!(matches!(err, ArchiveError::Corrupt { .. }), "{err:?}");
    // A bad tar checksum inside a good gzip stream.
    let mut tar = RawTar::new().file("a.txt", b"a").finish();
    tar[0] = b'b';
    let (err, msg) = sb.reject(&gz(&tar));
    assert!(matches!(err, ArchiveError::Corrupt { .. }), "{err:?}");
    assert!(msg.contains("checksum"), "{msg}");

    let zip = ZipBuilder::new().file("a.txt", &[7u8; 5000]).finish();
    for cut in [10, zip.len() / 2, zip.len() - 5] {
        let (err, _) = sb.reject(&zip[..cut]);
        assert!(matches!(err, ArchiveError::Corrupt { .. }), "zip cut at {cut}: {err:?}");
    }
    // Flipped content byte: the CRC catches it.
    let mut zip = ZipBuilder::new().file_mode("a.txt", &[7u8; 50], 0o644).finish();
    zip_set_method(&mut zip, "a.txt", 0); // stored, so the data is the bytes themselves
    let (err, _) = sb.reject(&zip);
    assert!(matches!(err, ArchiveError::Corrupt { .. }), "{err:?}");
}

#[test]
fn zip_encrypted_entries_are_refused() {
    let sb = Sandbox::new();
    let mut bytes = ZipBuilder::new().file("ok.txt", b"ok").file("secret.txt", b"s").finish();
    zip_set_encrypted(&mut bytes, "secret.txt");
    let (err, msg) = sb.reject(&bytes);
    assert!(matches!(err, ArchiveError::Encrypted { .. }), "{err:?}");
    assert_eq!(msg, "zip entry `secret.txt` is encrypted; upload an archive made without a password");
}

#[test]
fn zip_unsupported_compression_is_refused() {
    let sb = Sandbox::new();
    let mut bytes = ZipBuilder::new().file("a.txt", b"aaaa").finish();
    zip_set_method(&mut bytes, "a.txt", 12); // bzip2
    let (err, msg) = sb.reject(&bytes);
    assert!(matches!(err, ArchiveError::UnsupportedZip { .. }), "{err:?}");
    assert!(msg.contains("only stored and deflated entries are"), "{msg}");
}

#[test]
fn destination_must_be_an_empty_directory() {
    let sb = Sandbox::new();
    let bytes = RawTar::new().file("a", b"a").tgz();
    fs::write(sb.archive(), &bytes).unwrap();
    let err = yun_archive::extract(&sb.archive(), &sb.canary(), Caps::default()).unwrap_err();
    assert!(matches!(err, ArchiveError::BadDestination { .. }), "{err:?}");
    let err =
        yun_archive::extract(&sb.archive(), &sb.root.path().join("missing"), Caps::default()).unwrap_err();
    assert!(matches!(err, ArchiveError::BadDestination { .. }), "{err:?}");
    assert!(err.to_string().ends_with("must be an existing, empty directory"), "{err}");
}

// ---------------------------------------------------------------- names

#[test]
fn absolute_paths_are_refused() {
    let sb = Sandbox::new();
    let victim = sb.canary().join("pwned");
    let (err, msg) = sb.reject(&RawTar::new().file(victim.to_str().unwrap(), b"x").tgz());
    assert!(matches!(err, ArchiveError::AbsolutePath { .. }), "{err:?}");
    assert!(msg.ends_with("has an absolute path; entries must be relative to the code directory"), "{msg}");

    let mut zip = ZipBuilder::new().file("Xetc/passwd", b"x").finish();
    replace_all(&mut zip, b"Xetc/passwd", b"/etc/passwd");
    let (err, msg) = sb.reject(&zip);
    assert!(matches!(err, ArchiveError::AbsolutePath { .. }), "{err:?}");
    assert!(msg.starts_with("archive entry `/etc/passwd` has an absolute path"), "{msg}");
}

#[test]
fn parent_components_are_refused() {
    let sb = Sandbox::new();
    for name in ["../x", "a/../../canary/pwned", "a/..", ".."] {
        let (err, msg) = sb.reject(&RawTar::new().file(name, b"x").tgz());
        assert!(matches!(err, ArchiveError::ParentDir { .. }), "{name}: {err:?}");
        assert_eq!(
            msg,
            format!("archive entry `{name}` escapes the code directory (`..` is not allowed in entry names)")
        );
    }
    let mut zip = ZipBuilder::new().file("XX/canary/pwned", b"x").finish();
    replace_all(&mut zip, b"XX/canary/pwned", b"../canary/pwned");
    let (err, _) = sb.reject(&zip);
    assert!(matches!(err, ArchiveError::ParentDir { .. }), "{err:?}");
    let mut zip = ZipBuilder::new().file("XX\\canary\\pwned", b"x").finish();
    replace_all(&mut zip, b"XX\\canary\\pwned", b"..\\canary\\pwned");
    let (err, _) = sb.reject(&zip);
    assert!(matches!(err, ArchiveError::ParentDir { .. }), "{err:?}");
}

#[test]
fn bad_names_are_refused() {
    let sb = Sandbox::new();
    let tar = |name: &[u8]| {
        let mut bytes = raw_header(name, EntryType::Regular, 0, 0o644, b"").to_vec();
        bytes.extend([0u8; 1024]);
        gz(&bytes)
    };
    let (err, msg) = sb.reject(&tar(b"caf\xe9"));
    assert!(matches!(err, ArchiveError::NonUtf8Name { .. }), "{err:?}");
    assert!(msg.ends_with("has a name that is not valid UTF-8"), "{msg}");
    // `./` as a directory is the top itself (fine); as anything else it has no name.
    let (err, msg) = sb.reject(&tar(b"."));
    assert!(matches!(err, ArchiveError::EmptyName { .. }), "{err:?}");
    assert_eq!(msg, "archive entry `.` has an empty name");
    let (err, msg) = sb.reject(&RawTar::new().symlink(".", "x").tgz());
    assert!(matches!(err, ArchiveError::EmptyName { .. }), "{err:?}");
    assert_eq!(msg, "archive entry `.` has an empty name");

    let mut zip = ZipBuilder::new().file("aXb", b"x").finish();
    replace_all(&mut zip, b"aXb", b"a\0b");
    let (err, msg) = sb.reject(&zip);
    assert!(matches!(err, ArchiveError::NulInName { .. }), "{err:?}");
    assert!(msg.ends_with("has a NUL byte in its name"), "{msg}");
}

// ---------------------------------------------------------------- how entries fit together

#[test]
fn symlink_then_write_through_it_is_refused() {
    let sb = Sandbox::new();
    // The classic: a symlink to somewhere outside, then an entry beneath it. The link itself is
    // already refused.
    let canary = sb.canary();
    let (err, msg) =
        sb.reject(&RawTar::new().symlink("a", canary.to_str().unwrap()).file("a/evil", b"pwned").tgz());
    assert!(matches!(err, ArchiveError::SymlinkAbsolute { .. }), "{err:?}");
    assert_eq!(
        msg,
        format!(
            "symlink `a` points to the absolute path `{}`; symlinks must be relative and stay inside \
             the code directory",
            canary.display()
        )
    );
    // A symlink allowed on its own (it points inside), then an entry written through it.
    let (err, msg) = sb.reject(&RawTar::new().dir("sub/").symlink("a", "sub").file("a/evil", b"pwned").tgz());
    assert!(matches!(err, ArchiveError::ThroughSymlink { .. }), "{err:?}");
    assert_eq!(
        msg,
        "archive entry `a/evil` would be written through the symlink `a`; entries may not be placed \
         inside a symlink the archive itself created"
    );
    assert_eq!(fs::read_dir(sb.dest().join("sub")).unwrap().count(), 0);
    // Also for directories and deeper paths, and in zips.
    let (err, _) = sb.reject(&RawTar::new().symlink("a", ".").dir("a/b/c/").tgz());
    assert!(matches!(err, ArchiveError::ThroughSymlink { .. }), "{err:?}");
    let (err, _) = sb.reject(&ZipBuilder::new().symlink("a", ".").file("a/evil", b"x").finish());
    assert!(matches!(err, ArchiveError::ThroughSymlink { .. }), "{err:?}");
    let (err, _) = sb.reject(&ZipBuilder::new().symlink("a", "/tmp").file("a/evil", b"x").finish());
    assert!(matches!(err, ArchiveError::SymlinkAbsolute { .. }), "{err:?}");
}

#[test]
fn symlinks_pointing_outside_are_refused() {
    let sb = Sandbox::new();
    for (link, target) in [("a", "../canary"), ("x/a", "../../canary/keep.txt"), ("x/a", "b/../../..")] {
        let (err, msg) = sb.reject(&RawTar::new().symlink(link, target).tgz());
        assert!(matches!(err, ArchiveError::SymlinkEscapes { .. }), "{link} -> {target}: {err:?}");
        assert!(msg.starts_with(&format!("symlink `{link}` -> `{target}` may point outside")), "{msg}");
    }
    // `sub/link/..` would escape if `sub/link` were later made a symlink climbing out, so any
    // `..` after a name is refused.
    let (err, _) = sb.reject(&RawTar::new().symlink("x", "sub/link/..").tgz());
    assert!(matches!(err, ArchiveError::SymlinkEscapes { .. }), "{err:?}");
    let (err, msg) = sb.reject(&RawTar::new().symlink("x", "").tgz());
    assert!(matches!(err, ArchiveError::SymlinkBadTarget { .. }), "{err:?}");
    assert_eq!(msg, "symlink `x` has an unusable target: it is empty");
    let (err, _) = sb.reject(&ZipBuilder::new().symlink("x", "../../etc/passwd").finish());
    assert!(matches!(err, ArchiveError::SymlinkEscapes { .. }), "{err:?}");
}

#[test]
fn hard_links_must_name_an_earlier_file_inside() {
    let sb = Sandbox::new();
    let (err, msg) = sb.reject(&RawTar::new().hardlink("passwd", "/etc/passwd").tgz());
    assert!(matches!(err, ArchiveError::HardLinkEscapes { .. }), "{err:?}");
    assert_eq!(msg, "hard link `passwd` points to `/etc/passwd`, outside the code directory");
    let (err, _) = sb.reject(&RawTar::new().hardlink("k", "../canary/keep.txt").tgz());
    assert!(matches!(err, ArchiveError::HardLinkEscapes { .. }), "{err:?}");
    for tar in [
        RawTar::new().hardlink("early", "later.txt").file("later.txt", b"x"),
        RawTar::new().dir("d/").hardlink("h", "d"),
        RawTar::new().file("f", b"x").symlink("s", "f").hardlink("h", "s"),
        RawTar::new().dir("sub/").file("sub/f", b"x").symlink("s", "sub").hardlink("h", "s/f"),
    ] {
        let (err, msg) = sb.reject(&tar.tgz());
        assert!(matches!(err, ArchiveError::HardLinkTarget { .. }), "{err:?}");
        assert!(msg.ends_with("which is not a regular file extracted earlier in the archive"), "{msg}");
    }
    // The canary was not linked in (its link count would show it).
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(sb.canary().join("keep.txt")).unwrap().nlink(), 1);
}

#[test]
fn special_files_are_refused() {
    let sb = Sandbox::new();
    for (kind, word) in
        [(EntryType::Char, "device file"), (EntryType::Block, "device file"), (EntryType::Fifo, "fifo")]
    {
        let (err, msg) = sb.reject(&RawTar::new().entry("dev", kind, 0o644, "", b"").tgz());
        assert!(matches!(err, ArchiveError::SpecialFile { .. }), "{err:?}");
        assert_eq!(
            msg,
            format!(
                "archive entry `dev` is a {word}; only regular files, directories and links can be deployed"
            )
        );
    }
    for (mode, word) in
        [(0o010644, "fifo"), (0o140644, "socket"), (0o020644, "device file"), (0o060644, "device file")]
    {
        let mut zip = ZipBuilder::new().file("dev", b"").finish();
        zip_set_mode(&mut zip, "dev", mode);
        let (err, msg) = sb.reject(&zip);
        assert!(matches!(err, ArchiveError::SpecialFile { .. }), "{err:?}");
        assert!(msg.contains(word), "{msg}");
    }
    let (err, _) = sb.reject(&RawTar::new().entry("vol", EntryType::new(b'V'), 0o644, "", b"").tgz());
    assert!(matches!(err, ArchiveError::UnsupportedEntry { .. }), "{err:?}");
}

#[test]
fn duplicates_and_type_conflicts_are_refused() {
    let sb = Sandbox::new();
    let (err, msg) = sb.reject(&RawTar::new().dir("a/").file("a", b"x").tgz());
    assert!(matches!(err, ArchiveError::TypeConflict { .. }), "{err:?}");
    assert_eq!(msg, "archive entry `a` would replace a directory with a file");
    let (err, msg) = sb.reject(&RawTar::new().file("a", b"x").dir("a/").tgz());
    assert!(matches!(err, ArchiveError::TypeConflict { .. }), "{err:?}");
    assert_eq!(msg, "archive entry `a/` would replace a file with a directory");
    let (err, _) = sb.reject(&RawTar::new().file("a/b", b"x").symlink("a", "x").tgz());
    assert!(matches!(err, ArchiveError::TypeConflict { .. }), "{err:?}");
    let (err, msg) = sb.reject(&RawTar::new().file("a", b"x").file("./a", b"y").tgz());
    assert!(matches!(err, ArchiveError::Duplicate { .. }), "{err:?}");
    assert_eq!(msg, "archive entry `./a` appears more than once");
    assert_eq!(fs::read(sb.dest().join("a")).unwrap(), b"x", "the first one stays");
    let (err, msg) = sb.reject(&RawTar::new().file("a", b"x").file("a/b", b"y").tgz());
    assert!(matches!(err, ArchiveError::ParentNotDir { .. }), "{err:?}");
    assert_eq!(msg, "archive entry `a/b` needs `a` to be a directory, but the archive made it a file");
    let (err, _) = sb.reject(&ZipBuilder::new().file("a/b", b"x").file("a", b"y").finish());
    assert!(matches!(err, ArchiveError::TypeConflict { .. }), "{err:?}");
}

// ---------------------------------------------------------------- caps

/// `1 MiB of zeros`, gzip-compressed once: repeated, it makes a gzip stream of any length in
/// about 1 KiB per MiB, without ever holding or writing the inflated bytes.
fn zeros_member() -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::best());
    enc.write_all(&vec![0u8; 1 << 20]).unwrap();
    enc.finish().unwrap()
}

/// Writes a tar.gz with one entry `header` followed by `mib` MiB of zeros, streamed lazily.
fn bomb(header: [u8; 512], mib: usize) -> Vec<u8> {
    let member = zeros_member();
    let mut out = gz(&header);
    for _ in 0..mib {
        out.extend_from_slice(&member);
    }
    out.extend(gz(&[0u8; 1024]));
    out
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    fs::read_dir(dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
}

#[test]
fn gzip_bomb_one_huge_entry_is_refused_before_inflating() {
    let sb = Sandbox::new();
    // A 2 GiB file of zeros, about 2 MiB compressed.
    let bytes = bomb(raw_header(b"zeros", EntryType::Regular, 2 << 30, 0o644, b""), 2048);
    assert!(bytes.len() < 4 << 20);
    let start = Instant::now();
    let (err, msg) = sb.reject(&bytes);
    assert!(matches!(err, ArchiveError::TooLarge { max } if max == 512 << 20), "{err:?}");
    assert_eq!(msg, "the archive unpacks to more than 512 MiB");
    assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
    assert_eq!(dir_bytes(&sb.dest()), 0);
}

#[test]
fn gzip_bomb_in_many_entries_stops_at_the_cap() {
    let sb = Sandbox::new();
    // 2 GiB in 128 entries of 16 MiB, each claim under the 40 MiB cap: refused at the third.
    let member = zeros_member();
    let mut bytes = Vec::new();
    for i in 0..128 {
        bytes.extend(gz(&raw_header(format!("z{i}").as_bytes(), EntryType::Regular, 16 << 20, 0o644, b"")));
        for _ in 0..16 {
            bytes.extend_from_slice(&member);
        }
    }
    bytes.extend(gz(&[0u8; 1024]));
    let caps = Caps { max_unpacked_bytes: 40 << 20, max_ratio: u64::MAX, ..Caps::default() };
    let start = Instant::now();
    let err = sb.extract_with(&bytes, caps).unwrap_err();
    sb.assert_contained();
    assert!(matches!(err, ArchiveError::TooLarge { .. }), "{err:?}");
    assert_eq!(err.to_string(), "the archive unpacks to more than 40 MiB");
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
    assert_eq!(dir_bytes(&sb.dest()), 32 << 20);
    assert_eq!(fs::read_dir(sb.dest()).unwrap().count(), 2);
}

#[test]
fn zip_lying_about_its_size_is_refused() {
    let sb = Sandbox::new();
    // 64 MiB of zeros whose headers claim 1000 bytes. The zip crate itself stops at the claimed
    // size (a corrupt archive); were it not to, the count of bytes actually written would.
    let mut zip = ZipBuilder::new().file("zeros", &vec![0u8; 64 << 20]).finish();
    zip_set_size(&mut zip, "zeros", 1000);
    let caps = Caps { max_unpacked_bytes: 16 << 20, max_ratio: u64::MAX, ..Caps::default() };
    let err = sb.extract_with(&zip, caps).unwrap_err();
    sb.assert_contained();
    assert!(matches!(err, ArchiveError::TooLarge { .. } | ArchiveError::Corrupt { .. }), "{err:?}");
    assert!(dir_bytes(&sb.dest()) <= 16 << 20);
}

#[test]
fn compression_ratio_is_capped() {
    let sb = Sandbox::new();
    // 8 MiB of zeros in ~8 KiB: over 200x once past the 1 MiB floor.
    let bytes = bomb(raw_header(b"zeros", EntryType::Regular, 8 << 20, 0o644, b""), 8);
    let (err, msg) = sb.reject(&bytes);
    assert!(matches!(err, ArchiveError::RatioExceeded { max_ratio: 200 }), "{err:?}");
    assert_eq!(
        msg,
        "the archive unpacks to more than 200 times its own size, which looks like a compression bomb"
    );
    // Highly compressible but small: under the floor, accepted.
    let bytes = bomb(raw_header(b"zeros", EntryType::Regular, 1 << 20, 0o644, b""), 1);
    assert!(bytes.len() < 4096);
    sb.extract(&bytes).unwrap();
    // The same for zip, where the sizes come from the central directory.
    let zip = ZipBuilder::new().file("zeros", &vec![0u8; 8 << 20]).finish();
    let (err, _) = sb.reject(&zip);
    assert!(matches!(err, ArchiveError::RatioExceeded { .. }), "{err:?}");
    let caps = Caps { max_unpacked_bytes: 4 << 20, ..Caps::default() };
    let err = sb.extract_with(&zip, Caps { max_ratio: u64::MAX, ..caps }).unwrap_err();
    assert!(matches!(err, ArchiveError::TooLarge { .. }), "{err:?}");
}

#[test]
fn huge_long_name_header_is_refused_without_buffering_it() {
    let sb = Sandbox::new();
    // A GNU long-name header claiming 2 GiB: the tar parser would read it into memory whole.
    let bytes = bomb(raw_header(b"././@LongLink", EntryType::GNULongName, 2 << 30, 0o644, b""), 2048);
    let start = Instant::now();
    let (err, msg) = sb.reject(&bytes);
    assert!(matches!(err, ArchiveError::OversizedHeader { .. }), "{err:?}");
    assert_eq!(msg, "a tar header in the archive (long name or pax extension data) is larger than 1 MiB");
    assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
    // The same for data the parser skips on its own, such as a symlink's "content".
    let bytes = bomb(raw_header(b"l", EntryType::Symlink, 2 << 30, 0o777, b"x"), 2048);
    let (err, _) = sb.reject(&bytes);
    assert!(matches!(err, ArchiveError::OversizedHeader { .. }), "{err:?}");
}

#[test]
fn million_entry_archive_is_refused_at_max_entries() {
    let sb = Sandbox::new();
    // Claims a million empty files: distinct names up to just past the cap, then the same block of
    // a thousand headers (compressed once) repeated; it is never read that far.
    let mut distinct = Vec::new();
    for i in 0..20_100 {
        distinct.extend_from_slice(&raw_header(
            format!("f{i}").as_bytes(),
            EntryType::Regular,
            0,
            0o644,
            b"",
        ));
    }
    let mut bytes = gz(&distinct);
    let mut block = Vec::new();
    for i in 0..1000 {
        block.extend_from_slice(&raw_header(format!("g{i}").as_bytes(), EntryType::Regular, 0, 0o644, b""));
    }
    let block = gz(&block);
    for _ in 0..(1_000_000 - 20_100) / 1000 {
        bytes.extend_from_slice(&block);
    }
    let (err, msg) = sb.reject(&bytes);
    assert!(matches!(err, ArchiveError::TooManyEntries { max: 20_000 }), "{err:?}");
    assert_eq!(msg, "the archive has more than 20000 entries (files, directories and links)");
    assert_eq!(fs::read_dir(sb.dest()).unwrap().count(), 20_000);

    // Implied directories count too: a few entries, each nested 50 deep.
    let mut tar = RawTar::new();
    for i in 0..5 {
        tar = tar.file(&format!("{i}/{}f", "d/".repeat(44)), b"x");
    }
    let err = sb.extract_with(&tar.tgz(), Caps { max_entries: 200, ..Caps::default() }).unwrap_err();
    assert!(matches!(err, ArchiveError::TooManyEntries { max: 200 }), "{err:?}");

    // Zip: the central directory is read first, so nothing is written at all.
    let mut zip = ZipBuilder::new();
    for i in 0..101 {
        zip = zip.file(&format!("f{i}"), b"");
    }
    let err = sb.extract_with(&zip.finish(), Caps { max_entries: 100, ..Caps::default() }).unwrap_err();
    sb.assert_contained();
    assert!(matches!(err, ArchiveError::TooManyEntries { max: 100 }), "{err:?}");
    assert_eq!(fs::read_dir(sb.dest()).unwrap().count(), 0);
}

// ---------------------------------------------------------------- fuzz

/// Random mutations of valid archives never panic, never write outside `dest`, and never leave a
/// symlink leading out or a special file behind.
#[test]
fn mutated_archives_never_escape() {
    let sb = Sandbox::new();
    let base = RawTar::new()
        .dir("app/")
        .exe("app/run.sh", b"#!/bin/sh\n")
        .file("app/lib/util.txt", b"util util util")
        .symlink("app/cur", "lib/util.txt")
        .symlink("app/lib/up", "../run.sh")
        .hardlink("app/h", "app/lib/util.txt")
        .file("top.txt", &[b'x'; 700]);
    let headers = base.headers.clone();
    let tar = base.finish();
    let tgz = gz(&tar);
    let zip = ZipBuilder::new()
        .dir("app/")
        .file_mode("app/run.sh", b"#!/bin/sh\n", 0o755)
        .file("app/lib/util.txt", b"util util util")
        .symlink("app/cur", "lib/util.txt")
        .file("top.txt", &[b'x'; 700])
        .finish();
    // Bytes worth planting: separators, dots, type flags, mode bits.
    const INTERESTING: &[u8] = b"/./..\0\\0123456722LK x";

    let seeds: u64 = 4000;
    let mut outcomes = [0usize; 2];
    for seed in 0..seeds {
        let mut rng = Rng::new(seed);
        let which = seed % 3;
        let mut bytes = match which {
            0 => tar.clone(),
            1 => tgz.clone(),
            _ => zip.clone(),
        };
        let mutations = 1 + rng.below(4);
        for _ in 0..mutations {
            if bytes.is_empty() {
                bytes.push(0x1f);
            }
            let at = rng.below(bytes.len());
            match rng.below(6) {
                0 => bytes[at] ^= 1 << rng.below(8),
                1 => bytes[at] = INTERESTING[rng.below(INTERESTING.len())],
                2 => bytes[at] = rng.next() as u8,
                3 => bytes.truncate(at.max(1)),
                4 => {
                    let len = rng.below(8).min(bytes.len() - at);
                    bytes.drain(at..at + len);
                }
                _ => {
                    let chunk: Vec<u8> = (0..rng.below(8)).map(|_| rng.next() as u8).collect();
                    bytes.splice(at..at, chunk);
                }
            }
        }
        if which == 0 {
            // Mutated the plain tar: fix the header checksums so that the parser looks deeper,
            // then compress.
            for &h in &headers {
                if h + 512 <= bytes.len() {
                    let mut header = tar::Header::new_old();
                    header.as_mut_bytes().copy_from_slice(&bytes[h..h + 512]);
                    header.set_cksum();
                    bytes[h..h + 512].copy_from_slice(header.as_bytes());
                }
            }
            bytes = gz(&bytes);
        }
        let result = sb.extract(&bytes);
        sb.assert_contained();
        outcomes[result.is_ok() as usize] += 1;
    }
    // Both outcomes happen, so the mutations are neither all fatal nor all harmless.
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}
