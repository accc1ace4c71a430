//! Making an unpacked tree read-only, and undoing that to delete it.
//!
//! Both walk with an explicit stack and read each directory fully before descending, so a deep
//! tree never holds more than one directory handle open, and neither follows symlinks (`chmod`
//! would change the link's target, which is why links are skipped: their own mode means nothing on
//! Linux).

use std::fs::{self, Permissions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Makes the tree under `dest` (and `dest` itself) read-only for everyone while keeping it
/// readable and, where it was, executable: files become 0444, or 0555 if any execute bit was set;
/// directories 0555. Symlinks are left alone.
pub fn seal(dest: &Path) -> io::Result<()> {
    walk(dest, 0o555, |path, meta| {
        if meta.file_type().is_file() {
            let mode = if meta.permissions().mode() & 0o111 != 0 { 0o555 } else { 0o444 };
            fs::set_permissions(path, Permissions::from_mode(mode))?;
        }
        Ok(())
    })
}

/// Gives the owner write access to every directory under `dest` again, so the tree can be
/// deleted (removing an entry needs a writable parent). Files keep their mode.
pub fn unseal(dest: &Path) -> io::Result<()> {
    walk(dest, 0o755, |_, _| Ok(()))
}

/// Deletes a tree made by [`extract`](crate::extract), sealed or not. A missing `dest` is fine.
pub fn remove(dest: &Path) -> io::Result<()> {
    match fs::symlink_metadata(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    unseal(dest)?;
    fs::remove_dir_all(dest)
}

/// Sets every directory's mode to `dir_mode` (before reading it, so that unsealing can open
/// directories that sealing left without write permission) and calls `other` for every
/// non-directory.
fn walk(
    root: &Path,
    dir_mode: u32,
    mut other: impl FnMut(&Path, &fs::Metadata) -> io::Result<()>,
) -> io::Result<()> {
    let mut stack: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        fs::set_permissions(&dir, Permissions::from_mode(dir_mode))?;
        let children: Vec<_> = fs::read_dir(&dir)?.collect::<io::Result<_>>()?;
        for child in children {
            let path = child.path();
            let meta = fs::symlink_metadata(&path)?;
            if meta.file_type().is_dir() {
                stack.push(path);
            } else {
                other(&path, &meta)?;
            }
        }
    }
    Ok(())
}
