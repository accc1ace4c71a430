//! `yun storage mb|rb|ls|cp|rm|keys`: buckets and objects of yun's object store, through the
//! management API (the admin token), with a progress bar for large transfers; and the access
//! keys S3 clients (aws CLI, boto3, any SDK) sign with at the S3 endpoint.
//!
//! Objects are named like the aws CLI names them: `s3://BUCKET/KEY`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Global;
use crate::client::{Client, check, format_ms, print_json};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: StorageCommand,
}

#[derive(clap::Subcommand, Debug)]
enum StorageCommand {
    /// Make a bucket.
    Mb { bucket: String },
    /// Remove an empty bucket.
    Rb { bucket: String },
    /// The buckets, or a bucket's objects: `ls`, `ls s3://B`, `ls s3://B/prefix/`.
    Ls {
        target: Option<String>,
        /// Every key under the prefix, not grouped by `/`.
        #[arg(long, short)]
        recursive: bool,
    },
    /// Copy a file to an object or an object to a file (`-` is stdin or stdout).
    Cp { from: String, to: String },
    /// Remove an object.
    Rm { object: String },
    /// Access keys for the S3 API.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(clap::Subcommand, Debug)]
enum KeysCommand {
    /// Make a key; its secret is shown once.
    Create {
        /// Only these buckets (repeatable); every bucket when absent.
        #[arg(long = "bucket")]
        buckets: Vec<String>,
        /// Read, never write.
        #[arg(long)]
        read_only: bool,
    },
    Ls,
    Rm {
        id: String,
    },
}

/// `s3://bucket/key` → (bucket, key); the key may be empty.
fn object_path(s: &str) -> Option<(String, String)> {
    let rest = s.strip_prefix("s3://")?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    (!bucket.is_empty()).then(|| (bucket.to_string(), key.to_string()))
}

fn object_url(bucket: &str, key: &str) -> String {
    let key: String = form_urlencoded::byte_serialize(key.as_bytes()).collect();
    format!("/v1/storage/buckets/{bucket}/object?key={key}")
}

fn bar(len: Option<u64>) -> ProgressBar {
    let bar = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    bar.set_style(
        ProgressStyle::with_template("{bytes}/{total_bytes} {wide_bar} {binary_bytes_per_sec} {eta}")
            .expect("a valid template"),
    );
    bar
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let client = Client::new(global)?;
    let v: Value = match args.command {
        StorageCommand::Mb { bucket } => {
            let v =
                client.call(client.request(Method::PUT, &format!("/v1/storage/buckets/{bucket}"))).await?;
            if !global.json {
                println!("made bucket {bucket}");
            }
            v
        }
        StorageCommand::Rb { bucket } => {
            let v =
                client.call(client.request(Method::DELETE, &format!("/v1/storage/buckets/{bucket}"))).await?;
            if !global.json {
                println!("removed bucket {bucket}");
            }
            v
        }
        StorageCommand::Ls { target: None, .. } => {
            let v = client.call(client.request(Method::GET, "/v1/storage/buckets")).await?;
            if !global.json {
                println!(
                    "S3 API at {} (region {})",
                    v["s3_url"].as_str().unwrap_or("-"),
                    v["region"].as_str().unwrap_or("-")
                );
                for b in v["buckets"].as_array().into_iter().flatten() {
                    println!(
                        "{}  {:<40} {:>8} objects {:>14} bytes",
                        format_ms(b["created_ms"].as_u64().unwrap_or(0)),
                        b["name"].as_str().unwrap_or("-"),
                        b["objects"],
                        b["bytes"]
                    );
                }
            }
            v
        }
        StorageCommand::Ls { target: Some(t), recursive } => {
            let Some((bucket, prefix)) = object_path(&t) else {
                bail!("name a bucket as s3://BUCKET[/PREFIX]")
            };
            let mut all = Vec::new();
            let mut prefixes = Vec::new();
            let mut start_after: Option<String> = None;
            loop {
                let mut q = form_urlencoded::Serializer::new(String::new());
                q.append_pair("prefix", &prefix);
                if !recursive {
                    q.append_pair("delimiter", "/");
                }
                if let Some(s) = &start_after {
                    q.append_pair("start_after", s);
                }
                let path = format!("/v1/storage/buckets/{bucket}/objects?{}", q.finish());
                let page = client.call(client.request(Method::GET, &path)).await?;
                all.extend(page["objects"].as_array().cloned().unwrap_or_default());
                prefixes.extend(page["common_prefixes"].as_array().cloned().unwrap_or_default());
                match page["next_start_after"].as_str() {
                    Some(next) if page["truncated"] == true => start_after = Some(next.to_string()),
                    _ => break,
                }
            }
            if !global.json {
                for p in &prefixes {
                    println!("{:>24}  {:>14}  {}", "", "PRE", p.as_str().unwrap_or("-"));
                }
                for o in &all {
                    println!(
                        "{}  {:>14}  {}",
                        format_ms(o["last_modified_ms"].as_u64().unwrap_or(0)),
                        o["size"],
                        o["key"].as_str().unwrap_or("-")
                    );
                }
            }
            json!({ "bucket": bucket, "objects": all, "common_prefixes": prefixes })
        }
        StorageCommand::Cp { from, to } => match (object_path(&from), object_path(&to)) {
            (None, Some((bucket, key))) => upload(&client, global, &from, &bucket, &key).await?,
            (Some((bucket, key)), None) => download(&client, global, &bucket, &key, &to).await?,
            (Some(_), Some(_)) => bail!(
                "copy between objects with an S3 client (aws s3 cp); yun storage cp moves files in and out"
            ),
            (None, None) => bail!("one side of cp is an object, s3://BUCKET/KEY"),
        },
        StorageCommand::Rm { object } => {
            let Some((bucket, key)) = object_path(&object).filter(|(_, k)| !k.is_empty()) else {
                bail!("name the object as s3://BUCKET/KEY (remove a bucket with `yun storage rb`)")
            };
            let v = client.call(client.request(Method::DELETE, &object_url(&bucket, &key))).await?;
            if !global.json {
                if v["deleted"] == true {
                    println!("removed s3://{bucket}/{key}");
                } else {
                    println!("s3://{bucket}/{key} did not exist");
                }
            }
            v
        }
        StorageCommand::Keys { command: KeysCommand::Create { buckets, read_only } } => {
            let mut body = json!({ "read_only": read_only });
            if !buckets.is_empty() {
                body["buckets"] = json!(buckets);
            }
            let v = client.call(client.request(Method::POST, "/v1/storage/keys").json(&body)).await?;
            if !global.json {
                println!("access key id:     {}", v["access_key_id"].as_str().unwrap_or("-"));
                println!(
                    "secret access key: {}  (shown once)",
                    v["secret_access_key"].as_str().unwrap_or("-")
                );
                println!(
                    "scope:             {} {}",
                    if read_only { "read-only" } else { "read-write" },
                    if buckets.is_empty() {
                        "on every bucket".to_string()
                    } else {
                        format!("on {}", buckets.join(", "))
                    }
                );
                println!(
                    "use:               AWS_ENDPOINT_URL_S3={} AWS_REGION={} aws s3 ls",
                    v["s3_url"].as_str().unwrap_or("-"),
                    v["region"].as_str().unwrap_or("-")
                );
            }
            v
        }
        StorageCommand::Keys { command: KeysCommand::Ls } => {
            let v = client.call(client.request(Method::GET, "/v1/storage/keys")).await?;
            if !global.json {
                for k in v["keys"].as_array().into_iter().flatten() {
                    let scope = match k["buckets"].as_array() {
                        Some(b) => b.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(","),
                        None => "*".into(),
                    };
                    println!(
                        "{}  {}  {}  {}",
                        k["access_key_id"].as_str().unwrap_or("-"),
                        format_ms(k["created_ms"].as_u64().unwrap_or(0)),
                        if k["read_only"] == true { "read-only " } else { "read-write" },
                        scope
                    );
                }
            }
            v
        }
        StorageCommand::Keys { command: KeysCommand::Rm { id } } => {
            let v = client.call(client.request(Method::DELETE, &format!("/v1/storage/keys/{id}"))).await?;
            if !global.json {
                println!("removed key {id}");
            }
            v
        }
    };
    if global.json {
        print_json(&v);
    }
    Ok(ExitCode::SUCCESS)
}

/// Streams a file (or stdin) into an object; the server keeps nothing until all of it is on disk.
async fn upload(
    client: &Client,
    global: &Global,
    from: &str,
    bucket: &str,
    key: &str,
) -> anyhow::Result<Value> {
    let key = if key.is_empty() || key.ends_with('/') {
        let name = PathBuf::from(from);
        let name = name.file_name().and_then(|n| n.to_str()).context("name the object: s3://BUCKET/KEY")?;
        format!("{key}{name}")
    } else {
        key.to_string()
    };
    let (reader, len): (Box<dyn tokio::io::AsyncRead + Send + Unpin>, Option<u64>) = if from == "-" {
        (Box::new(tokio::io::stdin()), None)
    } else {
        let file = tokio::fs::File::open(from).await.with_context(|| format!("opening {from}"))?;
        let len = file.metadata().await?.len();
        (Box::new(file), Some(len))
    };
    let progress = bar(len);
    let shown = progress.clone();
    let chunks = futures::stream::unfold(reader, |mut r| async move {
        let mut buf = vec![0u8; 256 * 1024];
        match r.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), r))
            }
            Err(e) => Some((Err(e), r)),
        }
    })
    .inspect(move |chunk| {
        if let Ok(c) = chunk {
            shown.inc(c.len() as u64);
        }
    });
    let mut req =
        client.request(Method::PUT, &object_url(bucket, &key)).body(reqwest::Body::wrap_stream(chunks));
    if let Some(n) = len {
        req = req.header(reqwest::header::CONTENT_LENGTH, n);
    }
    let v = client.call(req).await;
    progress.finish_and_clear();
    let v = v?;
    if !global.json {
        println!("uploaded {from} to s3://{bucket}/{key} ({} bytes)", v["size"]);
    }
    Ok(v)
}

/// Streams an object to a file (written beside it, then renamed: never half a file) or stdout.
async fn download(
    client: &Client,
    global: &Global,
    bucket: &str,
    key: &str,
    to: &str,
) -> anyhow::Result<Value> {
    let response = check(client.send(client.request(Method::GET, &object_url(bucket, key))).await?).await?;
    let progress = bar(response.content_length());
    let mut stream = response.bytes_stream();
    let mut total = 0u64;
    if to == "-" {
        let mut out = tokio::io::stdout();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.context("reading the object")?;
            out.write_all(&chunk).await?;
            total += chunk.len() as u64;
        }
        out.flush().await?;
    } else {
        let dest = if std::path::Path::new(to).is_dir() {
            PathBuf::from(to).join(key.rsplit('/').next().unwrap_or(key))
        } else {
            PathBuf::from(to)
        };
        let tmp = dest.with_extension("yun-partial");
        let mut file =
            tokio::fs::File::create(&tmp).await.with_context(|| format!("creating {}", tmp.display()))?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.context("reading the object")?;
            file.write_all(&chunk).await?;
            total += chunk.len() as u64;
            progress.inc(chunk.len() as u64);
        }
        file.sync_all().await?;
        tokio::fs::rename(&tmp, &dest).await?;
        if !global.json {
            progress.finish_and_clear();
            println!("downloaded s3://{bucket}/{key} to {} ({total} bytes)", dest.display());
        }
    }
    progress.finish_and_clear();
    Ok(json!({ "bucket": bucket, "key": key, "bytes": total }))
}
