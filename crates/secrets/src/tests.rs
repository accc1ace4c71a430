use std::borrow::Cow;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Barrier};

use super::*;

fn keyring(dir: &tempfile::TempDir) -> Keyring {
    Keyring::open_or_create(&dir.path().join("secret.key")).unwrap()
}

#[test]
fn seal_open_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keyring(&dir);
    let sealed = keys.seal("DB_PASSWORD", b"hunter2-and-more");
    assert_eq!(sealed[0], FORMAT_VERSION);
    assert_eq!(sealed.len(), 1 + NONCE_LEN + b"hunter2-and-more".len() + TAG_LEN);
    assert!(!sealed.windows(7).any(|w| w == b"hunter2"), "the value is not in the sealed bytes");
    let value = keys.open("DB_PASSWORD", &sealed).unwrap();
    assert_eq!(value.expose(), b"hunter2-and-more");
    assert_eq!(value.expose_str().unwrap(), "hunter2-and-more");
}

#[test]
fn any_altered_byte_fails_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keyring(&dir);
    let sealed = keys.seal("TOKEN", b"s3cr3t-value");
    // Every byte after the version: nonce, ciphertext and tag are all authenticated.
    for i in 1..sealed.len() {
        let mut bad = sealed.clone();
        bad[i] ^= 0x01;
        let err = keys.open("TOKEN", &bad).unwrap_err();
        assert!(matches!(err, SecretError::Corrupt { ref name } if name == "TOKEN"), "byte {i}: {err:?}");
    }
    let err = keys.open("TOKEN", &sealed[..sealed.len() - 1]).unwrap_err();
    assert!(matches!(err, SecretError::Corrupt { .. }));
    assert!(matches!(keys.open("TOKEN", &[]).unwrap_err(), SecretError::Corrupt { .. }));
    assert!(matches!(keys.open("TOKEN", &sealed[..10]).unwrap_err(), SecretError::Corrupt { .. }));
    assert_eq!(keys.open("TOKEN", &sealed).unwrap().expose(), b"s3cr3t-value", "the original still opens");
}

#[test]
fn unknown_version_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keyring(&dir);
    let mut sealed = keys.seal("TOKEN", b"s3cr3t-value");
    sealed[0] = 2;
    let err = keys.open("TOKEN", &sealed).unwrap_err();
    assert!(matches!(err, SecretError::Version { version: 2, .. }), "{err:?}");
}

#[test]
fn corrupt_message_names_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keyring(&dir);
    let sealed = keys.seal("A", b"value-for-a");
    let msg = keys.open("B", &sealed).unwrap_err().to_string();
    assert_eq!(msg, "the stored secret B cannot be decrypted with this data directory's key");
}

#[test]
fn value_sealed_for_one_name_does_not_open_as_another() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keyring(&dir);
    let sealed = keys.seal("A", b"value-for-a");
    assert!(matches!(keys.open("B", &sealed).unwrap_err(), SecretError::Corrupt { ref name } if name == "B"));
    assert_eq!(keys.open("A", &sealed).unwrap().expose(), b"value-for-a");
}

#[test]
fn another_key_cannot_open() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let sealed = keyring(&d1).seal("A", b"value-for-a");
    assert!(matches!(keyring(&d2).open("A", &sealed).unwrap_err(), SecretError::Corrupt { .. }));
}

#[test]
fn nonces_differ_between_seals_of_the_same_value() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keyring(&dir);
    let a = keys.seal("A", b"same-value");
    let b = keys.seal("A", b"same-value");
    assert_ne!(a[1..1 + NONCE_LEN], b[1..1 + NONCE_LEN]);
    assert_ne!(a, b);
}

#[test]
fn key_file_is_created_0600_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret.key");
    let sealed = {
        let keys = Keyring::open_or_create(&path).unwrap();
        keys.seal("A", b"before-reopen")
    };
    let meta = fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.len(), KEY_LEN as u64);
    let bytes = fs::read(&path).unwrap();

    let keys = Keyring::open_or_create(&path).unwrap();
    assert_eq!(keys.open("A", &sealed).unwrap().expose(), b"before-reopen");
    assert_eq!(fs::read(&path).unwrap(), bytes, "the key file was not rewritten");
    // No temporary files are left beside it.
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("secret.key")]);
}

#[test]
fn wrong_size_key_file_is_an_error_naming_it_and_is_kept() {
    for size in [0usize, 16, 31, 33, 64] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let contents = vec![7u8; size];
        fs::write(&path, &contents).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let err = Keyring::open_or_create(&path).unwrap_err();
        assert!(matches!(err, SecretError::KeyFile { .. }), "size {size}: {err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("exactly 32"), "{msg}");
        assert_eq!(fs::read(&path).unwrap(), contents, "size {size}: the file was not replaced");
    }
}

#[test]
fn too_open_key_file_is_an_error_naming_it() {
    for mode in [0o644, 0o640, 0o604, 0o660] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        fs::write(&path, [9u8; KEY_LEN]).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        let err = Keyring::open_or_create(&path).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, SecretError::KeyFile { .. }), "{mode:o}: {err:?}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains(&format!("{mode:04o}")), "{msg}");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, mode, "mode left alone");
    }
    // An owner-only mode stricter than 0600 is fine.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret.key");
    fs::write(&path, [9u8; KEY_LEN]).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
    Keyring::open_or_create(&path).unwrap();
}

#[test]
fn key_path_that_is_a_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = Keyring::open_or_create(dir.path()).unwrap_err();
    assert!(err.to_string().contains(&dir.path().display().to_string()), "{err}");
}

#[test]
fn missing_parent_directory_is_an_io_error_naming_a_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope").join("secret.key");
    let err = Keyring::open_or_create(&path).unwrap_err();
    assert!(matches!(err, SecretError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains(&dir.path().join("nope").display().to_string()), "{err}");
}

#[test]
fn racing_creators_agree_on_one_key() {
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let threads = 4;
        let barrier = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (barrier, path) = (barrier.clone(), path.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    Keyring::open_or_create(&path).unwrap()
                })
            })
            .collect();
        let rings: Vec<Keyring> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let sealed = rings[0].seal("A", b"shared-value");
        for (i, ring) in rings.iter().enumerate() {
            assert_eq!(ring.key, rings[0].key, "round {round}: thread {i} has another key");
            assert_eq!(ring.open("A", &sealed).unwrap().expose(), b"shared-value");
        }
        assert_eq!(fs::read(&path).unwrap(), rings[0].key, "the file holds the agreed key");
        let count = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(count, 1, "round {round}: temporary files left behind");
    }
}

#[test]
fn name_validation() {
    for ok in ["A", "db_password", "API-KEY", "a.b.c", "x1", &"n".repeat(128)] {
        validate_name(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
    }
    for bad in ["", "1abc", "_x", "-x", ".x", "a b", "a/b", "a=b", "é", "aé", &"n".repeat(129)] {
        let err = validate_name(bad).unwrap_err();
        assert!(matches!(err, SecretError::Name(_)), "{bad:?}");
        assert!(err.to_string().contains("starting with a letter"), "the rule is stated: {err}");
    }
}

#[test]
fn value_validation() {
    validate_value(b"x").unwrap();
    validate_value(&vec![b'v'; MAX_VALUE_BYTES]).unwrap();
    validate_value("naïve\n".as_bytes()).unwrap();
    assert!(matches!(validate_value(b""), Err(SecretError::Value(_))));
    let too_big = validate_value(&vec![b'v'; MAX_VALUE_BYTES + 1]).unwrap_err();
    assert!(too_big.to_string().contains("65536"), "{too_big}");
    let nul = validate_value(b"abc\0def").unwrap_err();
    assert!(nul.to_string().contains("offset 3"), "{nul}");
    assert!(!nul.to_string().contains("abc"), "the value is not echoed: {nul}");
}

#[test]
fn expose_str_rejects_non_utf8() {
    let v = SecretValue::from(vec![b'o', b'k', 0xff]);
    assert_eq!(v.expose(), [b'o', b'k', 0xff]);
    assert!(matches!(v.expose_str(), Err(SecretError::Utf8 { offset: 2 })));
}

#[test]
fn wipe_vec_zeroes_the_whole_allocation() {
    let mut v = b"secret-bytes-here".to_vec();
    v.truncate(3);
    let cap = v.capacity();
    wipe_vec(&mut v);
    // SAFETY: reads back the `cap` bytes of the allocation that wipe_vec just initialised to 0.
    let all = unsafe { std::slice::from_raw_parts(v.as_ptr(), cap) };
    assert!(all.iter().all(|&b| b == 0), "{all:?}");
}

fn redactor(pairs: &[(&str, &str)]) -> Redactor {
    Redactor::new(pairs.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())))
}

#[test]
fn redactor_replaces_values() {
    let r = redactor(&[("DB_PASSWORD", "hunter22"), ("TOKEN", "tok-123456")]);
    assert!(!r.is_empty());
    assert_eq!(
        r.redact("connecting with hunter22 and tok-123456!"),
        "connecting with [secret:DB_PASSWORD] and [secret:TOKEN]!"
    );
    assert_eq!(r.redact("hunter22"), "[secret:DB_PASSWORD]");
}

#[test]
fn redactor_replaces_every_occurrence() {
    let r = redactor(&[("K", "abcd")]);
    assert_eq!(r.redact("abcd abcd,abcdabcd"), "[secret:K] [secret:K],[secret:K][secret:K]");
    // Occurrences overlapping themselves leave nothing of the value behind.
    let r = redactor(&[("K", "aaaa")]);
    assert_eq!(r.redact("xaaaaay"), "x[secret:K]y");
}

#[test]
fn redactor_prefers_the_longest_value_when_values_overlap() {
    // Whichever order they are given in.
    for pairs in
        [[("SHORT", "password"), ("LONG", "password123")], [("LONG", "password123"), ("SHORT", "password")]]
    {
        let r = redactor(&pairs);
        assert_eq!(r.redact("pw=password123;"), "pw=[secret:LONG];");
        assert_eq!(r.redact("pw=password;"), "pw=[secret:SHORT];");
    }
    // Values that run into each other: neither value's bytes survive.
    let r = redactor(&[("A", "abcdef"), ("B", "defghijk")]);
    let out = r.redact("<abcdefghijk>");
    assert_eq!(out, "<[secret:B]>");
}

#[test]
fn redactor_ignores_short_values() {
    let r = redactor(&[("FLAG", "on"), ("PIN", "123")]);
    assert!(r.is_empty());
    assert!(matches!(r.redact("turn on 123"), Cow::Borrowed("turn on 123")));
    let r = redactor(&[("FLAG", "on"), ("PIN", "1234")]);
    assert_eq!(r.redact("turn on 1234"), "turn on [secret:PIN]");
}

#[test]
fn redactor_borrows_when_nothing_matches() {
    let r = redactor(&[("K", "abcdef")]);
    let line = "nothing to see, abcde only";
    match r.redact(line) {
        Cow::Borrowed(s) => assert!(std::ptr::eq(s, line)),
        Cow::Owned(s) => panic!("allocated for {s:?}"),
    }
    assert!(matches!(Redactor::default().redact("x"), Cow::Borrowed("x")));
    assert!(Redactor::default().is_empty());
}

#[test]
fn redactor_handles_multibyte_text() {
    let r = redactor(&[("K", "ключ-пароль")]);
    assert_eq!(r.redact("é ключ-пароль ü"), "é [secret:K] ü");
    let r = redactor(&[("K", "éééé")]);
    assert_eq!(r.redact("ééééé!"), "[secret:K]!");
}

#[test]
fn redactor_redacts_utf8_runs_of_non_utf8_values() {
    let r = Redactor::new([("BIN".to_string(), b"longpart\xffxy\xfemore".to_vec())]);
    assert_eq!(
        r.redact("got longpart\u{fffd}xy\u{fffd}more"),
        "got [secret:BIN]\u{fffd}xy\u{fffd}[secret:BIN]"
    );
}

#[test]
fn debug_never_shows_secret_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keyring(&dir);
    let key_dump = format!("{:?}", keys.key);
    let key_hex: String = keys.key.iter().map(|b| format!("{b:02x}")).collect();
    let shown = format!("{keys:?} {keys:#?}");
    assert!(!shown.contains(&key_dump) && !shown.contains(&key_hex), "{shown}");
    assert!(shown.contains("[redacted]"), "{shown}");

    let value = keys.open("A", &keys.seal("A", b"very-secret-value")).unwrap();
    assert_eq!(format!("{value:?}"), "[redacted]");
    assert_eq!(format!("{value:#?}"), "[redacted]");

    let r = redactor(&[("NAME", "very-secret-value")]);
    let shown = format!("{r:?} {r:#?}");
    assert!(!shown.contains("very-secret-value") && !shown.contains("118, 101, 114"), "{shown}");
    assert!(shown.contains("NAME"), "{shown}");

    let err = keys.open("A", b"\x01garbage-that-is-long-enough-to-try").unwrap_err();
    assert!(!format!("{err:?} {err}").contains("garbage"));
}
