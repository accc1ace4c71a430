//! yun's Redis endpoint: the protocol layer (`yun-resp`) bound to the key-value engine
//! (`yun-kv`), so redis-cli, redis-py and redis-benchmark read and write yun's stores.
//!
//! [`RedisEndpoint`] implements [`yun_resp::Handler`]: every data [`yun_resp::Command`] becomes
//! one [`yun_kv::Op`], and a pipeline's commands go to [`yun_kv::Db::exec`] together, so N
//! pipelined writes are one trip to the engine's writer and one group commit, and a pipeline of
//! reads is answered from memory without waiting for the writer. Replies and error texts are
//! Redis' (`WRONGTYPE ...`, `ERR value is not an integer or out of range`, ...); RESP3 clients
//! get maps for HGETALL and sets for SMEMBERS.
//!
//! Authentication is the caller's policy behind [`Credentials`]: `AUTH token`,
//! `AUTH store token` and `HELLO 3 AUTH store token` ask it for a [`Grant`], which binds the
//! connection to one store (SELECT picks a database within it). Redis' `default` user means no
//! user, as `AUTH token` is `AUTH default token` in Redis.
//!
//! It is not: the wire protocol (`yun-resp`), the storage engine (`yun-kv`), or the policy of
//! which token may open which store (the control plane implements [`Credentials`]).

mod auth;
mod endpoint;
mod map;

use std::future::Future;
use std::io;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use auth::{Credentials, Grant};
pub use endpoint::{RedisEndpoint, Session};

/// Serves the Redis protocol for `endpoint` on `listener` until `shutdown` completes (then
/// connections finish their pipeline, up to `config.drain_timeout`). What `yun up` starts.
pub async fn serve(
    listener: TcpListener,
    endpoint: Arc<RedisEndpoint>,
    config: yun_resp::Config,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    yun_resp::serve(listener, endpoint, config, shutdown).await
}
