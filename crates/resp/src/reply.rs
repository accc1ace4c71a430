//! Replies and their encoding in RESP2 or RESP3. A handler builds a [`Reply`] without caring
//! which protocol the client speaks; [`Reply::encode`] maps RESP3 types onto RESP2 the way Redis
//! does (maps as flat arrays, booleans as integers, doubles as bulk strings).

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};

/// The protocol a connection speaks: RESP2 until `HELLO 3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

impl Protocol {
    pub fn version(self) -> i64 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }
}

/// One reply to one command.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`: a line without CR or LF (any are replaced by spaces when encoded).
    Simple(Cow<'static, str>),
    /// `-CODE message`: the whole text after the `-`, code included (`ERR`, `WRONGTYPE`, ...).
    Error(Cow<'static, str>),
    Integer(i64),
    Bulk(Bytes),
    /// A missing value: RESP2 `$-1`, RESP3 `_`.
    Null,
    /// A missing aggregate (e.g. `LPOP key count` on a missing key): RESP2 `*-1`, RESP3 `_`.
    NullArray,
    Array(Vec<Reply>),
    /// RESP3 `%`; a flat array of keys and values in RESP2.
    Map(Vec<(Reply, Reply)>),
    /// RESP3 `~`; an array in RESP2.
    Set(Vec<Reply>),
    /// RESP3 `,`; a bulk string in RESP2.
    Double(f64),
    /// RESP3 `#`; the integer 1 or 0 in RESP2.
    Boolean(bool),
    /// RESP3 `=` with a three-letter format (`txt`, `mkd`); a bulk string in RESP2.
    Verbatim {
        format: [u8; 3],
        text: Bytes,
    },
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::Simple(Cow::Borrowed("OK"))
    }

    pub fn simple(text: impl Into<Cow<'static, str>>) -> Reply {
        Reply::Simple(text.into())
    }

    pub fn bulk(value: impl Into<Bytes>) -> Reply {
        Reply::Bulk(value.into())
    }

    /// A bulk string or `Null`.
    pub fn bulk_or_null(value: Option<impl Into<Bytes>>) -> Reply {
        value.map_or(Reply::Null, |v| Reply::Bulk(v.into()))
    }

    /// An array of bulk strings.
    pub fn bulks<B: Into<Bytes>>(values: impl IntoIterator<Item = B>) -> Reply {
        Reply::Array(values.into_iter().map(|v| Reply::Bulk(v.into())).collect())
    }

    /// A generic error: `-ERR <message>`.
    pub fn err(message: impl AsRef<str>) -> Reply {
        Reply::Error(Cow::Owned(format!("ERR {}", message.as_ref())))
    }

    /// An error with its own code: `-<CODE> <message>`, e.g. `("WRONGTYPE", "...")`.
    pub fn error_code(code: &str, message: impl AsRef<str>) -> Reply {
        Reply::Error(Cow::Owned(format!("{code} {}", message.as_ref())))
    }

    pub fn wrong_type() -> Reply {
        Reply::Error(Cow::Borrowed("WRONGTYPE Operation against a key holding the wrong kind of value"))
    }

    /// `INCR` and friends on a value that is not a 64-bit integer.
    pub fn not_integer() -> Reply {
        Reply::Error(Cow::Borrowed("ERR value is not an integer or out of range"))
    }

    /// `HINCRBY` on a field that is not a 64-bit integer.
    pub fn hash_not_integer() -> Reply {
        Reply::Error(Cow::Borrowed("ERR hash value is not an integer"))
    }

    pub fn overflow() -> Reply {
        Reply::Error(Cow::Borrowed("ERR increment or decrement would overflow"))
    }

    /// `RENAME` of a missing key.
    pub fn no_such_key() -> Reply {
        Reply::Error(Cow::Borrowed("ERR no such key"))
    }

    pub fn syntax_error() -> Reply {
        Reply::Error(Cow::Borrowed("ERR syntax error"))
    }

    /// A value larger than the store accepts (Redis: "string exceeds maximum allowed size").
    pub fn too_large() -> Reply {
        Reply::Error(Cow::Borrowed("ERR string exceeds maximum allowed size"))
    }

    /// The store cannot take more data (Redis' wording when over `maxmemory`).
    pub fn out_of_memory() -> Reply {
        Reply::Error(Cow::Borrowed("OOM command not allowed when used memory > 'maxmemory'."))
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Appends this reply's encoding in `protocol` to `out`.
    pub fn encode(&self, protocol: Protocol, out: &mut BytesMut) {
        let resp3 = protocol == Protocol::Resp3;
        match self {
            Reply::Simple(s) => line(out, b'+', s.as_bytes()),
            Reply::Error(s) => line(out, b'-', s.as_bytes()),
            Reply::Integer(n) => header(out, b':', *n),
            Reply::Bulk(b) => bulk(out, b'$', b),
            Reply::Null if resp3 => out.put_slice(b"_\r\n"),
            Reply::Null => out.put_slice(b"$-1\r\n"),
            Reply::NullArray if resp3 => out.put_slice(b"_\r\n"),
            Reply::NullArray => out.put_slice(b"*-1\r\n"),
            Reply::Array(items) => {
                header(out, b'*', items.len() as i64);
                items.iter().for_each(|item| item.encode(protocol, out));
            }
            Reply::Set(items) => {
                header(out, if resp3 { b'~' } else { b'*' }, items.len() as i64);
                items.iter().for_each(|item| item.encode(protocol, out));
            }
            Reply::Map(pairs) => {
                if resp3 {
                    header(out, b'%', pairs.len() as i64);
                } else {
                    header(out, b'*', pairs.len() as i64 * 2);
                }
                for (k, v) in pairs {
                    k.encode(protocol, out);
                    v.encode(protocol, out);
                }
            }
            Reply::Double(d) => {
                let text = format_double(*d);
                if resp3 {
                    line(out, b',', text.as_bytes());
                } else {
                    bulk(out, b'$', text.as_bytes());
                }
            }
            Reply::Boolean(b) if resp3 => out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
            Reply::Boolean(b) => header(out, b':', i64::from(*b)),
            Reply::Verbatim { format, text } if resp3 => {
                header(out, b'=', text.len() as i64 + 4);
                out.put_slice(format);
                out.put_u8(b':');
                out.put_slice(text);
                out.put_slice(b"\r\n");
            }
            Reply::Verbatim { text, .. } => bulk(out, b'$', text),
        }
    }

    /// This reply encoded on its own.
    pub fn to_bytes(&self, protocol: Protocol) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(protocol, &mut out);
        out.freeze()
    }
}

impl From<&'static str> for Reply {
    /// A bulk string, the common case for data.
    fn from(s: &'static str) -> Reply {
        Reply::Bulk(Bytes::from_static(s.as_bytes()))
    }
}

impl From<i64> for Reply {
    fn from(n: i64) -> Reply {
        Reply::Integer(n)
    }
}

/// A type byte and a line that must not break the framing: CR and LF become spaces, as Redis
/// does for error texts that quote user input.
fn line(out: &mut BytesMut, kind: u8, text: &[u8]) {
    out.reserve(text.len() + 3);
    out.put_u8(kind);
    for chunk in text.split(|&b| b == b'\r' || b == b'\n').enumerate() {
        if chunk.0 > 0 {
            out.put_u8(b' ');
        }
        out.put_slice(chunk.1);
    }
    out.put_slice(b"\r\n");
}

fn header(out: &mut BytesMut, kind: u8, n: i64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.reserve(24);
    out.put_u8(kind);
    if n < 0 {
        out.put_u8(b'-');
    }
    out.put_slice(&digits[i..]);
    out.put_slice(b"\r\n");
}

fn bulk(out: &mut BytesMut, kind: u8, data: &[u8]) {
    header(out, kind, data.len() as i64);
    out.reserve(data.len() + 2);
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

/// Redis' spellings for the special values (`inf`, `-inf`, `nan`); otherwise the shortest text
/// that reads back as the same double, with an exponent for very large or small magnitudes.
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        "nan".into()
    } else if d.is_infinite() {
        if d > 0.0 { "inf".into() } else { "-inf".into() }
    } else if d == 0.0 || (1e-5..1e17).contains(&d.abs()) {
        format!("{d}")
    } else {
        format!("{d:e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(reply: &Reply, protocol: Protocol) -> String {
        String::from_utf8(reply.to_bytes(protocol).to_vec()).unwrap()
    }

    fn both(reply: Reply) -> (String, String) {
        (enc(&reply, Protocol::Resp2), enc(&reply, Protocol::Resp3))
    }

    #[test]
    fn scalars() {
        assert_eq!(both(Reply::ok()), ("+OK\r\n".into(), "+OK\r\n".into()));
        assert_eq!(both(Reply::Integer(-42)).0, ":-42\r\n");
        assert_eq!(both(Reply::Integer(i64::MIN)).0, ":-9223372036854775808\r\n");
        assert_eq!(both(Reply::Integer(0)).0, ":0\r\n");
        assert_eq!(both(Reply::bulk("hi")).1, "$2\r\nhi\r\n");
        assert_eq!(both(Reply::bulk("")).0, "$0\r\n\r\n");
        assert_eq!(
            both(Reply::wrong_type()).0,
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
        );
        assert_eq!(both(Reply::err("bad\r\nthing")).0, "-ERR bad  thing\r\n");
    }

    #[test]
    fn nulls_differ_by_protocol() {
        assert_eq!(both(Reply::Null), ("$-1\r\n".into(), "_\r\n".into()));
        assert_eq!(both(Reply::NullArray), ("*-1\r\n".into(), "_\r\n".into()));
        assert_eq!(both(Reply::bulk_or_null(None::<Bytes>)).0, "$-1\r\n");
    }

    #[test]
    fn maps_are_flat_arrays_in_resp2() {
        let map = Reply::Map(vec![(Reply::bulk("a"), Reply::Integer(1)), (Reply::bulk("b"), Reply::Null)]);
        assert_eq!(
            both(map),
            (
                "*4\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n$-1\r\n".into(),
                "%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n_\r\n".into()
            )
        );
        assert_eq!(both(Reply::Map(vec![])), ("*0\r\n".into(), "%0\r\n".into()));
    }

    #[test]
    fn resp3_types_degrade_in_resp2() {
        assert_eq!(
            both(Reply::Set(vec![Reply::bulk("x")])),
            ("*1\r\n$1\r\nx\r\n".into(), "~1\r\n$1\r\nx\r\n".into())
        );
        assert_eq!(both(Reply::Boolean(true)), (":1\r\n".into(), "#t\r\n".into()));
        assert_eq!(both(Reply::Boolean(false)), (":0\r\n".into(), "#f\r\n".into()));
        assert_eq!(both(Reply::Double(1.5)), ("$3\r\n1.5\r\n".into(), ",1.5\r\n".into()));
        assert_eq!(both(Reply::Double(f64::INFINITY)).1, ",inf\r\n");
        assert_eq!(both(Reply::Double(f64::NEG_INFINITY)).1, ",-inf\r\n");
        assert_eq!(both(Reply::Double(f64::NAN)).1, ",nan\r\n");
        assert_eq!(both(Reply::Double(3.0)).1, ",3\r\n");
        assert_eq!(both(Reply::Double(1e300)).1, ",1e300\r\n");
        let info = Reply::Verbatim { format: *b"txt", text: Bytes::from_static(b"a:1") };
        assert_eq!(both(info), ("$3\r\na:1\r\n".into(), "=7\r\ntxt:a:1\r\n".into()));
    }

    #[test]
    fn nested_arrays() {
        let reply = Reply::Array(vec![Reply::bulk("0"), Reply::bulks(["k1", "k2"])]);
        assert_eq!(both(reply).0, "*2\r\n$1\r\n0\r\n*2\r\n$2\r\nk1\r\n$2\r\nk2\r\n");
    }

    #[test]
    fn doubles_read_back() {
        for d in [0.1, -2.5e-9, 123456789.125, 1e17, 5e-324, f64::MAX] {
            assert_eq!(format_double(d).parse::<f64>().unwrap(), d);
        }
    }
}
