//! yun's Redis-protocol endpoint: RESP2 and RESP3 on a TCP listener, so redis-cli, redis-py and
//! redis-benchmark talk to yun's key-value stores unmodified.
//!
//! Bytes become [`Request`]s at the boundary (the [`Decoder`] frames multibulk and inline
//! requests under strict [`Limits`]; [`parse`] validates arity, options and integers with Redis'
//! error texts); the server answers the session commands itself (PING, ECHO, SELECT, AUTH, HELLO,
//! CLIENT, INFO, COMMAND, CONFIG GET, QUIT, RESET) and hands each pipeline's data [`Command`]s to a
//! [`Handler`] as one batch; [`Reply`] is encoded for the protocol the client chose.
//!
//! It is not: the storage engine (a [`Handler`] implements the data semantics), Redis Cluster,
//! pub/sub, transactions (MULTI/EXEC), scripting, blocking commands, or TLS.

mod command;
mod frame;
mod handler;
mod reply;
mod server;

pub use command::{
    COMMAND_NAMES, ClientAttr, Command, CommandError, ExpireCondition, KeyType, MAX_RELATIVE_MILLIS, Request,
    SetCondition, SetTtl, Side, TtlUnit, parse, parse_int, valid_client_name,
};
pub use frame::{ARG_OVERHEAD, Decoder, Limits, ProtocolError, split_args};
pub use handler::{AuthError, Handler, KeyspaceStats};
pub use reply::{Protocol, Reply, format_double};
pub use server::{Config, serve};
