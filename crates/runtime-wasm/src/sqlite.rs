//! `fermyon:spin/sqlite@2.0.0`, the SQLite interface of Spin's SDK, over yun's SQL databases.
//! Each `execute` is a request to `/v1/sql/{db}` made in-process with the function's scoped
//! token: one statement, in a transaction of its own, on a database the function was deployed
//! with (`--sql DB`). `BEGIN`/`COMMIT` across calls do not make one transaction; what must be
//! atomic goes into one statement (an upsert, `INSERT ... SELECT`, a `RETURNING` clause).

use base64::Engine as _;
use serde_json::{Value as Json, json};
use wasmtime::component::Resource;

use crate::host::Host;
use crate::local::{CallError, Reply, is_plain_name};

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit/sqlite",
        world: "fermyon:spin/imports",
        imports: { default: async | trappable },
        with: {
            "fermyon:spin/sqlite.connection": super::SqlConnection,
        },
    });
}

use bindings::fermyon::spin::sqlite::{self, Error, QueryResult, RowResult, Value};

/// An open connection: the yun database it names.
pub struct SqlConnection {
    database: String,
}

pub(crate) fn add_to_linker(linker: &mut wasmtime::component::Linker<Host>) -> wasmtime::Result<()> {
    sqlite::add_to_linker::<Host, wasmtime::component::HasSelf<Host>>(linker, |h| h)
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A parameter in the API's JSON form (non-finite reals and blobs are tagged objects).
fn param(v: &Value) -> Json {
    match v {
        Value::Integer(i) => json!(i),
        Value::Real(r) if r.is_finite() => json!(r),
        Value::Real(r) => json!({ "real": non_finite_name(*r) }),
        Value::Text(s) => json!(s),
        Value::Blob(b) => json!({ "base64": B64.encode(b) }),
        Value::Null => Json::Null,
    }
}

fn non_finite_name(r: f64) -> &'static str {
    if r.is_nan() {
        "NaN"
    } else if r > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

/// A column value from the API's JSON form.
fn value(v: &Json) -> Result<Value, Error> {
    Ok(match v {
        Json::Null => Value::Null,
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Real(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::Text(s.clone()),
        Json::Object(o) if o.contains_key("base64") => {
            let b = o["base64"].as_str().unwrap_or_default();
            Value::Blob(B64.decode(b).map_err(|e| Error::Io(format!("a blob yun sent is not base64: {e}")))?)
        }
        Json::Object(o) if o.contains_key("real") => Value::Real(match o["real"].as_str() {
            Some("Infinity") => f64::INFINITY,
            Some("-Infinity") => f64::NEG_INFINITY,
            _ => f64::NAN,
        }),
        other => return Err(Error::Io(format!("unexpected value from yun: {other}"))),
    })
}

/// The interface's error for a refusal. A 403 is access-denied only when it is about the
/// function's scope: a statement SQLite's authorizer refuses (`ATTACH`, say) is an I/O error
/// with yun's message, as is a 413 for a request too large rather than a database full.
fn error_of(reply: &Reply) -> Error {
    let message = reply.message();
    match reply.status {
        401 => Error::AccessDenied,
        403 if message.contains("was not deployed with") => Error::AccessDenied,
        404 => Error::NoSuchDatabase,
        413 if message.contains("full") => Error::DatabaseFull,
        _ => Error::Io(message),
    }
}

fn call_error(e: CallError) -> Error {
    match e {
        CallError::Unavailable => Error::Io("SQL databases are not available here".into()),
        e => Error::Io(e.to_string()),
    }
}

/// The first result of a batch reply as the interface's query result.
fn query_result(reply: &Json) -> Result<QueryResult, Error> {
    let first = &reply["results"][0];
    let columns = first["columns"]
        .as_array()
        .ok_or_else(|| Error::Io(format!("unexpected reply from yun: {reply}")))?
        .iter()
        .map(|c| c.as_str().unwrap_or_default().to_owned())
        .collect();
    let rows = first["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|row| {
            let values = row.as_array().into_iter().flatten().map(value).collect::<Result<_, _>>()?;
            Ok(RowResult { values })
        })
        .collect::<Result<_, Error>>()?;
    Ok(QueryResult { columns, rows })
}

impl Host {
    async fn sql_batch(&mut self, database: &str, body: Json) -> Result<Json, Error> {
        let reply = self
            .local_json(http::Method::POST, format!("/v1/sql/{database}"), &body)
            .await
            .map_err(call_error)?;
        if !reply.ok() {
            return Err(error_of(&reply));
        }
        reply.json().map_err(Error::Io)
    }
}

impl sqlite::Host for Host {}

impl sqlite::HostConnection for Host {
    async fn open(&mut self, database: String) -> wasmtime::Result<Result<Resource<SqlConnection>, Error>> {
        // `default` goes to the API as it is: the API resolves it to the function's first
        // declared database, as Spin does.
        let name = database;
        if !is_plain_name(&name) {
            return Ok(Err(Error::NoSuchDatabase));
        }
        // Checks the function may use the database before handing out a connection, as Spin
        // does, with a statement that reads nothing.
        let probe = json!({ "statements": [{ "sql": "SELECT 1" }], "read_only": true });
        if let Err(e) = self.sql_batch(&name, probe).await {
            return Ok(Err(e));
        }
        Ok(Ok(self.table.push(SqlConnection { database: name })?))
    }

    async fn execute(
        &mut self,
        connection: Resource<SqlConnection>,
        statement: String,
        parameters: Vec<Value>,
    ) -> wasmtime::Result<Result<QueryResult, Error>> {
        let Ok(conn) = self.table.get(&connection) else {
            return Ok(Err(Error::InvalidConnection));
        };
        let database = conn.database.clone();
        let params: Vec<Json> = parameters.iter().map(param).collect();
        let body = json!({ "statements": [{ "sql": statement, "params": params }] });
        Ok(self.sql_batch(&database, body).await.and_then(|reply| query_result(&reply)))
    }

    async fn drop(&mut self, connection: Resource<SqlConnection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::fake::{self, error, json as reply};
    use sqlite::HostConnection as _;

    fn borrow<T: 'static>(r: &Resource<T>) -> Resource<T> {
        Resource::new_borrow(r.rep())
    }

    fn ok_empty() -> (u16, Vec<u8>) {
        reply(
            200,
            json!({"results": [{"columns": ["1"], "rows": [[1]], "rows_affected": 0, "last_insert_rowid": 0}]}),
        )
    }

    #[tokio::test]
    async fn open_probes_the_database_read_only_as_the_function() {
        let (mut host, api) = fake::host(|_| ok_empty());
        let conn = host.open("default".into()).await.unwrap().unwrap();
        let seen = api.requests();
        assert_eq!((seen[0].method.as_str(), seen[0].path_and_query.as_str()), ("POST", "/v1/sql/default"));
        assert_eq!(seen[0].json(), json!({"statements": [{"sql": "SELECT 1"}], "read_only": true}));
        assert_eq!(seen[0].authorization, "Bearer yunf.fn1.mac");
        assert_eq!(host.table.get(&conn).unwrap().database, "default");

        for name in ["../x", "a/b", "", "a?b"] {
            assert!(matches!(host.open(name.into()).await.unwrap(), Err(Error::NoSuchDatabase)), "{name}");
        }
        assert_eq!(api.requests().len(), 1);
    }

    #[tokio::test]
    async fn values_cross_in_both_directions_with_their_types() {
        let (mut host, api) = fake::host(|seen| {
            if seen.json()["read_only"] == true {
                return ok_empty();
            }
            reply(
                200,
                json!({"results": [{
                    "columns": ["i", "r", "t", "b", "n", "inf", "whole"],
                    "rows": [[-7, 2.5, "héllo", {"base64": "AP8="}, null, {"real": "-Infinity"}, 3.0]],
                    "rows_affected": 0, "last_insert_rowid": 0
                }]}),
            )
        });
        let conn = host.open("app".into()).await.unwrap().unwrap();
        let params = vec![
            Value::Integer(i64::MIN),
            Value::Real(0.5),
            Value::Real(f64::INFINITY),
            Value::Real(f64::NAN),
            Value::Text("x".into()),
            Value::Blob(vec![1, 2]),
            Value::Null,
        ];
        let result = host.execute(borrow(&conn), "SELECT ?, ?".into(), params).await.unwrap().unwrap();
        let sent = api.requests().last().unwrap().json();
        assert_eq!(
            sent,
            json!({"statements": [{"sql": "SELECT ?, ?", "params": [
                i64::MIN, 0.5, {"real": "Infinity"}, {"real": "NaN"}, "x", {"base64": "AQI="}, null
            ]}]})
        );
        assert_eq!(result.columns, ["i", "r", "t", "b", "n", "inf", "whole"]);
        let row = &result.rows[0].values;
        assert!(matches!(row[0], Value::Integer(-7)));
        assert!(matches!(row[1], Value::Real(r) if r == 2.5));
        assert!(matches!(&row[2], Value::Text(t) if t == "héllo"));
        assert!(matches!(&row[3], Value::Blob(b) if b == &[0, 255]));
        assert!(matches!(row[4], Value::Null));
        assert!(matches!(row[5], Value::Real(r) if r == f64::NEG_INFINITY));
        assert!(matches!(row[6], Value::Real(r) if r == 3.0), "a real that is whole stays a real");
    }

    #[tokio::test]
    async fn refusals_map_to_the_interface_errors() {
        let (mut host, _) = fake::host(|seen| match seen.path_and_query.as_str() {
            "/v1/sql/theirs" => error(403, "function fn1 was not deployed with --sql theirs"),
            "/v1/sql/gone" => error(404, "no database for app \"gone\""),
            _ if seen.json()["read_only"] == true => ok_empty(),
            _ => match seen.json()["statements"][0]["sql"].as_str().unwrap() {
                "FULL" => error(413, "statement 0 failed: database is full (limit 1024 bytes)"),
                "ATTACH 'x' AS y" => error(403, "statement 0 failed: not allowed: ATTACH"),
                "HUGE" => error(413, "the request body is larger than 16 MiB"),
                _ => error(400, "statement 0 failed: near \"SELEC\": syntax error"),
            },
        });
        assert!(matches!(host.open("theirs".into()).await.unwrap(), Err(Error::AccessDenied)));
        assert!(matches!(host.open("gone".into()).await.unwrap(), Err(Error::NoSuchDatabase)));
        let conn = host.open("app".into()).await.unwrap().unwrap();
        assert!(matches!(
            host.execute(borrow(&conn), "FULL".into(), vec![]).await.unwrap(),
            Err(Error::DatabaseFull)
        ));
        for (statement, says) in
            [("SELEC 1", "syntax error"), ("ATTACH 'x' AS y", "not allowed"), ("HUGE", "larger")]
        {
            match host.execute(borrow(&conn), statement.into(), vec![]).await.unwrap() {
                Err(Error::Io(m)) => assert!(m.contains(says), "{m}"),
                other => panic!("{statement}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_dropped_connection_is_invalid() {
        let (mut host, api) = fake::host(|_| ok_empty());
        let conn = host.open("app".into()).await.unwrap().unwrap();
        let stale = borrow(&conn);
        sqlite::HostConnection::drop(&mut host, conn).await.unwrap();
        assert!(matches!(
            host.execute(stale, "SELECT 1".into(), vec![]).await.unwrap(),
            Err(Error::InvalidConnection)
        ));
        assert_eq!(api.requests().len(), 1, "nothing is sent for a stale handle");
    }
}
