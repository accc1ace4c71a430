//! The request side of the wire: an incremental decoder of multibulk arrays and inline commands
//! into argument vectors, with the limits Redis enforces and its error texts.
//!
//! Clients only ever send arrays of bulk strings (or an inline line), so that is all this accepts:
//! any other frame type from a client is a protocol error, as it is for Redis.

use bytes::{Buf, Bytes, BytesMut};

/// Longest `*N` / `$N` header line: 20 digits and a sign fit with room to spare; anything longer
/// without a CR is garbage, not a slow client.
const MAX_HEADER_LEN: usize = 64;

/// Arguments at least this long are split off the read buffer without a copy; shorter ones are
/// copied, so a handler that keeps a small key does not pin the whole buffer it arrived in.
const SHARE_MIN: usize = 16 * 1024;

/// What each argument counts for in [`Limits::max_request_len`] besides its bytes.
pub const ARG_OVERHEAD: usize = size_of::<Bytes>();

/// What a client may send in one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest bulk string (Redis `proto-max-bulk-len`).
    pub max_bulk_len: usize,
    /// Most arguments in one multibulk request.
    pub max_array_len: usize,
    /// Longest inline command line, without its line ending.
    pub max_inline_len: usize,
    /// Most memory one request's arguments may take: their bytes plus [`ARG_OVERHEAD`] each,
    /// so a million empty arguments count for what they cost.
    pub max_request_len: usize,
    /// Whether these are the tight limits for a client that has not authenticated yet; only the
    /// error texts differ (Redis says "unauthenticated multibulk length" then).
    pub unauthenticated: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 64 * 1024 * 1024,
            max_array_len: 1024 * 1024,
            max_inline_len: 64 * 1024,
            max_request_len: 256 * 1024 * 1024,
            unauthenticated: false,
        }
    }
}

impl Limits {
    /// Redis' limits before AUTH: at most 10 arguments of at most 16 KiB, enough for
    /// `HELLO 3 AUTH user pass SETNAME name` and nothing a stranger could fill memory with.
    pub fn unauthenticated(&self) -> Limits {
        Limits {
            max_bulk_len: self.max_bulk_len.min(16 * 1024),
            max_array_len: self.max_array_len.min(10),
            max_inline_len: self.max_inline_len,
            max_request_len: self.max_request_len.min(10 * (16 * 1024 + ARG_OVERHEAD)),
            unauthenticated: true,
        }
    }
}

/// Malformed or oversized input. The connection answers `-ERR Protocol error: <this>` and closes,
/// because after it there is no telling where the next request starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("too big inline request")]
    InlineTooBig,
    #[error("unbalanced quotes in request")]
    UnbalancedQuotes,
    #[error("too big mbulk count string")]
    MultibulkHeaderTooBig,
    #[error("invalid multibulk length")]
    InvalidMultibulkLength,
    #[error("unauthenticated multibulk length")]
    UnauthenticatedMultibulkLength,
    #[error("too big bulk count string")]
    BulkHeaderTooBig,
    #[error("expected '$', got '{0}'")]
    ExpectedBulk(String),
    #[error("invalid bulk length")]
    InvalidBulkLength,
    #[error("unauthenticated bulk length")]
    UnauthenticatedBulkLength,
    #[error("expected CRLF")]
    ExpectedCrlf,
    #[error("request too large")]
    RequestTooLarge,
}

/// Decodes requests from a growing buffer. Progress through a multibulk request is kept between
/// calls, so a request arriving a byte at a time costs no rescanning.
#[derive(Debug, Default)]
pub struct Decoder {
    /// Arguments of the multibulk request in progress; `remaining` more are expected.
    args: Vec<Bytes>,
    remaining: usize,
    /// The announced length of the bulk string whose header was read but whose data was not.
    bulk_len: Option<usize>,
    /// Argument bytes of the request in progress, for `max_request_len`.
    request_len: usize,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether part of a request has been consumed and the rest is awaited.
    pub fn in_progress(&self) -> bool {
        self.remaining > 0
    }

    /// The next complete request's arguments, consuming them from `buf`; `None` when `buf` holds
    /// no complete request yet (what was consumed of a partial one is remembered). Empty requests
    /// (`*0`, `*-1`, a blank line) are skipped, as Redis does. After an error the decoder's state
    /// is unspecified: the connection must be closed.
    pub fn decode(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
    ) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        loop {
            if self.remaining == 0 {
                let Some(&first) = buf.first() else { return Ok(None) };
                if first != b'*' {
                    match decode_inline(buf, limits)? {
                        None => return Ok(None),
                        Some(args) if args.is_empty() => continue,
                        Some(args) => return Ok(Some(args)),
                    }
                }
                let Some(n) =
                    header(buf, ProtocolError::MultibulkHeaderTooBig, ProtocolError::InvalidMultibulkLength)?
                else {
                    return Ok(None);
                };
                if n <= 0 {
                    continue;
                }
                if n as u64 > limits.max_array_len as u64 {
                    return Err(if limits.unauthenticated {
                        ProtocolError::UnauthenticatedMultibulkLength
                    } else {
                        ProtocolError::InvalidMultibulkLength
                    });
                }
                self.remaining = n as usize;
                // The count is the client's word: grow with what actually arrives.
                self.args = Vec::with_capacity(self.remaining.min(64));
                self.request_len = 0;
            }
            while self.remaining > 0 {
                let len = match self.bulk_len {
                    Some(len) => len,
                    None => {
                        let Some(&first) = buf.first() else { return Ok(None) };
                        if first != b'$' {
                            return Err(ProtocolError::ExpectedBulk(first.escape_ascii().to_string()));
                        }
                        let Some(len) =
                            header(buf, ProtocolError::BulkHeaderTooBig, ProtocolError::InvalidBulkLength)?
                        else {
                            return Ok(None);
                        };
                        if len < 0 || len as u64 > limits.max_bulk_len as u64 {
                            return Err(if limits.unauthenticated && len >= 0 {
                                ProtocolError::UnauthenticatedBulkLength
                            } else {
                                ProtocolError::InvalidBulkLength
                            });
                        }
                        let len = len as usize;
                        self.request_len += len + ARG_OVERHEAD;
                        if self.request_len > limits.max_request_len {
                            return Err(ProtocolError::RequestTooLarge);
                        }
                        self.bulk_len = Some(len);
                        len
                    }
                };
                if buf.len() < len + 2 {
                    return Ok(None);
                }
                if &buf[len..len + 2] != b"\r\n" {
                    return Err(ProtocolError::ExpectedCrlf);
                }
                let arg = if len >= SHARE_MIN {
                    buf.split_to(len).freeze()
                } else {
                    let arg = Bytes::copy_from_slice(&buf[..len]);
                    buf.advance(len);
                    arg
                };
                buf.advance(2);
                self.args.push(arg);
                self.bulk_len = None;
                self.remaining -= 1;
            }
            return Ok(Some(std::mem::take(&mut self.args)));
        }
    }
}

/// The number in the header line at the start of `buf` (after its type byte), consumed with its
/// CRLF; `None` until the whole line is there.
fn header(
    buf: &mut BytesMut,
    too_big: ProtocolError,
    invalid: ProtocolError,
) -> Result<Option<i64>, ProtocolError> {
    let window = &buf[..buf.len().min(MAX_HEADER_LEN)];
    let Some(cr) = window.iter().position(|&b| b == b'\r') else {
        return if buf.len() >= MAX_HEADER_LEN { Err(too_big) } else { Ok(None) };
    };
    if buf.len() < cr + 2 {
        return Ok(None);
    }
    if buf[cr + 1] != b'\n' {
        return Err(ProtocolError::ExpectedCrlf);
    }
    let n = parse_len(&buf[1..cr]).ok_or(invalid)?;
    buf.advance(cr + 2);
    Ok(Some(n))
}

/// A length in a header: a decimal integer, possibly negative, nothing else.
fn parse_len(digits: &[u8]) -> Option<i64> {
    let (negative, digits) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
    Some(if negative { -n } else { n })
}

fn decode_inline(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some(newline) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() > limits.max_inline_len { Err(ProtocolError::InlineTooBig) } else { Ok(None) };
    };
    let mut line = &buf[..newline];
    if let Some(stripped) = line.strip_suffix(b"\r") {
        line = stripped;
    }
    if line.len() > limits.max_inline_len {
        return Err(ProtocolError::InlineTooBig);
    }
    let args = split_args(line).ok_or(ProtocolError::UnbalancedQuotes)?;
    buf.advance(newline + 1);
    if args.len() > limits.max_array_len {
        return Err(if limits.unauthenticated {
            ProtocolError::UnauthenticatedMultibulkLength
        } else {
            ProtocolError::InvalidMultibulkLength
        });
    }
    Ok(Some(args.into_iter().map(Bytes::from).collect()))
}

/// Splits an inline command line the way Redis' `sdssplitargs` does: whitespace separates
/// arguments; "double quotes" understand `\n \r \t \b \a \\ \" \xHH`; 'single quotes' only `\'`;
/// a closing quote must end its argument. `None` for unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && is_space(line[i]) {
            i += 1;
        }
        if i == line.len() {
            return Some(args);
        }
        let mut arg = Vec::new();
        let mut quote = None;
        loop {
            match quote {
                Some(b'"') => {
                    let c = *line.get(i)?;
                    if c == b'\\'
                        && i + 3 < line.len()
                        && line[i + 1] == b'x'
                        && let (Some(h), Some(l)) = (hex(line[i + 2]), hex(line[i + 3]))
                    {
                        arg.push(h * 16 + l);
                        i += 4;
                        continue;
                    }
                    if c == b'\\' && i + 1 < line.len() {
                        arg.push(match line[i + 1] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                        i += 2;
                    } else if c == b'"' {
                        if i + 1 < line.len() && !is_space(line[i + 1]) {
                            return None;
                        }
                        i += 1;
                        break;
                    } else {
                        arg.push(c);
                        i += 1;
                    }
                }
                Some(_) => {
                    let c = *line.get(i)?;
                    if c == b'\\' && line.get(i + 1) == Some(&b'\'') {
                        arg.push(b'\'');
                        i += 2;
                    } else if c == b'\'' {
                        if i + 1 < line.len() && !is_space(line[i + 1]) {
                            return None;
                        }
                        i += 1;
                        break;
                    } else {
                        arg.push(c);
                        i += 1;
                    }
                }
                None => match line.get(i) {
                    None => break,
                    Some(&c) if is_space(c) => break,
                    Some(&c @ (b'"' | b'\'')) => {
                        quote = Some(c);
                        i += 1;
                    }
                    Some(&c) => {
                        arg.push(c);
                        i += 1;
                    }
                },
            }
        }
        args.push(arg);
    }
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], limits: &Limits) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
        let mut decoder = Decoder::new();
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(args) = decoder.decode(&mut buf, limits)? {
            out.push(args);
        }
        Ok(out)
    }

    fn args(list: &[&str]) -> Vec<Bytes> {
        list.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect()
    }

    const PIPELINE: &[u8] =
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nv\r\nv\n\r\n*1\r\n$4\r\nPING\r\n*0\r\n*-1\r\nGET \"a b\"\r\n\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\n";

    fn pipeline_expected() -> Vec<Vec<Bytes>> {
        vec![args(&["SET", "k", "v\r\nv\n"]), args(&["PING"]), args(&["GET", "a b"]), args(&["ECHO", ""])]
    }

    #[test]
    fn decodes_multibulk_inline_and_skips_empty_requests() {
        assert_eq!(decode_all(PIPELINE, &Limits::default()).unwrap(), pipeline_expected());
    }

    #[test]
    fn every_split_point_gives_the_same_requests() {
        let limits = Limits::default();
        for split in 0..=PIPELINE.len() {
            let mut decoder = Decoder::new();
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for part in [&PIPELINE[..split], &PIPELINE[split..]] {
                buf.extend_from_slice(part);
                while let Some(a) = decoder.decode(&mut buf, &limits).unwrap() {
                    out.push(a);
                }
            }
            assert_eq!(out, pipeline_expected(), "split at {split}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn byte_at_a_time_gives_the_same_requests() {
        let limits = Limits::default();
        let mut decoder = Decoder::new();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for &b in PIPELINE {
            buf.extend_from_slice(&[b]);
            while let Some(a) = decoder.decode(&mut buf, &limits).unwrap() {
                out.push(a);
            }
        }
        assert_eq!(out, pipeline_expected());
    }

    #[test]
    fn large_arguments_are_shared_and_intact() {
        let value = vec![b'x'; SHARE_MIN + 5];
        let mut input = format!("*2\r\n$3\r\nSET\r\n${}\r\n", value.len()).into_bytes();
        input.extend_from_slice(&value);
        input.extend_from_slice(b"\r\n");
        assert_eq!(
            decode_all(&input, &Limits::default()).unwrap(),
            vec![vec![Bytes::from("SET"), Bytes::from(value)]]
        );
    }

    #[test]
    fn limits_are_enforced() {
        let small = Limits { max_bulk_len: 10, max_array_len: 3, max_inline_len: 8, ..Limits::default() };
        let err = |input: &[u8]| decode_all(input, &small).unwrap_err();
        assert_eq!(err(b"*4\r\n"), ProtocolError::InvalidMultibulkLength);
        assert_eq!(err(b"*1\r\n$11\r\n"), ProtocolError::InvalidBulkLength);
        assert_eq!(err(b"*1\r\n$-1\r\n"), ProtocolError::InvalidBulkLength);
        assert_eq!(err(b"*1\r\n$99999999999999999999\r\n"), ProtocolError::InvalidBulkLength);
        assert_eq!(err(b"PING 123456\r\n"), ProtocolError::InlineTooBig);
        assert_eq!(err(b"PING 1234567890"), ProtocolError::InlineTooBig);
        assert_eq!(err(b"a b c d\r\n"), ProtocolError::InvalidMultibulkLength);
        // A bulk within the limit but a request past the total.
        let total = Limits { max_request_len: 5, ..Limits::default() };
        assert_eq!(
            decode_all(b"*2\r\n$3\r\nGET\r\n$3\r\n", &total).unwrap_err(),
            ProtocolError::RequestTooLarge
        );
        // 512 MiB announced is refused on the header, before any of it is buffered.
        assert_eq!(
            decode_all(b"*1\r\n$536870912\r\n", &Limits::default()).unwrap_err(),
            ProtocolError::InvalidBulkLength
        );
        // Empty arguments still cost memory.
        let many = Limits { max_request_len: 100 * ARG_OVERHEAD, ..Limits::default() };
        let mut empties = b"*101\r\n".to_vec();
        for _ in 0..101 {
            empties.extend_from_slice(b"$0\r\n\r\n");
        }
        assert_eq!(decode_all(&empties, &many).unwrap_err(), ProtocolError::RequestTooLarge);
        assert_eq!(decode_all(&empties[..empties.len() - 6], &many).map(|r| r.len()), Ok(0));
        let unauth = Limits::default().unauthenticated();
        assert_eq!(
            decode_all(b"*11\r\n", &unauth).unwrap_err(),
            ProtocolError::UnauthenticatedMultibulkLength
        );
        assert_eq!(
            decode_all(b"*1\r\n$16385\r\n", &unauth).unwrap_err(),
            ProtocolError::UnauthenticatedBulkLength
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let limits = Limits::default();
        let err = |input: &[u8]| decode_all(input, &limits).unwrap_err();
        assert_eq!(err(b"*x\r\n"), ProtocolError::InvalidMultibulkLength);
        assert_eq!(err(b"*\r\n"), ProtocolError::InvalidMultibulkLength);
        assert_eq!(err(b"*+1\r\n"), ProtocolError::InvalidMultibulkLength);
        assert_eq!(err(b"*1\r\n+OK\r\n"), ProtocolError::ExpectedBulk("+".into()));
        assert_eq!(err(b"*1\r\n\x00"), ProtocolError::ExpectedBulk("\\x00".into()));
        assert_eq!(err(b"*1\r\n$3\r\nabcd\r\n"), ProtocolError::ExpectedCrlf);
        assert_eq!(err(b"*1\rx"), ProtocolError::ExpectedCrlf);
        assert_eq!(err(&[b'*'; 100]), ProtocolError::MultibulkHeaderTooBig);
        let mut long_bulk = b"*1\r\n$".to_vec();
        long_bulk.extend_from_slice(&[b'1'; 100]);
        assert_eq!(err(&long_bulk), ProtocolError::BulkHeaderTooBig);
        assert_eq!(err(b"SET \"a\r\n"), ProtocolError::UnbalancedQuotes);
        assert_eq!(err(b"SET \"a\"b\r\n"), ProtocolError::UnbalancedQuotes);
        // Random bytes never panic, whatever they decode to.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let len = (seed % 40) as usize;
            let mut input = Vec::with_capacity(len);
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                input.push(b"*$\r\n0123-x \"'\\"[(seed % 13) as usize]);
            }
            let _ = decode_all(&input, &limits);
        }
    }

    #[test]
    fn inline_quoting_follows_redis() {
        let split = |s: &str| {
            split_args(s.as_bytes())
                .map(|v| v.into_iter().map(|a| String::from_utf8_lossy(&a).into_owned()).collect::<Vec<_>>())
        };
        assert_eq!(split("  set  k   v "), Some(vec!["set".into(), "k".into(), "v".into()]));
        assert_eq!(
            split(r#"set "a\nb\x41\"" 'it\'s'"#),
            Some(vec!["set".into(), "a\nbA\"".into(), "it's".into()])
        );
        assert_eq!(split(r#"echo "\xZZ""#), Some(vec!["echo".into(), "xZZ".into()]));
        assert_eq!(split(r#"echo """#), Some(vec!["echo".into(), "".into()]));
        assert_eq!(split("echo 'a"), None);
        assert_eq!(split("echo 'a'b"), None);
        assert_eq!(split(""), Some(vec![]));
    }
}
