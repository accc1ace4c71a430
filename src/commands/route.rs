//! `yun route add|ls|rm`: custom routes from paths and hosts to functions (`/api/users/*` →
//! `users`); the longest match wins and a conflicting route is refused, naming both.

use std::process::ExitCode;

use reqwest::Method;
use serde_json::json;

use crate::Global;
use crate::client::{Client, print_json};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: RouteCommand,
}

#[derive(clap::Subcommand, Debug)]
enum RouteCommand {
    /// Route PATH (exact, `{param}` segments, or a trailing `*`) to FUNCTION[@TAG].
    Add {
        path: String,
        #[arg(value_name = "FUNCTION[@TAG]")]
        target: String,
        /// Only for requests to this host (e.g. api.example.com).
        #[arg(long)]
        host: Option<String>,
    },
    /// List the routes.
    Ls,
    /// Remove the route of PATH (and --host).
    Rm {
        path: String,
        #[arg(long)]
        host: Option<String>,
    },
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let client = Client::new(global)?;
    match args.command {
        RouteCommand::Add { path, target, host } => {
            let (function, tag) = match target.split_once('@') {
                Some((f, t)) => (f.to_string(), Some(t.to_string())),
                None => (target.clone(), None),
            };
            let body = json!({ "path": path, "function": function, "tag": tag, "host": host });
            let v = client.call(client.request(Method::POST, "/v1/routes").json(&body)).await?;
            if global.json {
                print_json(&v);
            } else {
                println!("route {}", v["route"].as_str().unwrap_or("-"));
            }
        }
        RouteCommand::Ls => {
            let v = client.call(client.request(Method::GET, "/v1/routes")).await?;
            if global.json {
                print_json(&v);
            } else {
                let routes = v["routes"].as_array().cloned().unwrap_or_default();
                if routes.is_empty() {
                    println!("no routes: add one with `yun route add /api/* FUNCTION`");
                }
                for r in routes {
                    println!("{}", r["route"].as_str().unwrap_or("-"));
                }
            }
        }
        RouteCommand::Rm { path, host } => {
            let mut query = form_urlencoded::Serializer::new(String::new());
            query.append_pair("path", &path);
            if let Some(h) = &host {
                query.append_pair("host", h);
            }
            let url = format!("/v1/routes?{}", query.finish());
            let v = client.call(client.request(Method::DELETE, &url)).await?;
            if global.json {
                print_json(&v);
            } else {
                println!("removed route {}{path}", host.map(|h| h + " ").unwrap_or_default());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
