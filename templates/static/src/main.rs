//! {{name}}: a yun function, an HTTP/1.1 server on the standard library only.
//!
//! It listens on `127.0.0.1:$PORT`, serves each connection on a thread of its own with
//! keep-alive, and answers every request with a greeting and the request's method and path.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

/// The first line of every answer.
const GREETING: &str = "Hello from {{name}}!";
/// The largest request head accepted; a bigger one is answered 400.
const MAX_HEAD: u64 = 64 * 1024;

fn main() {
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".to_string());
    let port: u16 = port.parse().unwrap_or_else(|_| {
        eprintln!("PORT={port:?} is not a port number");
        std::process::exit(2)
    });
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| {
        eprintln!("cannot listen on 127.0.0.1:{port}: {e}");
        std::process::exit(1)
    });
    println!("listening on {port}");
    for conn in listener.incoming() {
        match conn {
            Ok(conn) => {
                if let Err(e) = std::thread::Builder::new().spawn(move || serve(conn)) {
                    eprintln!("cannot start a thread: {e}");
                }
            }
            Err(e) => eprintln!("accept: {e}"),
        }
    }
}

/// The parts of a request head this server needs.
struct Request {
    method: String,
    target: String,
    content_length: u64,
    close: bool,
}

/// Serves requests on one connection until the client closes it or asks to.
fn serve(conn: TcpStream) {
    // The head and body go out in one write; without this, Nagle's algorithm would hold back
    // the next response behind the client's delayed ACK.
    let _ = conn.set_nodelay(true);
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let mut input = BufReader::new(conn);
    loop {
        let request = match read_request(&mut input) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                let _ = out.write_all(
                    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
                return;
            }
            Err(_) => return,
        };
        // The answer does not depend on the body, but it must be read past to reach the next request.
        let skipped = io::copy(
            &mut input.by_ref().take(request.content_length),
            &mut io::sink(),
        );
        if !matches!(skipped, Ok(n) if n == request.content_length) {
            return;
        }
        let body = format!("{GREETING}\n{} {}\n", request.method, request.target);
        let mut response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n{}\r\n",
            body.len(),
            if request.close {
                "connection: close\r\n"
            } else {
                ""
            }
        );
        if request.method != "HEAD" {
            response.push_str(&body);
        }
        if out.write_all(response.as_bytes()).is_err() || request.close {
            return;
        }
    }
}

/// Reads one request head, through the blank line that ends it. `Ok(None)` when the client
/// closed the connection between requests; `InvalidData` for what is not HTTP/1.x.
fn read_request(input: &mut BufReader<TcpStream>) -> io::Result<Option<Request>> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let mut head = Vec::new();
    // Read line by line until the blank line, never more than MAX_HEAD bytes in all.
    loop {
        let before = head.len();
        let n = input
            .by_ref()
            .take(MAX_HEAD + 1 - head.len() as u64)
            .read_until(b'\n', &mut head)?;
        if n == 0 {
            return if head.iter().all(|b| b.is_ascii_whitespace()) {
                Ok(None)
            } else {
                Err(invalid("connection closed in the middle of a request head"))
            };
        }
        if head.len() as u64 > MAX_HEAD {
            return Err(invalid("request head too large"));
        }
        let line = &head[before..];
        // A blank line before the request line is tolerated (RFC 9112 section 2.2).
        if (line == b"\r\n" || line == b"\n")
            && head[..before].iter().any(|b| !b.is_ascii_whitespace())
        {
            break;
        }
    }
    let head = String::from_utf8(head).map_err(|_| invalid("request head is not UTF-8"))?;
    let mut lines = head.lines().map(str::trim_end).skip_while(|l| l.is_empty());
    let request_line = lines.next().ok_or_else(|| invalid("empty request"))?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("malformed request line"));
    };
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return Err(invalid("not an HTTP/1.x request")),
    };
    let mut request = Request {
        method: method.to_string(),
        target: target.to_string(),
        content_length: 0,
        close: http10,
    };
    for line in lines.take_while(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid("malformed header line"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            request.content_length = value
                .parse()
                .map_err(|_| invalid("malformed content-length"))?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(invalid("chunked request bodies are not supported"));
        } else if name.eq_ignore_ascii_case("connection") {
            for option in value.split(',').map(str::trim) {
                if option.eq_ignore_ascii_case("close") {
                    request.close = true;
                } else if option.eq_ignore_ascii_case("keep-alive") && http10 {
                    request.close = false;
                }
            }
        }
    }
    Ok(Some(request))
}
