//! `yun sql DB "SELECT ..."`, `yun sql DB --file migrations.sql`, `yun sql ls|schema|rm`: a
//! database's statements through the management API. A script runs in one transaction.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::{Value, json};

use crate::Global;
use crate::client::{Client, print_json};

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<SqlCommand>,
    /// The database (made by its first statement).
    db: Option<String>,
    /// The statements: one or more, separated by `;`, run in one transaction.
    statement: Option<String>,
    /// Run the statements in this file instead (one transaction).
    #[arg(long, conflicts_with = "statement")]
    file: Option<PathBuf>,
    /// A positional parameter for `?` placeholders (repeatable): a number, `null`, or text.
    #[arg(long = "param", short = 'p')]
    params: Vec<String>,
    /// Refuse anything that writes.
    #[arg(long)]
    read_only: bool,
}

#[derive(clap::Subcommand, Debug)]
enum SqlCommand {
    /// The databases and their sizes.
    Ls,
    /// A database's tables and columns.
    Schema { db: String },
    /// Delete a database.
    Rm { db: String },
}

/// `42` and `1.5` are numbers, `null` is NULL, anything else is text (quote nothing: this is
/// a parameter, never SQL).
fn param(p: &str) -> Value {
    if p == "null" {
        Value::Null
    } else if let Ok(i) = p.parse::<i64>() {
        json!(i)
    } else if let Ok(f) =
        p.parse::<f64>().map_err(drop).and_then(|f| if f.is_finite() { Ok(f) } else { Err(()) })
    {
        json!(f)
    } else {
        json!(p)
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::String(s) => s.clone(),
        Value::Object(m) if m.contains_key("base64") => format!("x'{}'", m["base64"].as_str().unwrap_or("")),
        Value::Object(m) if m.contains_key("real") => m["real"].as_str().unwrap_or("").to_string(),
        other => other.to_string(),
    }
}

/// Prints a result as an aligned table, or its counts when it returned no columns.
fn print_result(r: &Value) {
    let columns: Vec<String> =
        r["columns"].as_array().into_iter().flatten().map(|c| c.as_str().unwrap_or("").to_string()).collect();
    if columns.is_empty() {
        println!("ok ({} rows changed)", r["rows_affected"]);
        return;
    }
    let rows: Vec<Vec<String>> = r["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|row| row.as_array().into_iter().flatten().map(cell).collect())
        .collect();
    let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
    for row in &rows {
        for (i, c) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count()).min(60);
            }
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    println!("{}", line(&columns));
    println!("{}", widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "));
    for row in &rows {
        println!("{}", line(row));
    }
    println!("({} rows)", rows.len());
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let client = Client::new(global)?;
    let v = match (args.command, args.db) {
        (Some(SqlCommand::Ls), _) => {
            let v = client.call(client.request(Method::GET, "/v1/sql")).await?;
            if !global.json {
                for d in v["databases"].as_array().into_iter().flatten() {
                    println!(
                        "{:<32} {:>14} bytes used (limit {})",
                        d["name"].as_str().unwrap_or("-"),
                        d["used_bytes"],
                        d["limit_bytes"]
                    );
                }
            }
            v
        }
        (Some(SqlCommand::Schema { db }), _) => {
            let v = client.call(client.request(Method::GET, &format!("/v1/sql/{db}/schema"))).await?;
            if !global.json {
                for t in v["tables"].as_array().into_iter().flatten() {
                    println!("{}", t["name"].as_str().unwrap_or("-"));
                    for c in t["columns"].as_array().into_iter().flatten() {
                        println!(
                            "  {:<24} {}{}{}",
                            c["name"].as_str().unwrap_or("-"),
                            c["decl_type"].as_str().unwrap_or(""),
                            if c["primary_key"].as_u64().unwrap_or(0) > 0 { " PRIMARY KEY" } else { "" },
                            if c["not_null"] == true { " NOT NULL" } else { "" }
                        );
                    }
                }
            }
            v
        }
        (Some(SqlCommand::Rm { db }), _) => {
            let v = client.call(client.request(Method::DELETE, &format!("/v1/sql/{db}"))).await?;
            if !global.json {
                println!("deleted database {db}");
            }
            v
        }
        (None, Some(db)) => {
            let request = match (args.statement, args.file) {
                (_, Some(file)) => {
                    if !args.params.is_empty() {
                        bail!("--param goes with one statement, not with --file");
                    }
                    let script = std::fs::read_to_string(&file)
                        .with_context(|| format!("reading {}", file.display()))?;
                    json!({ "script": script, "read_only": args.read_only })
                }
                (Some(statement), None) if args.params.is_empty() => {
                    json!({ "script": statement, "read_only": args.read_only })
                }
                (Some(statement), None) => json!({
                    "statements": [{ "sql": statement, "params": args.params.iter().map(|p| param(p)).collect::<Vec<_>>() }],
                    "read_only": args.read_only,
                }),
                (None, None) => bail!("give a statement (yun sql {db} \"SELECT 1\") or --file FILE"),
            };
            let v =
                client.call(client.request(Method::POST, &format!("/v1/sql/{db}")).json(&request)).await?;
            if !global.json {
                let results = v["results"].as_array().cloned().unwrap_or_default();
                // A script's last result is what a user asked to see; the rest only changed rows.
                let changed: u64 = results.iter().map(|r| r["rows_affected"].as_u64().unwrap_or(0)).sum();
                match results.last() {
                    Some(last)
                        if results.len() == 1
                            || last["columns"].as_array().is_some_and(|c| !c.is_empty()) =>
                    {
                        print_result(last)
                    }
                    _ => println!("ok: {} statements, {changed} rows changed", results.len()),
                }
            }
            v
        }
        (None, None) => bail!("name a database: yun sql DB \"SELECT ...\", or yun sql ls"),
    };
    if global.json {
        print_json(&v);
    }
    Ok(ExitCode::SUCCESS)
}
