//! The seam to the storage engine: the server parses and answers the protocol, a [`Handler`]
//! decides what credentials mean and executes data commands.

use std::future::Future;

use crate::command::Command;
use crate::reply::Reply;

/// Why `AUTH` (or `HELLO ... AUTH`) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Unknown user, wrong password, disabled key: the client sees
    /// `-WRONGPASS invalid username-password pair or user is disabled.` (with Redis' full stop).
    #[error("invalid username-password pair or user is disabled.")]
    Invalid,
    /// The check itself failed (the key store is unavailable): `-ERR <message>`.
    #[error("{0}")]
    Unavailable(String),
}

impl AuthError {
    pub fn to_reply(&self) -> Reply {
        match self {
            AuthError::Invalid => Reply::error_code("WRONGPASS", self.to_string()),
            AuthError::Unavailable(message) => Reply::err(message),
        }
    }
}

/// One database's line in `INFO keyspace` (`db0:keys=N,expires=M,avg_ttl=0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyspaceStats {
    pub db: u8,
    pub keys: u64,
    /// How many of the keys have a time to live.
    pub expires: u64,
}

/// What the server needs from the engine.
pub trait Handler: Send + Sync + 'static {
    /// What an authenticated connection is bound to (e.g. which store its key opens, and whether
    /// it may write).
    type Session: Send + Sync + 'static;

    /// The session of a connection that has not authenticated. `None` means authentication is
    /// required: until `AUTH` succeeds every command but AUTH, HELLO, QUIT and RESET gets
    /// `-NOAUTH Authentication required.`.
    fn anonymous(&self) -> Option<Self::Session>;

    /// Checks a credential. `user` is absent for `AUTH password` (Redis' `default` user).
    fn authenticate(
        &self,
        user: Option<&[u8]>,
        password: &[u8],
    ) -> impl Future<Output = Result<Self::Session, AuthError>> + Send;

    /// Runs a pipeline of data commands, in order, for one session and database. It must return
    /// exactly one reply per command (the server answers missing ones with an error and drops
    /// extra ones, but that is a bug in the handler).
    fn execute(
        &self,
        session: &Self::Session,
        db: u8,
        commands: Vec<Command>,
    ) -> impl Future<Output = Vec<Reply>> + Send;

    /// Key counts for `INFO keyspace`: only databases holding keys need be listed.
    fn keyspace(&self, session: &Self::Session) -> impl Future<Output = Vec<KeyspaceStats>> + Send;
}
