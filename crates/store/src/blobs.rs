//! Content-addressed artifact files and the precompiled-code cache beside them.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use yun_types::Digest;

/// Uploaded components as `artifacts/<sha256>.wasm`, precompiled code as
/// `compiled/<engine-fingerprint>/<sha256>.cwasm`, process functions' code unpacked read-only as
/// `code/<sha256 of the archive>/`, and a staging area for uploads in flight.
#[derive(Clone, Debug)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    pub fn open(root: &Path) -> io::Result<Self> {
        for dir in ["artifacts", "compiled", "code", "staging"] {
            fs::create_dir_all(root.join(dir))?;
        }
        // Anything left in staging belongs to an upload that never finished (a crash mid-deploy):
        // it was never acknowledged, so it can go.
        for entry in fs::read_dir(root.join("staging"))? {
            let _ = remove_path(&entry?.path());
        }
        Ok(Self { root: root.to_path_buf() })
    }

    pub fn staging_dir(&self) -> PathBuf {
        self.root.join("staging")
    }

    pub fn artifact_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("artifacts").join(format!("{}.wasm", digest.hex()))
    }

    pub fn compiled_path(&self, fingerprint: &str, digest: &Digest) -> PathBuf {
        self.root.join("compiled").join(fingerprint).join(format!("{}.cwasm", digest.hex()))
    }

    /// Where a process function's code archive is unpacked (read-only).
    pub fn code_dir(&self, digest: &Digest) -> PathBuf {
        self.root.join("code").join(digest.hex())
    }

    /// Whether `digest` was uploaded, as a component or as code.
    pub fn has_artifact(&self, digest: &Digest) -> bool {
        self.artifact_path(digest).is_file() || self.has_code(digest)
    }

    pub fn has_code(&self, digest: &Digest) -> bool {
        self.code_dir(digest).is_dir()
    }

    /// Moves a fully unpacked and sealed staging directory into place, durably.
    pub fn commit_code(&self, staged: &Path, digest: &Digest) -> io::Result<PathBuf> {
        let dest = self.code_dir(digest);
        if dest.exists() {
            // The same archive was unpacked by a concurrent upload; its tree is identical.
            remove_path(staged)?;
            return Ok(dest);
        }
        use std::os::unix::fs::PermissionsExt;
        // Moving a directory rewrites its `..` entry, which needs write permission on it unless
        // yun runs as root: open the sealed top for the move, seal it again in place.
        fs::set_permissions(staged, fs::Permissions::from_mode(0o755))?;
        sync_tree(staged)?;
        fs::rename(staged, &dest)?;
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o555))?;
        File::open(&dest)?.sync_all()?;
        sync_dir(dest.parent().expect("code dirs have a parent"))?;
        Ok(dest)
    }

    /// Moves a fully written, fsynced staging file into place and makes the rename durable.
    pub fn commit_artifact(&self, staged: &Path, digest: &Digest) -> io::Result<PathBuf> {
        let dest = self.artifact_path(digest);
        fs::rename(staged, &dest)?;
        sync_dir(dest.parent().expect("artifact paths have a parent"))?;
        Ok(dest)
    }

    /// Every stored artifact digest.
    pub fn artifacts(&self) -> io::Result<Vec<Digest>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(self.root.join("artifacts"))? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(d) = name.strip_suffix(".wasm").and_then(|h| Digest::parse(h).ok()) {
                out.push(d);
            }
        }
        for entry in fs::read_dir(self.root.join("code"))? {
            if let Ok(d) = Digest::parse(&entry?.file_name().to_string_lossy()) {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Deletes an artifact and every precompiled form of it.
    pub fn remove_artifact(&self, digest: &Digest) -> io::Result<()> {
        remove_if_exists(&self.artifact_path(digest))?;
        let code = self.code_dir(digest);
        if code.exists() {
            remove_path(&code)?;
        }
        for entry in fs::read_dir(self.root.join("compiled"))? {
            let dir = entry?.path();
            remove_if_exists(&dir.join(format!("{}.cwasm", digest.hex())))?;
        }
        sync_dir(&self.root.join("artifacts"))
    }

    /// Drops precompiled code made by other engine versions or settings: it can never load.
    pub fn prune_compiled_except(&self, fingerprint: &str) -> io::Result<()> {
        for entry in fs::read_dir(self.root.join("compiled"))? {
            let entry = entry?;
            if entry.file_name() != fingerprint {
                fs::remove_dir_all(entry.path())?;
            }
        }
        Ok(())
    }
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes a file or a whole tree, including sealed (read-only) code trees.
fn remove_path(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = fs::symlink_metadata(path)?;
    if !meta.is_dir() {
        return fs::remove_file(path);
    }
    if fs::remove_dir_all(path).is_ok() {
        return Ok(());
    }
    // Not running as root: reopen the sealed directories for writing, then delete.
    for entry in walk_dirs(path)? {
        fs::set_permissions(&entry, fs::Permissions::from_mode(0o755))?;
    }
    fs::remove_dir_all(path)
}

fn walk_dirs(root: &Path) -> io::Result<Vec<PathBuf>> {
    let mut dirs = vec![root.to_path_buf()];
    let mut i = 0;
    while i < dirs.len() {
        let dir = dirs[i].clone();
        i += 1;
        if let Ok(entries) = fs::read_dir(&dir) {
            for entry in entries {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    dirs.push(entry.path());
                }
            }
        }
    }
    Ok(dirs)
}

/// fsyncs every file and directory of an unpacked tree before it is published.
fn sync_tree(root: &Path) -> io::Result<()> {
    for dir in walk_dirs(root)? {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                File::open(entry.path())?.sync_all()?;
            }
        }
        sync_dir(&dir)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `bytes` to `path` so that a reader sees either the old file or the whole new one:
/// temp file, fsync, rename, fsync of the directory. An fsync error fails the write.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().expect("write_atomic needs a path with a parent");
    fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_and_remove_artifacts() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let digest = Digest::parse(&"c".repeat(64)).unwrap();
        let staged = blobs.staging_dir().join("upload");
        fs::write(&staged, b"wasm").unwrap();
        blobs.commit_artifact(&staged, &digest).unwrap();
        assert!(blobs.has_artifact(&digest));
        assert_eq!(blobs.artifacts().unwrap(), vec![digest.clone()]);
        write_atomic(&blobs.compiled_path("fp", &digest), b"code").unwrap();
        blobs.remove_artifact(&digest).unwrap();
        assert!(!blobs.has_artifact(&digest));
        assert!(!blobs.compiled_path("fp", &digest).exists());
    }

    #[test]
    fn reopening_clears_unfinished_uploads_and_stale_code() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        fs::write(blobs.staging_dir().join("half"), b"x").unwrap();
        let digest = Digest::parse(&"d".repeat(64)).unwrap();
        write_atomic(&blobs.compiled_path("old", &digest), b"code").unwrap();
        write_atomic(&blobs.compiled_path("new", &digest), b"code").unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        assert_eq!(fs::read_dir(blobs.staging_dir()).unwrap().count(), 0);
        blobs.prune_compiled_except("new").unwrap();
        assert!(!blobs.compiled_path("old", &digest).exists());
        assert!(blobs.compiled_path("new", &digest).exists());
    }
}
