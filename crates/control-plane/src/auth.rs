//! The admin token: created on first start, kept in the data directory readable only by its
//! owner, and required as a bearer token on every management call.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use http::HeaderMap;

#[derive(Clone)]
pub struct Auth {
    token: String,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth(..)")
    }
}

pub const TOKEN_FILE: &str = "admin-token";

impl Auth {
    pub fn new(token: String) -> Self {
        Self { token }
    }

    /// Reads the token from `data_dir`, creating a random one (mode 0600) on first start.
    pub fn load_or_create(data_dir: &Path) -> io::Result<Self> {
        let path = data_dir.join(TOKEN_FILE);
        match fs::read_to_string(&path) {
            Ok(t) if !t.trim().is_empty() => return Ok(Self::new(t.trim().to_string())),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut random = [0u8; 32];
        fs::File::open("/dev/urandom")?.read_exact(&mut random)?;
        let token = format!("yun_{}", hex::encode(random));
        let tmp = path.with_extension("tmp");
        let mut file =
            fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        file.write_all(token.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, &path)?;
        fs::File::open(data_dir)?.sync_all()?;
        Ok(Self::new(token))
    }

    /// Whether the request carries the admin token as `Authorization: Bearer <token>`.
    pub fn check(&self, headers: &HeaderMap) -> bool {
        bearer(headers).is_some_and(|given| constant_time_eq(given.as_bytes(), self.token.as_bytes()))
    }

    /// Whether `token` is the admin token (a token given outside HTTP: Redis's AUTH).
    pub fn is_admin(&self, token: &str) -> bool {
        constant_time_eq(token.as_bytes(), self.token.as_bytes())
    }

    /// The function whose scoped token `token` is, if it is a valid one.
    pub fn function_of_token(&self, token: &str) -> Option<String> {
        let (name, mac) = token.strip_prefix("yunf.")?.rsplit_once('.')?;
        constant_time_eq(mac.as_bytes(), self.mac(name).as_bytes()).then(|| name.to_string())
    }

    /// The token function `name` gets to call yun's API with: `yunf.NAME.MAC`, where the MAC is
    /// HMAC-SHA256 of the name under the admin token, so it is checked without being stored and
    /// changes when the admin token does.
    pub fn function_token(&self, name: &str) -> String {
        format!("yunf.{name}.{}", self.mac(name))
    }

    /// The function whose scoped token the request carries, if it carries a valid one.
    pub fn function_of(&self, headers: &HeaderMap) -> Option<String> {
        self.function_of_token(bearer(headers)?)
    }

    fn mac(&self, name: &str) -> String {
        use hmac::Mac;
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(self.token.as_bytes()).expect("any key length");
        mac.update(b"function:");
        mac.update(name.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..20])
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// Compares without an early exit, so response timing does not reveal how much of a guessed
/// token was right. Hand-written: four lines do not justify a dependency.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_tokens_name_their_function_and_cannot_be_forged() {
        let auth = Auth::new("yun_secret".into());
        let mut headers = HeaderMap::new();
        let token = auth.function_token("orders");
        headers.insert(http::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        assert_eq!(auth.function_of(&headers).as_deref(), Some("orders"));
        assert!(!auth.check(&headers), "a function token is not the admin token");
        let forged = token.replace("yunf.orders.", "yunf.billing.");
        headers.insert(http::header::AUTHORIZATION, format!("Bearer {forged}").parse().unwrap());
        assert_eq!(auth.function_of(&headers), None);
        let other = Auth::new("yun_other".into());
        headers.insert(http::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        assert_eq!(other.function_of(&headers), None, "another admin token makes other function tokens");
    }
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn token_is_created_once_with_owner_only_mode() {
        let dir = tempfile::tempdir().unwrap();
        let a = Auth::load_or_create(dir.path()).unwrap();
        let b = Auth::load_or_create(dir.path()).unwrap();
        assert_eq!(a.token, b.token);
        assert!(a.token.len() > 40);
        let mode = fs::metadata(dir.path().join(TOKEN_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn checks_bearer_header() {
        let auth = Auth::new("secret".into());
        let mut h = HeaderMap::new();
        assert!(!auth.check(&h));
        h.insert("authorization", "Bearer wrong".parse().unwrap());
        assert!(!auth.check(&h));
        h.insert("authorization", "secret".parse().unwrap());
        assert!(!auth.check(&h));
        h.insert("authorization", "Bearer secret".parse().unwrap());
        assert!(auth.check(&h));
    }
}
