//! yun's user secrets: the data directory's key, sealing a secret's value for storage, and
//! scrubbing secret values out of function log lines.
//!
//! What this crate is not: it stores no records (the caller keeps the sealed bytes in its own
//! database, keyed by name) and it knows nothing of functions (the caller decides which secrets a
//! function receives as environment variables and builds the [`Redactor`] for its logs).
//!
//! Sealed format, version 1: `[1] || nonce (12 bytes) || ChaCha20-Poly1305 ciphertext+tag`, with
//! the secret's name as associated data.

mod redact;

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};

pub use redact::Redactor;

/// The largest value `yun secret set` accepts; it ends up in a function's environment, where
/// anything larger is more likely a mistake (a file piped to the wrong command) than a credential.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const FORMAT_VERSION: u8 = 1;

/// Everything that can go wrong handling a secret. Messages never contain a secret's value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    #[error("secret key file `{}`: {source}", .path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("secret key file `{}` {why}", .path.display())]
    KeyFile { path: PathBuf, why: String },
    #[error("{0}")]
    Name(String),
    #[error("{0}")]
    Value(String),
    #[error("the stored secret {name} cannot be decrypted with this data directory's key")]
    Corrupt { name: String },
    #[error(
        "the stored secret {name} was sealed in format version {version}, which this yun cannot \
         read (it reads version {FORMAT_VERSION}); run the yun that stored it, or a newer one"
    )]
    Version { name: String, version: u8 },
    #[error("the secret's value is not UTF-8 text (invalid byte at offset {offset}); set it again as text")]
    Utf8 { offset: usize },
}

/// The data directory's secret key. It is read once and kept in memory (zeroed on drop); the
/// file is never rewritten, because a new key would make every stored secret unreadable.
pub struct Keyring {
    path: PathBuf,
    key: [u8; KEY_LEN],
}

impl Keyring {
    /// Reads the key at `path`, or creates it (32 random bytes, mode 0600) if there is no file.
    ///
    /// The key is written to a private temporary file and hard-linked into place: the link
    /// fails if `path` exists, so two yun processes starting at once agree on one key, and no
    /// reader can ever see a half-written key file (as it could between a create-new open and
    /// the write, or after a crash between them).
    pub fn open_or_create(path: &Path) -> Result<Keyring, SecretError> {
        match read_key(path) {
            Err(SecretError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            other => return other.map(|key| Keyring { path: path.to_owned(), key }),
        }
        let mut key = [0u8; KEY_LEN];
        // Filled in place, leaving no unwiped temporary copy of the new key.
        OsRng.fill_bytes(&mut key);
        let published = publish_new_key(path, &key);
        match published {
            Ok(()) => Ok(Keyring { path: path.to_owned(), key }),
            Err(SecretError::Io { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {
                wipe(&mut key);
                // Someone else won the race; theirs is complete (it was linked in whole).
                read_key(path).map(|key| Keyring { path: path.to_owned(), key })
            }
            Err(e) => {
                wipe(&mut key);
                Err(e)
            }
        }
    }

    /// Encrypts `value` under a fresh random nonce, bound to `name`: a sealed value copied to
    /// another name's record fails to open. Callers check the value with [`validate_value`].
    pub fn seal(&self, name: &str, value: &[u8]) -> Vec<u8> {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = self
            .cipher()
            .encrypt(&nonce, Payload { msg: value, aad: name.as_bytes() })
            // The only failure is a message over ChaCha20's 256 GiB limit, which no value held
            // in memory next to its copy can reach.
            .expect("ChaCha20-Poly1305 seals any message below 256 GiB");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Decrypts what [`seal`](Self::seal) produced for the same `name`. A wrong key, another
    /// name, or any altered byte gives [`SecretError::Corrupt`].
    pub fn open(&self, name: &str, sealed: &[u8]) -> Result<SecretValue, SecretError> {
        let corrupt = || SecretError::Corrupt { name: name.to_owned() };
        let (&version, rest) = sealed.split_first().ok_or_else(corrupt)?;
        if version != FORMAT_VERSION {
            return Err(SecretError::Version { name: name.to_owned(), version });
        }
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(corrupt());
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        self.cipher()
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: name.as_bytes() })
            .map(SecretValue)
            .map_err(|_| corrupt())
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        // Built per call rather than kept, so the only long-lived copy of the key is ours,
        // which Drop wipes (the cipher type does not zero itself without the zeroize feature).
        ChaCha20Poly1305::new(&self.key.into())
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring").field("path", &self.path).field("key", &"[redacted]").finish()
    }
}

impl Drop for Keyring {
    fn drop(&mut self) {
        wipe(&mut self.key);
    }
}

fn read_key(path: &Path) -> Result<[u8; KEY_LEN], SecretError> {
    let io_err = |source| SecretError::Io { path: path.to_owned(), source };
    let key_err = |why: String| SecretError::KeyFile { path: path.to_owned(), why };
    let mut file = File::open(path).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if !meta.is_file() {
        return Err(key_err("is not a regular file".into()));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(key_err(format!(
            "has mode {mode:04o}, which lets other users read the key to every stored secret; \
             run `chmod 600 {}` (yun does not change it itself)",
            path.display()
        )));
    }
    // One byte more than a key, so an oversized file is told apart from a key-sized one.
    let mut buf = [0u8; KEY_LEN + 1];
    let mut len = 0;
    loop {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if len == buf.len() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                wipe(&mut buf);
                return Err(io_err(e));
            }
        }
    }
    if len != KEY_LEN {
        wipe(&mut buf);
        let size = if len > KEY_LEN { format!("more than {KEY_LEN}") } else { len.to_string() };
        return Err(key_err(format!(
            "holds {size} bytes, but a key is exactly {KEY_LEN}; it was not replaced, because a \
             new key could not decrypt the secrets already stored (restore the original file)"
        )));
    }
    let mut key = [0u8; KEY_LEN];
    key.copy_from_slice(&buf[..KEY_LEN]);
    wipe(&mut buf);
    Ok(key)
}

/// Writes `key` to a fresh temporary file beside `path` and links it in as `path`; an
/// `AlreadyExists` error means another process published first.
fn publish_new_key(path: &Path, key: &[u8; KEY_LEN]) -> Result<(), SecretError> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let file_name = path
        .file_name()
        .ok_or_else(|| SecretError::KeyFile { path: path.to_owned(), why: "does not name a file".into() })?;
    let (tmp, mut file) = loop {
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(file_name);
        tmp_name.push(format!(".tmp-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
        let tmp = path.with_file_name(tmp_name);
        match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp) {
            Ok(file) => break (tmp, file),
            // Left by an earlier process with our pid that died mid-creation; pick another name.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(SecretError::Io { path: tmp, source }),
        }
    };
    let result = file
        .write_all(key)
        .and_then(|()| file.sync_all())
        .map_err(|source| SecretError::Io { path: tmp.clone(), source })
        .and_then(|()| {
            fs::hard_link(&tmp, path).map_err(|source| SecretError::Io { path: path.to_owned(), source })
        });
    // Whether linked or not, the temporary name has served its purpose. A failed removal
    // leaves a stray 0600 file, which is harmless and not worth failing the start for.
    let _ = fs::remove_file(&tmp);
    if result.is_ok() {
        // Make the new directory entry durable too, so a crash cannot lose the key after
        // secrets were sealed with it. Best effort: not every filesystem syncs directories.
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    result
}

/// A decrypted secret. Its bytes are zeroed when it is dropped, and `Debug` never shows them.
pub struct SecretValue(Vec<u8>);

impl SecretValue {
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn expose_str(&self) -> Result<&str, SecretError> {
        std::str::from_utf8(&self.0).map_err(|e| SecretError::Utf8 { offset: e.valid_up_to() })
    }
}

/// For a value read from the user (stdin), so it is zeroed after sealing like a decrypted one.
impl From<Vec<u8>> for SecretValue {
    fn from(value: Vec<u8>) -> SecretValue {
        SecretValue(value)
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Drop for SecretValue {
    fn drop(&mut self) {
        wipe_vec(&mut self.0);
    }
}

/// Zeroes `bytes` with volatile writes, which the optimiser may not drop as dead stores to
/// memory about to be freed.
fn wipe(bytes: &mut [u8]) {
    for b in bytes.iter_mut() {
        // SAFETY: `b` is a valid, aligned, exclusive reference to a u8.
        unsafe { std::ptr::write_volatile(b, 0) };
    }
    std::sync::atomic::compiler_fence(Ordering::SeqCst);
}

/// Zeroes a vector's whole allocation, including spare capacity: decryption leaves the tag's
/// bytes past `len`, and earlier contents may linger there after a truncation.
pub(crate) fn wipe_vec(v: &mut Vec<u8>) {
    let cap = v.capacity();
    let ptr = v.as_mut_ptr();
    for i in 0..cap {
        // SAFETY: `ptr` points to an allocation of `cap` bytes owned by `v`, which we borrow
        // mutably; writing a u8 into spare capacity is allowed (it stays uninitialised to Vec).
        unsafe { std::ptr::write_volatile(ptr.add(i), 0) };
    }
    std::sync::atomic::compiler_fence(Ordering::SeqCst);
}

/// Checks a secret's name: 1 to 128 bytes of ASCII letters, digits, `_`, `-` and `.`, starting
/// with a letter.
pub fn validate_name(name: &str) -> Result<(), SecretError> {
    const RULE: &str =
        "secret names are 1 to 128 ASCII letters, digits, '_', '-' and '.', starting with a letter";
    let bad = |what: String| Err(SecretError::Name(format!("{what}; {RULE}")));
    let Some(first) = name.chars().next() else {
        return bad("the secret name is empty".into());
    };
    if name.len() > 128 {
        return bad(format!("the secret name is {} bytes long", name.len()));
    }
    if !first.is_ascii_alphabetic() {
        return bad(format!("the secret name {name:?} starts with {first:?}"));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))) {
        return bad(format!("the secret name {name:?} contains {c:?}"));
    }
    Ok(())
}

/// Checks a secret's value before sealing: it becomes an environment variable, so it must be
/// non-empty, at most [`MAX_VALUE_BYTES`], and free of NUL bytes.
pub fn validate_value(value: &[u8]) -> Result<(), SecretError> {
    if value.is_empty() {
        return Err(SecretError::Value("the secret value is empty".into()));
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(SecretError::Value(format!(
            "the secret value is {} bytes; the limit is {MAX_VALUE_BYTES} (64 KiB)",
            value.len()
        )));
    }
    if let Some(at) = value.iter().position(|&b| b == 0) {
        return Err(SecretError::Value(format!(
            "the secret value has a NUL byte at offset {at}; environment variables cannot hold one"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
