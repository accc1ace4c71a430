//! A process's stdout and stderr, line by line, into the function's logs.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use yun_telemetry::{LogEntry, LogSink, LogStream};

/// Longest line kept whole; longer ones are split, so a process printing without newlines
/// cannot grow yun's memory.
const MAX_LINE: usize = 16 * 1024;
/// Stderr lines remembered for error messages (a process that failed to start).
const TAIL_LINES: usize = 10;

/// Lines read this soon after the last invocation ended still belong to it: a process writes
/// its output before it answers, but the pipe is read by another task, sometimes after the
/// response went out.
const LATE_LINES: std::time::Duration = std::time::Duration::from_millis(100);

#[derive(Default)]
struct InFlight {
    ids: Vec<String>,
    last: Option<(String, std::time::Instant)>,
}

/// Who the lines of one instance belong to.
pub(crate) struct Attribution {
    pub sink: Arc<dyn LogSink>,
    pub function: Arc<str>,
    pub revision: u64,
    /// Invocations in flight on the instance: a line is attributed to the invocation when it is
    /// the only one, and to none (`-`) when requests overlap.
    in_flight: Mutex<InFlight>,
    stderr_tail: Mutex<VecDeque<String>>,
}

impl Attribution {
    pub fn new(sink: Arc<dyn LogSink>, function: Arc<str>, revision: u64) -> Arc<Self> {
        Arc::new(Self {
            sink,
            function,
            revision,
            in_flight: Mutex::new(InFlight::default()),
            stderr_tail: Mutex::new(VecDeque::new()),
        })
    }

    pub fn begin(&self, invocation_id: &str) {
        let mut v = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        v.ids.push(invocation_id.to_string());
        v.last = None;
    }

    pub fn end(&self, invocation_id: &str) {
        let mut v = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = v.ids.iter().position(|id| id == invocation_id) {
            v.ids.swap_remove(i);
        }
        if v.ids.is_empty() {
            v.last = Some((invocation_id.to_string(), std::time::Instant::now()));
        }
    }

    fn current(&self) -> String {
        let v = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        match (v.ids.as_slice(), &v.last) {
            ([only], _) => only.clone(),
            ([], Some((id, ended))) if ended.elapsed() < LATE_LINES => id.clone(),
            _ => "-".to_string(),
        }
    }

    /// A line from yun itself about this instance, in its stderr log.
    pub fn note(&self, line: &str) {
        self.emit(LogStream::Stderr, format!("[yun] {line}"));
    }

    /// The last stderr lines the process wrote, oldest first.
    pub fn stderr_tail(&self) -> Vec<String> {
        self.stderr_tail.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
    }

    fn emit(&self, stream: LogStream, line: String) {
        if stream == LogStream::Stderr {
            let mut tail = self.stderr_tail.lock().unwrap_or_else(|p| p.into_inner());
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line.clone());
        }
        self.sink.emit(LogEntry {
            ts_ms: yun_types::now_ms(),
            function: self.function.to_string(),
            revision: self.revision,
            invocation_id: self.current(),
            stream,
            line,
        });
    }
}

/// Copies `reader` into the logs until it ends. Resolves when the process closed the stream.
pub(crate) async fn pump(reader: impl AsyncRead + Unpin, stream: LogStream, to: Arc<Attribution>) {
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let mut limited = reader.take_line(MAX_LINE, &mut buf);
        match limited.read().await {
            Ok(0) => return,
            Ok(_) => {
                while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    buf.pop();
                }
                to.emit(stream, String::from_utf8_lossy(&buf).into_owned());
            }
            Err(_) => return,
        }
    }
}

/// `read_until(b'\n')` that stops after `max` bytes.
trait TakeLine: AsyncBufReadExt + Unpin + Sized {
    fn take_line<'a>(&'a mut self, max: usize, buf: &'a mut Vec<u8>) -> LineRead<'a, Self> {
        LineRead { reader: self, max, buf }
    }
}

impl<R: AsyncBufReadExt + Unpin> TakeLine for R {}

struct LineRead<'a, R> {
    reader: &'a mut R,
    max: usize,
    buf: &'a mut Vec<u8>,
}

impl<R: AsyncBufReadExt + Unpin> LineRead<'_, R> {
    async fn read(&mut self) -> std::io::Result<usize> {
        let mut total = 0;
        loop {
            let available = self.reader.fill_buf().await?;
            if available.is_empty() {
                return Ok(total);
            }
            let room = self.max - self.buf.len();
            let (take, done) = match available.iter().take(room).position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (available.len().min(room), available.len() >= room),
            };
            self.buf.extend_from_slice(&available[..take]);
            self.reader.consume(take);
            total += take;
            if done {
                return Ok(total);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Collect(Mutex<Vec<LogEntry>>);
    impl LogSink for Collect {
        fn emit(&self, entry: LogEntry) {
            self.0.lock().unwrap().push(entry);
        }
    }

    #[tokio::test]
    async fn lines_are_attributed_to_the_only_invocation_in_flight() {
        let sink = Arc::new(Collect(Mutex::new(vec![])));
        let to = Attribution::new(sink.clone(), "f".into(), 2);
        to.begin("a");
        pump(&b"one\r\ntwo"[..], LogStream::Stdout, to.clone()).await;
        to.begin("b");
        pump(&b"three\n"[..], LogStream::Stderr, to.clone()).await;
        to.end("a");
        let long = vec![b'x'; MAX_LINE + 10];
        pump(&long[..], LogStream::Stderr, to.clone()).await;
        to.end("b");
        pump(&b"late\n"[..], LogStream::Stdout, to.clone()).await;
        let got: Vec<(String, String)> =
            sink.0.lock().unwrap().iter().map(|e| (e.invocation_id.clone(), e.line.clone())).collect();
        assert_eq!(got[0], ("a".into(), "one".into()));
        assert_eq!(got[1], ("a".into(), "two".into()));
        assert_eq!(got[2], ("-".into(), "three".into()));
        assert_eq!((got[3].0.as_str(), got[3].1.len()), ("b", MAX_LINE));
        assert_eq!(got[4].1.len(), 10);
        assert_eq!(got[5], ("b".into(), "late".into()), "a line right after the end is still its");
        assert_eq!(to.stderr_tail().len(), 3);
    }
}
