//! Echoes requests back and misbehaves on demand, so that yun's integration tests and benchmarks
//! can drive every path of the platform (streaming, traps, timeouts, memory limits, logs, outbound
//! calls, instance reuse) from a single component. See README.md for the query parameters.

use std::sync::atomic::{AtomicU64, Ordering};

use wasip2::clocks::monotonic_clock;
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};
use wasip2::io::streams::{OutputStream, StreamError};

/// Requests seen by this instance. It lives in linear memory, so it only survives between
/// requests when the host reuses the instance, which is exactly what tests want to observe.
static REQUESTS: AtomicU64 = AtomicU64::new(0);

/// How much to ask for per read: large enough to keep host calls few, small enough that a big
/// body is never held in memory at once.
const READ_CHUNK: usize = 64 * 1024;

struct Echo;

impl Guest for Echo {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let served = REQUESTS.fetch_add(1, Ordering::Relaxed) + 1;

        let path_with_query = request.path_with_query().unwrap_or_default();
        let (path, query) = path_with_query.split_once('?').unwrap_or((path_with_query.as_str(), ""));
        let request_headers = request.headers().entries();

        let (status, reply, set_headers) = match Params::parse(query) {
            // A guest bug the platform must survive: returning without ever setting a response.
            Ok(params) if params.no_response => return,
            Ok(params) => {
                let (status, reply) = params.run(served);
                (status, reply, params.set_headers)
            }
            Err(message) => (400, Reply::Text(message), Vec::new()),
        };

        let mut headers = vec![
            ("x-echo-method".to_string(), method_name(&request.method()).into_bytes()),
            ("x-echo-path".to_string(), path.as_bytes().to_vec()),
            ("x-echo-query".to_string(), query.as_bytes().to_vec()),
        ];
        for (name, value) in &request_headers {
            let name = name.to_ascii_lowercase();
            if name == "content-type" && matches!(reply, Reply::Echo) {
                headers.push((name.clone(), value.clone()));
            }
            headers.push((format!("x-echo-req-{name}"), value.clone()));
        }
        if !matches!(reply, Reply::Echo) {
            headers.push(("content-type".to_string(), b"text/plain".to_vec()));
        }
        // An explicit set-header replaces whatever echo would have sent under that name, so tests
        // can pin e.g. content-type without ending up with two.
        headers.retain(|(name, _)| !set_headers.iter().any(|(set, _)| set == name));
        headers.extend(set_headers);

        let fields = Fields::new();
        for (name, value) in &headers {
            // The host refuses names or values it could not put on the wire (and forbidden ones
            // such as connection); dropping just that header beats failing the whole response.
            let _ = fields.append(name, value);
        }
        let response = OutgoingResponse::new(fields);
        response.set_status_code(status).expect("status was range-checked while parsing");
        let body = response.body().expect("body is taken only once");
        // Sending the head before reading the request body is what lets a large body stream
        // through instead of being buffered here.
        ResponseOutparam::set(response_out, Ok(response));

        let out = body.write().expect("stream is taken only once");
        let written = match reply {
            Reply::Echo => copy_request_body(&request, &out),
            Reply::Text(text) => write_all(&out, text.as_bytes()),
            Reply::Repeat(len) => write_repeated(&out, b'x', len),
        }
        .and_then(|()| out.blocking_flush());
        // The stream is a child of the body: it must be gone before the body is finished.
        drop(out);
        // On a write error the client is gone; leaving the body unfinished tells the host the
        // response was cut short rather than complete.
        if written.is_ok() {
            let _ = OutgoingBody::finish(body, None);
        }
    }
}

wasip2::http::proxy::export!(Echo);

/// What to send as the response body.
enum Reply {
    /// Stream the request body back.
    Echo,
    Text(String),
    /// This many bytes of `x`.
    Repeat(u64),
}

#[derive(Default)]
struct Params {
    status: Option<u16>,
    set_headers: Vec<(String, Vec<u8>)>,
    print: Option<String>,
    trap: bool,
    spin: bool,
    alloc_mb: Option<u64>,
    size: Option<u64>,
    sleep_ms: Option<u64>,
    counter: bool,
    no_response: bool,
    env: Option<String>,
    fetch: Option<String>,
}

impl Params {
    /// Unknown parameters are ignored so that callers can add cache busters or labels freely.
    fn parse(query: &str) -> Result<Self, String> {
        let mut params = Params::default();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(key);
            let value = percent_decode(value);
            match key.as_str() {
                "status" => {
                    let status = number(&key, &value)?;
                    // Outside this range the host or the HTTP library refuses the response.
                    if !(100..=599).contains(&status) {
                        return Err(format!("status must be in 100..=599, got {status}\n"));
                    }
                    params.status = Some(status);
                }
                "set-header" => {
                    let Some((name, value)) = value.split_once(':') else {
                        return Err(format!("set-header wants name:value, got {value:?}\n"));
                    };
                    params
                        .set_headers
                        .push((name.trim().to_ascii_lowercase(), value.trim_start().as_bytes().to_vec()));
                }
                "print" => params.print = Some(value),
                "trap" => params.trap = flag(&value),
                "loop" => params.spin = flag(&value),
                "alloc_mb" => params.alloc_mb = Some(number(&key, &value)?),
                "size" => params.size = Some(number(&key, &value)?),
                "sleep_ms" => params.sleep_ms = Some(number(&key, &value)?),
                "counter" => params.counter = flag(&value),
                "no_response" => params.no_response = flag(&value),
                "env" => params.env = Some(value),
                "fetch" => params.fetch = Some(value),
                _ => {}
            }
        }
        Ok(params)
    }

    /// Carries out the side effects in a fixed order (print, trap, loop, sleep) and then picks the
    /// body; the first of `alloc_mb`, `size`, `counter`, `env` and `fetch` that is present wins.
    fn run(&self, served: u64) -> (u16, Reply) {
        if let Some(text) = &self.print {
            println!("{text}");
            eprintln!("stderr: {text}");
        }
        if self.trap {
            panic!("echo was asked to trap");
        }
        if self.spin {
            spin_forever();
        }
        if let Some(ms) = self.sleep_ms {
            monotonic_clock::subscribe_duration(ms.saturating_mul(1_000_000)).block();
        }

        let (status, reply) = if let Some(mib) = self.alloc_mb {
            allocate(mib)
        } else if let Some(len) = self.size {
            (200, Reply::Repeat(len))
        } else if self.counter {
            (200, Reply::Text(format!("{served}\n")))
        } else if let Some(name) = &self.env {
            match std::env::var(name) {
                Ok(value) => (200, Reply::Text(value)),
                Err(_) => (404, Reply::Text("unset\n".to_string())),
            }
        } else if let Some(url) = &self.fetch {
            fetch(url)
        } else {
            (200, Reply::Echo)
        };
        (self.status.unwrap_or(status), reply)
    }
}

fn flag(value: &str) -> bool {
    !matches!(value, "0" | "false")
}

fn number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
    value.parse().map_err(|_| format!("{key} wants a non-negative integer, got {value:?}\n"))
}

/// Form-style decoding (`+` is a space), because that is what HTTP clients' query builders emit.
/// A `%` not followed by two hex digits is kept as it is rather than rejected.
fn percent_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < bytes.len() => {
                if let (Some(high), Some(low)) = (hex_digit(bytes[i + 1]), hex_digit(bytes[i + 2])) {
                    out.push(high << 4 | low);
                    i += 3;
                } else {
                    out.push(b'%');
                    i += 1;
                }
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

fn method_name(method: &Method) -> String {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Connect => "CONNECT",
        Method::Options => "OPTIONS",
        Method::Trace => "TRACE",
        Method::Patch => "PATCH",
        Method::Other(other) => other,
    }
    .to_string()
}

/// Burns CPU until the host interrupts it (epoch or fuel), which is what timeout tests need.
fn spin_forever() -> ! {
    let mut spins = 0u64;
    loop {
        // black_box keeps the optimiser from proving the loop pointless.
        spins = std::hint::black_box(spins).wrapping_add(1);
    }
}

/// Grows linear memory by `mib` MiB for real. Exceeding the host's memory limit makes the
/// allocation fail, which aborts and so traps: that is the behaviour memory-limit tests look for.
fn allocate(mib: u64) -> (u16, Reply) {
    let Some(len) = usize::try_from(mib).ok().and_then(|mib| mib.checked_mul(1 << 20)) else {
        return (400, Reply::Text(format!("alloc_mb={mib} does not fit in memory\n")));
    };
    let mut block = vec![0u8; len];
    // Fresh wasm memory is known to be zero, so the allocation alone may never touch it; a write
    // per host page makes the host actually commit it.
    for i in (0..len).step_by(4096) {
        block[i] = 1;
    }
    std::hint::black_box(&block);
    (200, Reply::Text(format!("allocated {mib} MiB\n")))
}

fn fetch(url: &str) -> (u16, Reply) {
    let bad_url = || (400, Reply::Text(format!("cannot fetch {url:?}: want scheme://authority/path\n")));
    let Some((scheme, rest)) = url.split_once("://") else {
        return bad_url();
    };
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_string()),
    };
    let (authority, path_with_query) = match rest.find(['/', '?']) {
        Some(at) if rest[at..].starts_with('/') => (&rest[..at], rest[at..].to_string()),
        Some(at) => (&rest[..at], format!("/{}", &rest[at..])),
        None => (rest, "/".to_string()),
    };

    let request = OutgoingRequest::new(Fields::new());
    if request.set_scheme(Some(&scheme)).is_err()
        || request.set_authority(Some(authority)).is_err()
        || request.set_path_with_query(Some(&path_with_query)).is_err()
    {
        return bad_url();
    }
    let outbound_error = |code| (502, Reply::Text(format!("outbound error: {code:?}\n")));
    let future = match outgoing_handler::handle(request, None) {
        Ok(future) => future,
        Err(code) => return outbound_error(code),
    };
    let response = loop {
        match future.get() {
            Some(response) => break response,
            None => future.subscribe().block(),
        }
    };
    match response {
        Ok(Ok(response)) => (200, Reply::Text(format!("upstream status {}\n", response.status()))),
        Ok(Err(code)) => outbound_error(code),
        Err(()) => unreachable!("the response is taken only once"),
    }
}

fn copy_request_body(request: &IncomingRequest, out: &OutputStream) -> Result<(), StreamError> {
    let Ok(body) = request.consume() else {
        return Ok(());
    };
    let Ok(input) = body.stream() else {
        return Ok(());
    };
    loop {
        match input.blocking_read(READ_CHUNK as u64) {
            Ok(chunk) => write_all(out, &chunk)?,
            Err(StreamError::Closed) => break,
            Err(error) => return Err(error),
        }
    }
    // Same parent/child rule as for the outgoing body.
    drop(input);
    drop(IncomingBody::finish(body));
    Ok(())
}

fn write_repeated(out: &OutputStream, byte: u8, len: u64) -> Result<(), StreamError> {
    let chunk = vec![byte; READ_CHUNK];
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left).map_or(READ_CHUNK, |left| left.min(READ_CHUNK));
        write_all(out, &chunk[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// Writes no more than the host says it can take at once, waiting when its buffer is full; that
/// keeps a slow client from making the host buffer the whole body.
fn write_all(out: &OutputStream, mut data: &[u8]) -> Result<(), StreamError> {
    while !data.is_empty() {
        let permitted = out.check_write()?;
        if permitted == 0 {
            out.subscribe().block();
            continue;
        }
        let n = data.len().min(usize::try_from(permitted).unwrap_or(usize::MAX));
        out.write(&data[..n])?;
        data = &data[n..];
    }
    Ok(())
}
