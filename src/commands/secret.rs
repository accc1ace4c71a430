//! `yun secret set|ls|rm`: secrets, encrypted at rest and given to functions as environment
//! variables. The value is read from standard input, never from the command line (which other
//! users can see in the process list and which shells keep in their history).

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, bail};
use reqwest::Method;

use crate::Global;
use crate::client::{Client, format_ms, print_json};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: SecretCommand,
}

#[derive(clap::Subcommand, Debug)]
enum SecretCommand {
    /// Set a secret from standard input (a trailing newline is dropped).
    Set { name: String },
    /// List secrets by name (values are never shown).
    Ls,
    /// Remove a secret no function uses.
    Rm { name: String },
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let client = Client::new(global)?;
    match args.command {
        SecretCommand::Set { name } => {
            let mut value = Vec::new();
            std::io::stdin().read_to_end(&mut value).context("reading the secret from standard input")?;
            // `echo value | yun secret set` and an interactive line both end in a newline
            // nobody means as part of the secret.
            if value.ends_with(b"\n") {
                value.pop();
                if value.ends_with(b"\r") {
                    value.pop();
                }
            }
            if value.is_empty() {
                bail!(
                    "no value on standard input: pipe it in, e.g. `printf %s \"$VALUE\" | yun secret set {name}`"
                );
            }
            let v =
                client.call(client.request(Method::PUT, &format!("/v1/secrets/{name}")).body(value)).await?;
            if global.json {
                print_json(&v);
            } else {
                let verb = if v["created"].as_bool() == Some(true) { "set" } else { "updated" };
                println!("secret {name} {verb}");
                let refreshed: Vec<&str> =
                    v["refreshed"].as_array().into_iter().flatten().filter_map(|f| f.as_str()).collect();
                if !refreshed.is_empty() {
                    println!("  functions using it now start with the new value: {}", refreshed.join(", "));
                }
            }
        }
        SecretCommand::Ls => {
            let v = client.call(client.request(Method::GET, "/v1/secrets")).await?;
            if global.json {
                print_json(&v);
            } else {
                let secrets = v["secrets"].as_array().cloned().unwrap_or_default();
                if secrets.is_empty() {
                    println!("no secrets: set one with `yun secret set NAME` (value on standard input)");
                }
                for s in secrets {
                    let used: Vec<&str> =
                        s["used_by"].as_array().into_iter().flatten().filter_map(|f| f.as_str()).collect();
                    println!(
                        "{:<32} updated {}{}",
                        s["name"].as_str().unwrap_or("-"),
                        format_ms(s["updated_at_ms"].as_u64().unwrap_or(0)),
                        if used.is_empty() {
                            String::new()
                        } else {
                            format!("  used by {}", used.join(", "))
                        }
                    );
                }
            }
        }
        SecretCommand::Rm { name } => {
            let v = client.call(client.request(Method::DELETE, &format!("/v1/secrets/{name}"))).await?;
            if global.json {
                print_json(&v);
            } else {
                println!("secret {name} removed");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
