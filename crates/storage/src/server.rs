//! The S3 listener: hyper over s3s's service, with a connection limit, a header read timeout
//! against slowloris clients, and graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::s3::{Access, Auth, YunS3};
use crate::{Keys, ObjectStore};

/// How long a client may take to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long requests in flight at shutdown may take to finish.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

pub struct S3Server {
    pub store: Arc<ObjectStore>,
    pub keys: Arc<Keys>,
    /// What SigV4 scopes are signed for and the region buckets report: `us-east-1` normally.
    pub region: String,
    pub max_connections: usize,
}

/// Serves the S3 API on `listener` until `shutdown` completes, then lets requests in flight
/// finish (up to [`DRAIN_TIMEOUT`]).
pub async fn serve(
    listener: TcpListener,
    server: S3Server,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let keys = (*server.keys).clone();
    let mut builder = S3ServiceBuilder::new(YunS3 {
        store: (*server.store).clone(),
        keys: keys.clone(),
        region: server.region.clone(),
    });
    builder.set_auth(Auth { keys: keys.clone() });
    builder.set_access(Access { keys });
    let service = builder.build();

    let connections = Arc::new(Semaphore::new(server.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT).keep_alive(true);
    http.http2().timer(TokioTimer::new());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = connections.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors must not end the server: wait and retry.
                    tracing::warn!("s3: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let conn = http.serve_connection(TokioIo::new(stream), service.clone()).into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("s3: connection ended: {e}");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!("s3: drain timeout passed with requests in flight; closing them");
        }
    }
    Ok(())
}
