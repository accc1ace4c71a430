//! Sockets inside an instance's network namespace.
//!
//! A socket belongs to the network namespace its creating thread was in, for its whole life, and
//! `setns` switches only the calling thread. One long-lived worker thread therefore switches into
//! the instance's namespace, creates the socket and hands the fd back; connecting, binding and all
//! I/O then happen on tokio's threads as usual.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};

type Reply = Box<dyn FnOnce(io::Result<OwnedFd>) + Send>;

struct Job {
    netns: Arc<OwnedFd>,
    reply: Reply,
}

static WORKER: OnceLock<Mutex<Sender<Job>>> = OnceLock::new();

fn worker() -> io::Result<Sender<Job>> {
    if let Some(tx) = WORKER.get() {
        return Ok(tx.lock().unwrap_or_else(|p| p.into_inner()).clone());
    }
    let (tx, rx) = channel::<Job>();
    let spawned = std::thread::Builder::new().name("yun-netns".into()).spawn(move || {
        for job in rx {
            (job.reply)(socket_in(&job.netns));
        }
    });
    spawned.map_err(|e| io::Error::new(e.kind(), format!("cannot start the netns worker thread: {e}")))?;
    // Another caller may have won the race: its worker serves everyone, ours exits with its channel.
    let tx = WORKER.get_or_init(|| Mutex::new(tx));
    Ok(tx.lock().unwrap_or_else(|p| p.into_inner()).clone())
}

fn socket_in(netns: &OwnedFd) -> io::Result<OwnedFd> {
    // SAFETY: setns on this worker thread only; socket returns a new descriptor we own.
    unsafe {
        if libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("cannot enter the instance's network namespace: {e}"),
            ));
        }
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// A new non-blocking TCP socket in `netns`, without blocking the async runtime.
pub(crate) async fn socket(netns: &Arc<OwnedFd>) -> io::Result<OwnedFd> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job = Job {
        netns: netns.clone(),
        reply: Box::new(move |r| {
            let _ = tx.send(r);
        }),
    };
    worker()?.send(job).map_err(|_| io::Error::other("the netns worker thread is gone"))?;
    rx.await.map_err(|_| io::Error::other("the netns worker thread is gone"))?
}

/// Same, for synchronous callers (creating a socket takes microseconds).
pub(crate) fn socket_blocking(netns: &Arc<OwnedFd>) -> io::Result<OwnedFd> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let job = Job {
        netns: netns.clone(),
        reply: Box::new(move |r| {
            let _ = tx.send(r);
        }),
    };
    worker()?.send(job).map_err(|_| io::Error::other("the netns worker thread is gone"))?;
    rx.recv().map_err(|_| io::Error::other("the netns worker thread is gone"))?
}
