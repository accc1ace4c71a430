//! What keeps one client on one revision.

use std::fmt;

use http::HeaderMap;
use http::header::{COOKIE, HeaderName};
use serde::{Deserialize, Serialize};

/// What keeps one client on one revision: the value of a request header, or of a cookie.
///
/// A header name is kept lowercase (header names are case-insensitive); a cookie name is kept
/// as given (cookie names are case-sensitive). Deserializing validates the name as
/// [`Sticky::parse`] does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase", try_from = "RawSticky")]
pub enum Sticky {
    Header(String),
    Cookie(String),
}

/// What is wrong with a stickiness setting.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum StickyError {
    #[error("`{0}` is not header:NAME or cookie:NAME (for example header:x-user-id or cookie:session)")]
    Syntax(String),
    #[error("`{0}` is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only)")]
    HeaderName(String),
    #[error("`{0}` is not a valid cookie name (no spaces, control characters or ()<>@,;:\\\"/[]?={{}})")]
    CookieName(String),
    #[error(
        "sticky on the whole Cookie header would move a client whenever any cookie changes; use cookie:NAME"
    )]
    WholeCookieHeader,
}

impl Sticky {
    /// `header:x-user-id` or `cookie:session`. The kind is case-insensitive.
    pub fn parse(s: &str) -> Result<Sticky, StickyError> {
        let (kind, name) = s.split_once(':').ok_or_else(|| StickyError::Syntax(s.to_owned()))?;
        if kind.eq_ignore_ascii_case("header") {
            Sticky::header(name)
        } else if kind.eq_ignore_ascii_case("cookie") {
            Sticky::cookie(name)
        } else {
            Err(StickyError::Syntax(s.to_owned()))
        }
    }

    fn header(name: &str) -> Result<Sticky, StickyError> {
        let parsed =
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| StickyError::HeaderName(name.to_owned()))?;
        if parsed == COOKIE {
            return Err(StickyError::WholeCookieHeader);
        }
        // HeaderName lowercases what it parses.
        Ok(Sticky::Header(parsed.as_str().to_owned()))
    }

    fn cookie(name: &str) -> Result<Sticky, StickyError> {
        // RFC 6265: a cookie-name is an RFC 2616 token.
        let token = |b: u8| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b);
        if name.is_empty() || !name.bytes().all(token) {
            return Err(StickyError::CookieName(name.to_owned()));
        }
        Ok(Sticky::Cookie(name.to_owned()))
    }

    /// The key bytes in this request, if the client sent any. An empty value counts as none, so
    /// clients sending `x-user-id:` are spread rather than all pinned to one bucket.
    ///
    /// For a header, the first value. For a cookie, the first `name=value` pair with this name
    /// across all Cookie headers, with optional whitespace around pairs and a quoted value
    /// unquoted.
    pub fn key<'a>(&self, headers: &'a HeaderMap) -> Option<&'a [u8]> {
        match self {
            Sticky::Header(name) => Some(headers.get(name.as_str())?.as_bytes()).filter(|v| !v.is_empty()),
            Sticky::Cookie(name) => headers
                .get_all(COOKIE)
                .iter()
                .find_map(|value| cookie_value(value.as_bytes(), name.as_bytes()))
                .filter(|v| !v.is_empty()),
        }
    }
}

/// The value of cookie `name` in one Cookie header's `a=1; b=2`.
fn cookie_value<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let eq = pair.iter().position(|&b| b == b'=')?;
        if trim_ows(&pair[..eq]) != name {
            return None;
        }
        let value = trim_ows(&pair[eq + 1..]);
        Some(match value {
            [b'"', inner @ .., b'"'] => inner,
            _ => value,
        })
    })
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Back to the form [`Sticky::parse`] reads: `header:x-user-id`.
impl fmt::Display for Sticky {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sticky::Header(name) => write!(f, "header:{name}"),
            Sticky::Cookie(name) => write!(f, "cookie:{name}"),
        }
    }
}

impl std::str::FromStr for Sticky {
    type Err = StickyError;

    fn from_str(s: &str) -> Result<Sticky, StickyError> {
        Sticky::parse(s)
    }
}

/// [`Sticky`]'s serialized shape before its name is checked.
#[derive(Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
enum RawSticky {
    Header(String),
    Cookie(String),
}

impl TryFrom<RawSticky> for Sticky {
    type Error = StickyError;

    fn try_from(raw: RawSticky) -> Result<Sticky, StickyError> {
        match raw {
            RawSticky::Header(name) => Sticky::header(&name),
            RawSticky::Cookie(name) => Sticky::cookie(&name),
        }
    }
}
