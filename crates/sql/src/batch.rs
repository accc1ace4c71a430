//! Requests and results: a batch of statements, run in one transaction.
//!
//! JSON of a request (`Batch`):
//! ```json
//! {"statements": [{"sql": "INSERT INTO t (a, b) VALUES (?, ?)", "params": [1, "x"]},
//!                 {"sql": "SELECT * FROM t WHERE a = :a", "params": {"a": 1}}],
//!  "read_only": false}
//! ```
//! and of its result (`BatchResult`), one entry per statement in order:
//! ```json
//! {"results": [{"columns": [], "rows": [], "rows_affected": 1, "last_insert_rowid": 1},
//!              {"columns": ["a", "b"], "rows": [[1, "x"]], "rows_affected": 0, "last_insert_rowid": 1}]}
//! ```

use std::ffi::CString;

use serde::{Deserialize, Serialize};

use crate::SqlError;
use crate::value::{Params, Value};

/// One SQL statement and its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    pub sql: String,
    #[serde(default, skip_serializing_if = "Params::is_empty")]
    pub params: Params,
}

impl Statement {
    pub fn new(sql: impl Into<String>) -> Self {
        Statement { sql: sql.into(), params: Params::default() }
    }

    /// With positional parameters (`?`, `?NNN`).
    pub fn with_params(sql: impl Into<String>, params: impl IntoIterator<Item = Value>) -> Self {
        Statement { sql: sql.into(), params: Params::Positional(params.into_iter().collect()) }
    }

    /// With named parameters (`:name`, `@name`, `$name`).
    pub fn with_named<K: Into<String>>(
        sql: impl Into<String>,
        params: impl IntoIterator<Item = (K, Value)>,
    ) -> Self {
        Statement {
            sql: sql.into(),
            params: Params::Named(params.into_iter().map(|(k, v)| (k.into(), v)).collect()),
        }
    }
}

/// Statements that run in one transaction: all of them take effect, or none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub statements: Vec<Statement>,
    /// Every statement must be read-only (a SELECT, a read PRAGMA); nothing is written.
    #[serde(default)]
    pub read_only: bool,
}

impl Batch {
    pub fn new(statements: impl IntoIterator<Item = Statement>) -> Self {
        Batch { statements: statements.into_iter().collect(), read_only: false }
    }

    /// One read-only statement.
    pub fn query(statement: Statement) -> Self {
        Batch { statements: vec![statement], read_only: true }
    }

    /// The statements of a script (`yun sql APP --file migrations.sql`), without parameters.
    ///
    /// A statement ends at a `;` that SQLite's own `sqlite3_complete` says completes it, so
    /// `;` inside strings, quoted names, comments and `CREATE TRIGGER ... BEGIN ...; END`
    /// bodies does not split. Comment-only pieces are dropped; text after the last `;` is a
    /// statement of its own. (Splitting cannot use `prepare`'s tail: preparing needs the schema
    /// the script's earlier statements create. The engine still prepares each piece with tail
    /// checking, so a piece holding two statements is refused, never half run.)
    pub fn from_script(script: &str) -> Result<Batch, SqlError> {
        if script.contains('\0') {
            return Err(SqlError::InvalidScript("the script contains a NUL byte".into()));
        }
        let mut statements = Vec::new();
        let mut start = 0;
        for end in semicolons_outside_quotes(script) {
            let piece = &script[start..=end];
            if sqlite_complete(piece) {
                push_piece(&mut statements, piece);
                start = end + 1;
            }
        }
        push_piece(&mut statements, &script[start..]);
        Ok(Batch::new(statements))
    }
}

fn push_piece(out: &mut Vec<Statement>, piece: &str) {
    if !is_blank(piece) {
        out.push(Statement::new(piece.trim()));
    }
}

fn sqlite_complete(sql: &str) -> bool {
    // from_script refused NULs, so this cannot fail.
    let Ok(c) = CString::new(sql) else { return false };
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call; sqlite3_complete only
    // reads it and needs no connection.
    unsafe { rusqlite::ffi::sqlite3_complete(c.as_ptr()) != 0 }
}

/// What SQLite's tokenizer treats as one token, for the cheap pre-pass below.
enum Lexeme {
    Semicolon(usize),
    /// Whitespace, a comment, or the rest of the text up to the next interesting byte.
    Skip,
    Other,
}

/// Byte offsets of the `;`s that are not inside a string literal, a quoted identifier or a
/// comment. Only these can end a statement, so `sqlite3_complete` (which rescans its whole
/// input) is asked about them alone: a long string full of `;` costs one pass, not one per `;`.
fn semicolons_outside_quotes(s: &str) -> Vec<usize> {
    let mut out = Vec::new();
    lex(s, |l| {
        if let Lexeme::Semicolon(i) = l {
            out.push(i);
        }
    });
    out
}

/// Only whitespace, comments and `;`.
fn is_blank(s: &str) -> bool {
    let mut blank = true;
    lex(s, |l| {
        if matches!(l, Lexeme::Other) {
            blank = false;
        }
    });
    blank
}

fn lex(s: &str, mut f: impl FnMut(Lexeme)) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b';' => {
                f(Lexeme::Semicolon(i));
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = b[i..].iter().position(|&c| c == b'\n').map_or(b.len(), |p| i + p + 1);
                f(Lexeme::Skip);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = s[i + 2..].find("*/").map_or(b.len(), |p| i + 2 + p + 2);
                f(Lexeme::Skip);
            }
            q @ (b'\'' | b'"' | b'`' | b'[') => {
                let close = if q == b'[' { b']' } else { q };
                let mut j = i + 1;
                loop {
                    match b[j..].iter().position(|&c| c == close) {
                        None => {
                            j = b.len();
                            break;
                        }
                        // A doubled quote is an escaped one, except in [names].
                        Some(p) if q != b'[' && b.get(j + p + 1) == Some(&close) => j += p + 2,
                        Some(p) => {
                            j += p + 1;
                            break;
                        }
                    }
                }
                i = j;
                f(Lexeme::Other);
            }
            c if c.is_ascii_whitespace() => {
                i += 1;
                f(Lexeme::Skip);
            }
            _ => {
                i += 1;
                f(Lexeme::Other);
            }
        }
    }
}

/// The first keyword of a statement, uppercased, past whitespace and comments.
pub(crate) fn leading_keyword(sql: &str) -> String {
    let mut rest = sql;
    loop {
        let t = rest.trim_start();
        if let Some(r) = t.strip_prefix("--") {
            rest = r.find('\n').map_or("", |p| &r[p + 1..]);
        } else if let Some(r) = t.strip_prefix("/*") {
            rest = r.find("*/").map_or("", |p| &r[p + 2..]);
        } else {
            rest = t;
            break;
        }
    }
    rest.chars().take_while(|c| c.is_ascii_alphabetic()).collect::<String>().to_ascii_uppercase()
}

/// What one statement returned.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatementResult {
    /// Column names of the rows (empty for a statement that returns none).
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    /// Rows the statement inserted, updated or deleted (not counting triggers); 0 for others.
    pub rows_affected: u64,
    /// The connection's last inserted rowid after the statement (SQLite's `last_insert_rowid()`).
    pub last_insert_rowid: i64,
}

/// The results of a committed batch, one per statement, in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchResult {
    pub results: Vec<StatementResult>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> Vec<String> {
        Batch::from_script(s).unwrap().statements.into_iter().map(|s| s.sql).collect()
    }

    #[test]
    fn splits_on_statement_ends_only() {
        assert_eq!(split("SELECT 1; SELECT 2"), ["SELECT 1;", "SELECT 2"]);
        assert_eq!(
            split("INSERT INTO t VALUES ('a;b', \"c;d\", [e;f], `g;h`);\n-- x; y\nSELECT 'it''s; ok';"),
            ["INSERT INTO t VALUES ('a;b', \"c;d\", [e;f], `g;h`);", "-- x; y\nSELECT 'it''s; ok';"]
        );
        assert_eq!(split("/* a; b */ SELECT 1;;  ; -- trailing; comment\n"), ["/* a; b */ SELECT 1;"]);
        assert!(split("  -- only a comment; really\n /* and; this */ ").is_empty());
    }

    #[test]
    fn a_trigger_body_stays_whole() {
        let script = "CREATE TABLE a(x);\n\
            CREATE TRIGGER tr AFTER INSERT ON a BEGIN\n  INSERT INTO log VALUES (new.x, ';');\n  UPDATE c SET n = n + 1;\nEND;\n\
            CREATE TEMP TRIGGER t2 BEFORE DELETE ON a BEGIN SELECT 1; END;\nSELECT 2;";
        let s = split(script);
        assert_eq!(s.len(), 4, "{s:#?}");
        assert!(s[1].starts_with("CREATE TRIGGER tr") && s[1].ends_with("END;"), "{}", s[1]);
        assert!(s[2].starts_with("CREATE TEMP TRIGGER") && s[2].ends_with("END;"));
        assert_eq!(s[3], "SELECT 2;");
    }

    #[test]
    fn nul_is_refused() {
        assert!(matches!(Batch::from_script("SELECT 1;\0"), Err(SqlError::InvalidScript(_))));
    }

    #[test]
    fn leading_keyword_skips_comments() {
        assert_eq!(leading_keyword("  -- c\n /* d */ vacuum into 'x'"), "VACUUM");
        assert_eq!(leading_keyword("select 1"), "SELECT");
        assert_eq!(leading_keyword("-- nothing"), "");
    }

    #[test]
    fn batch_json_has_the_documented_shape() {
        let b: Batch = serde_json::from_str(
            r#"{"statements": [{"sql": "SELECT ?", "params": [1]}, {"sql": "SELECT :a", "params": {"a": "x"}}, {"sql": "SELECT 1"}]}"#,
        )
        .unwrap();
        assert!(!b.read_only);
        assert_eq!(b.statements[0], Statement::with_params("SELECT ?", [Value::Integer(1)]));
        assert_eq!(b.statements[1], Statement::with_named("SELECT :a", [("a", Value::from("x"))]));
        assert_eq!(b.statements[2], Statement::new("SELECT 1"));
        let r = BatchResult {
            results: vec![StatementResult {
                columns: vec!["a".into()],
                rows: vec![vec![Value::Integer(1)]],
                rows_affected: 0,
                last_insert_rowid: 0,
            }],
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"results":[{"columns":["a"],"rows":[[1]],"rows_affected":0,"last_insert_rowid":0}]}"#
        );
    }
}
