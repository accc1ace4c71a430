//! SQL databases through yun's API (`/v1/sql/...`): what `yun sql`, process functions (through
//! `YUN_API`) and wasm guests (the sqlite interface) use. One SQLite database per name; a
//! function's token reaches only the databases it was deployed with (`--sql`). A database
//! comes into being on its first statement.

use serde::Deserialize;
use serde_json::json;
use yun_sql::{Batch, SqlError};
use yun_types::ErrorCode;

use crate::{ApiError, ApiResult, ControlPlane, Incoming, bad, body, read_json_body};

/// The largest request: statements and their parameters (blobs included).
const MAX_SQL_JSON: usize = 16 << 20;

impl From<SqlError> for ApiError {
    fn from(e: SqlError) -> Self {
        let code = match e.status() {
            400 => ErrorCode::BadRequest,
            403 => ErrorCode::Forbidden,
            404 => ErrorCode::NotFound,
            408 => ErrorCode::Timeout,
            413 | 507 => ErrorCode::PayloadTooLarge,
            _ => {
                tracing::error!("sql: {e}");
                ErrorCode::Internal
            }
        };
        ApiError::new(code, e.to_string())
    }
}

/// A request: statements, or a script split by SQLite's own rules.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    #[serde(default)]
    statements: Option<Vec<yun_sql::Statement>>,
    #[serde(default)]
    script: Option<String>,
    #[serde(default)]
    read_only: bool,
}

impl ControlPlane {
    fn sql(&self) -> Result<&yun_sql::Sql, ApiError> {
        self.sql.as_ref().ok_or_else(|| ApiError::new(ErrorCode::Unavailable, "the SQL service is off"))
    }

    pub(crate) async fn list_databases(&self) -> ApiResult {
        let sql = self.sql()?;
        let mut out = Vec::new();
        for name in sql.list_apps().await? {
            let size = sql.size(&name).await?;
            out.push(json!({
                "name": name,
                "used_bytes": size.used_bytes,
                "file_bytes": size.file_bytes,
                "limit_bytes": size.limit_bytes,
            }));
        }
        Ok(body::json(200, &json!({ "databases": out })))
    }

    pub(crate) async fn sql_execute(&self, db: &str, incoming: Incoming) -> ApiResult {
        let bytes = read_json_body(incoming, MAX_SQL_JSON).await?;
        let r: Request = serde_json::from_slice(&bytes).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let mut batch = match (r.statements, r.script) {
            (Some(statements), None) => Batch::new(statements),
            (None, Some(script)) => Batch::from_script(&script)?,
            _ => return Err(bad("a request has either \"statements\": [...] or \"script\": \"...\"")),
        };
        batch.read_only = r.read_only;
        let result = self.sql()?.execute(db, batch).await?;
        Ok(body::json(200, &result))
    }

    pub(crate) async fn sql_schema(&self, db: &str) -> ApiResult {
        let tables = self.sql()?.schema(db).await?;
        Ok(body::json(200, &json!({ "tables": tables })))
    }

    pub(crate) async fn delete_database(&self, db: &str) -> ApiResult {
        let sql = self.sql()?;
        let _changing = self.changes.lock().await;
        let users = self.functions_declaring(|s| &s.sql, db)?;
        if !users.is_empty() {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("functions {} use database {db}: deploy them without it first", users.join(", ")),
            ));
        }
        if !sql.delete(db).await? {
            return Err(ApiError::new(ErrorCode::NotFound, format!("no database {db}")));
        }
        Ok(body::json(200, &json!({ "deleted": db })))
    }
}
