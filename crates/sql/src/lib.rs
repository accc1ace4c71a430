//! yun's SQL databases: one SQLite file per app, confined to itself.
//!
//! [`Sql`] keeps `<dir>/<app>.sqlite3` for each app (WAL, `synchronous=FULL`, foreign keys on)
//! and runs [`Batch`]es of statements on it, each batch in one transaction, on a blocking
//! thread with a cached connection. User statements pass an authorizer: no ATTACH, no VACUUM
//! (INTO), no `load_extension`, no TEMP objects, no `_yun_*` tables, and only harmless pragmas;
//! a size limit (`max_page_count`), a batch timeout and a result bound apply. Writes to watched
//! tables are recorded, in the same transaction, in an outbox of ordered [`Change`]s.
//!
//! The JSON forms of requests, results and values are in [`batch`] and [`value`].
//!
//! # Change capture
//!
//! Off until [`Sql::watch`] names a table (or `"*"` for every table) of an app; the set is kept
//! in the database (`_yun_watch`), so it survives restarts. Until then no hook is installed
//! and writes cost nothing extra. For a watched table SQLite's update hook notes each
//! inserted, updated or deleted rowid; after each statement the engine reads the changed rows
//! (as JSON objects) and, just before the batch commits, appends them to `_yun_changes` in the
//! same transaction, so a change is recorded if and only if its batch commits. Consumers read
//! [`Sql::changes`] past their cursor, [`Sql::trim`] what they have handled, and await
//! [`Sql::subscribe`] for more. Limits, from SQLite's update hook: WITHOUT ROWID tables and
//! `DROP TABLE` report nothing; a row deleted because `INSERT OR REPLACE` conflicted on a
//! column other than the rowid reports nothing (one replaced on its rowid shows as an insert
//! of that rowid); a delete carries no old values. The outbox counts against the size limit,
//! and a batch's changes are held in memory until it commits.
//!
//! It is not: the HTTP API, the CLI or the wasm host interface (they are built on this), a
//! replicated or networked database, or a delivery mechanism for changes (consumers poll
//! [`Sql::changes`] and wait on [`Sql::subscribe`]).

pub mod batch;
mod db;
mod engine;
mod error;
pub mod value;

pub use batch::{Batch, BatchResult, Statement, StatementResult};
pub use engine::{
    Change, Clock, ColumnSchema, Config, DbSize, Op, Sql, SystemClock, TableSchema, validate_app,
};
pub use error::{SqlError, StatementError};
pub use value::{Params, Value};
