use std::io;

/// Why one statement of a batch failed. The batch was rolled back whole.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatementError {
    /// The authorizer refused something the statement does (ATTACH, a pragma, `_yun_*` tables...).
    #[error("not allowed: {0}")]
    Denied(String),
    #[error("database is full (limit {limit} bytes)")]
    Full { limit: u64 },
    #[error("interrupted: the batch ran longer than its {ms} ms limit")]
    Timeout { ms: u64 },
    #[error("result too large: more than {limit} {what}")]
    ResultTooLarge { limit: u64, what: &'static str },
    #[error("not read-only, but the batch is read_only")]
    NotReadOnly,
    #[error("holds more than one SQL statement; send each as its own statement or use a script")]
    MultipleStatements,
    #[error("parameters: {0}")]
    Params(String),
    /// SQLite's own message: a syntax error, a constraint, `no such table`...
    #[error("{0}")]
    Sqlite(String),
}

/// What an operation of [`crate::Sql`] can fail with; [`SqlError::status`] maps it to HTTP.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("invalid app name {0:?}: 1-63 characters of lowercase letters, digits and hyphens")]
    InvalidApp(String),
    #[error("no database for app {0:?}")]
    NoDatabase(String),
    #[error("invalid table name {0:?}")]
    InvalidTable(String),
    #[error("invalid script: {0}")]
    InvalidScript(String),
    /// Statement `index` (0-based, in batch order) failed; nothing of the batch was kept.
    #[error("statement {index} failed: {error}")]
    Statement { index: usize, error: StatementError },
    /// Every statement ran, but writing the change outbox or committing failed; nothing was kept.
    #[error("committing the batch failed: {0}")]
    Commit(StatementError),
    #[error("the batch is empty")]
    EmptyBatch,
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
    /// SQLite failed outside any one statement (opening, committing).
    #[error("database: {0}")]
    Db(String),
}

impl SqlError {
    /// The HTTP status an API answers this error with.
    pub fn status(&self) -> u16 {
        match self {
            SqlError::InvalidApp(_)
            | SqlError::InvalidTable(_)
            | SqlError::InvalidScript(_)
            | SqlError::EmptyBatch => 400,
            SqlError::NoDatabase(_) => 404,
            SqlError::Statement { error, .. } | SqlError::Commit(error) => match error {
                StatementError::Denied(_) => 403,
                StatementError::Full { .. } => 507,
                StatementError::Timeout { .. } => 408,
                StatementError::ResultTooLarge { .. } => 413,
                StatementError::NotReadOnly
                | StatementError::MultipleStatements
                | StatementError::Params(_)
                | StatementError::Sqlite(_) => 400,
            },
            SqlError::Io(_) | SqlError::Db(_) => 500,
        }
    }
}

impl From<rusqlite::Error> for SqlError {
    fn from(e: rusqlite::Error) -> Self {
        SqlError::Db(e.to_string())
    }
}
