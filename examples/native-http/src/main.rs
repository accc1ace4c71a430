//! A tiny HTTP/1.1 server on `std` only: `127.0.0.1:$PORT`, a thread per connection,
//! keep-alive, `Hello, world!` for every request. See README.md.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

const BODY: &[u8] = b"Hello, world!";
/// Largest request head accepted.
const MAX_HEAD: usize = 64 * 1024;

fn main() {
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p.parse().unwrap_or_else(|_| {
            eprintln!("native-http: PORT={p:?} is not a port number");
            std::process::exit(2)
        }),
        Err(_) => 8080,
    };
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| {
        eprintln!("native-http: cannot listen on 127.0.0.1:{port}: {e}");
        std::process::exit(1)
    });
    println!("listening on {port}");
    for stream in listener.incoming() {
        match stream {
            Ok(s) => {
                if let Err(e) = std::thread::Builder::new().spawn(move || serve(s)) {
                    eprintln!("native-http: cannot start a thread: {e}");
                }
            }
            Err(e) => eprintln!("native-http: accept: {e}"),
        }
    }
}

/// What a request head says about the connection.
struct Head {
    content_length: u64,
    close: bool,
}

/// Reads one request head (up to and including the blank line). `Ok(None)` at a clean EOF
/// between requests.
fn read_head(r: &mut BufReader<TcpStream>) -> io::Result<Option<Head>> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
    let mut line = Vec::new();
    let mut total = 0;
    let mut first = true;
    let mut head = Head { content_length: 0, close: false };
    let mut http10 = false;
    let mut keep_alive = false;
    loop {
        line.clear();
        let n = r.by_ref().take((MAX_HEAD - total + 1) as u64).read_until(b'\n', &mut line)?;
        if n == 0 {
            return if first { Ok(None) } else { Err(bad("connection closed mid-head")) };
        }
        total += n;
        if total > MAX_HEAD || !line.ends_with(b"\n") {
            return Err(bad("request head too large"));
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if first {
            if text.is_empty() {
                continue; // tolerate stray CRLF between requests (RFC 9112 2.2)
            }
            first = false;
            let mut parts = text.split(' ');
            let (_method, _target, version) = (parts.next(), parts.next(), parts.next());
            match version {
                Some("HTTP/1.1") => {}
                Some("HTTP/1.0") => http10 = true,
                _ => return Err(bad("not an HTTP/1.x request line")),
            }
            continue;
        }
        if text.is_empty() {
            head.close |= http10 && !keep_alive;
            return Ok(Some(head));
        }
        let Some((name, value)) = text.split_once(':') else { return Err(bad("malformed header")) };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            head.content_length = value.parse().map_err(|_| bad("bad content-length"))?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(bad("chunked request bodies are not supported"));
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',') {
                let token = token.trim();
                if token.eq_ignore_ascii_case("close") {
                    head.close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        }
    }
}

fn serve(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(mut out) = stream.try_clone() else { return };
    let mut r = BufReader::new(stream);
    loop {
        let head = match read_head(&mut r) {
            Ok(Some(h)) => h,
            Ok(None) => return,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                let _ = out
                    .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                return;
            }
            Err(_) => return,
        };
        // Skip the request body: the answer does not depend on it.
        match io::copy(&mut r.by_ref().take(head.content_length), &mut io::sink()) {
            Ok(n) if n == head.content_length => {}
            _ => return,
        }
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n",
            BODY.len(),
            if head.close { "Connection: close\r\n" } else { "" }
        );
        let mut buf = Vec::with_capacity(response.len() + BODY.len());
        buf.extend_from_slice(response.as_bytes());
        buf.extend_from_slice(BODY);
        if out.write_all(&buf).is_err() || head.close {
            return;
        }
    }
}
