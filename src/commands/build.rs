//! `yun build [-f yun.toml] [NAME...]`: build the app's functions as `yun.toml` says, showing
//! progress: `build = "cargo"` compiles a wasi:http component for wasm32-wasip2,
//! `build = "COMMAND"` runs the command with `sh -c` in the function's directory.
//!
//! [`build_function`] and [`artifact_path`] are what `yun deploy` builds and uploads with. This
//! module runs builds; it never uploads anything.

use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use yun_manifest::{Build, FunctionDef};
use yun_types::FunctionName;

use crate::Global;
use crate::client::print_json;

/// Where cargo puts a component built by [`build_function`], under the target directory.
const WASM_TARGET: &str = "wasm32-wasip2";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The app manifest.
    #[arg(short = 'f', long = "file", default_value = "yun.toml")]
    file: PathBuf,
    /// Build only these functions (default: every function with a `build`).
    #[arg(value_name = "NAME", value_parser = parse_name)]
    names: Vec<FunctionName>,
}

fn parse_name(s: &str) -> Result<FunctionName, String> {
    FunctionName::new(s).map_err(|e| e.to_string())
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let manifest = yun_manifest::load(&args.file)?;
    for name in &args.names {
        if !manifest.functions.contains_key(name) {
            let known: Vec<&str> = manifest.functions.keys().map(FunctionName::as_str).collect();
            bail!("{} has no function {name} (it has: {})", args.file.display(), known.join(", "));
        }
    }
    let mut built = Vec::new();
    for (name, def) in &manifest.functions {
        if !args.names.is_empty() && !args.names.contains(name) {
            continue;
        }
        if def.build.is_none() {
            if !args.names.is_empty() {
                eprintln!("{name}: nothing to build (no `build` in {})", args.file.display());
            }
            continue;
        }
        let started = Instant::now();
        // Builds are blocking child processes and nothing else runs on this runtime meanwhile,
        // so there is nothing to gain from moving them off the async thread.
        let produced = build_function(name, def)?;
        // What deploy uses: an explicit `source` wins over what cargo reported.
        let artifact = match (&def.source, produced) {
            (Some(source), _) => source.clone(),
            (None, Some(path)) => path,
            (None, None) => artifact_path(name, def)?,
        };
        let elapsed = started.elapsed();
        let meta = std::fs::metadata(&artifact).with_context(|| {
            format!("{name}: the build succeeded but its artifact {} is missing", artifact.display())
        })?;
        let bytes = meta.is_file().then_some(meta.len());
        if !global.json {
            let size = bytes.map_or_else(|| "directory".to_string(), human_size);
            println!("built {name}  {}  ({size}, {:.1}s)", artifact.display(), elapsed.as_secs_f64());
        }
        built.push(json!({
            "function": name.as_str(),
            "artifact": artifact.display().to_string(),
            "bytes": bytes,
            "seconds": elapsed.as_secs_f64(),
        }));
    }
    if global.json {
        print_json(&Value::Array(built));
    } else if built.is_empty() && args.names.is_empty() {
        println!("nothing to build: no function in {} has a `build`", args.file.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Builds one function as its `build` says, showing progress on stderr (a bar on a terminal,
/// plain lines otherwise) with the build's own output.
///
/// Returns the component cargo produced for `build = "cargo"`; `None` for a command build,
/// whose artifact is `def.source` (see [`artifact_path`]), and for a function with no `build`.
/// A failed build is an error, after the build's own diagnostics have been shown.
pub fn build_function(name: &FunctionName, def: &FunctionDef) -> anyhow::Result<Option<PathBuf>> {
    match &def.build {
        None => Ok(None),
        Some(Build::Cargo) => cargo_build(name, &def.path).map(Some),
        Some(Build::Command(cmd)) => {
            command_build(name, &def.path, cmd)?;
            Ok(None)
        }
    }
}

/// Where a function's deployable artifact is once it is built: `def.source` when set, else (a
/// `build = "cargo"` function) the component under the target directory's
/// `wasm32-wasip2/release/`, named after the package's library as `cargo metadata` reports it,
/// so the answer is right without building.
pub fn artifact_path(name: &FunctionName, def: &FunctionDef) -> anyhow::Result<PathBuf> {
    if let Some(source) = &def.source {
        return Ok(source.clone());
    }
    if def.build != Some(Build::Cargo) {
        // yun-manifest requires `source` for everything but cargo builds.
        bail!("{name}: yun.toml names no `source` for it");
    }
    let meta = cargo_metadata(&def.path, false)
        .with_context(|| format!("{name}: asking cargo what it builds in {}", def.path.display()))?;
    let package = own_package(&meta, &def.path)?;
    let lib = lib_name(package).ok_or_else(|| {
        anyhow::anyhow!(
            "{name}: the package in {} has no library target; a component needs [lib] \
             crate-type = [\"cdylib\"] in its Cargo.toml",
            def.path.display()
        )
    })?;
    let target_dir = meta["target_directory"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("cargo metadata reported no target_directory"))?;
    Ok(Path::new(target_dir).join(WASM_TARGET).join("release").join(format!("{lib}.wasm")))
}

fn cargo() -> Command {
    // Under `cargo run`/`cargo test` this is the cargo of the running toolchain.
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// `cargo metadata` for the package in `dir`; with `deps`, the resolved dependency graph too
/// (resolving may write Cargo.lock, as the build would).
fn cargo_metadata(dir: &Path, deps: bool) -> anyhow::Result<Value> {
    let mut cmd = cargo();
    cmd.args(["metadata", "--format-version", "1"]).current_dir(dir);
    if deps {
        cmd.args(["--filter-platform", WASM_TARGET]);
    } else {
        cmd.arg("--no-deps");
    }
    let out = cmd.stdin(Stdio::null()).output().context("running cargo metadata (is cargo installed?)")?;
    if !out.status.success() {
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    serde_json::from_slice(&out.stdout).context("parsing cargo metadata's output")
}

/// The package whose manifest is `dir/Cargo.toml`: the function itself, not a dependency or
/// another member of its workspace.
fn own_package<'m>(meta: &'m Value, dir: &Path) -> anyhow::Result<&'m Value> {
    let wanted = std::fs::canonicalize(dir.join("Cargo.toml"))
        .with_context(|| format!("{} has no Cargo.toml", dir.display()))?;
    meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["manifest_path"].as_str().is_some_and(|m| same_file(Path::new(m), &wanted)))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{} is a workspace, not a package: point `path` at the function's package",
                dir.display()
            )
        })
}

fn same_file(a: &Path, canonical_b: &Path) -> bool {
    std::fs::canonicalize(a).is_ok_and(|a| a == canonical_b)
}

/// The crate name of the package's library (cargo reports it with '-' already made '_').
fn lib_name(package: &Value) -> Option<&str> {
    package["targets"].as_array()?.iter().find_map(|t| {
        let kinds = t["kind"].as_array()?;
        kinds
            .iter()
            .any(|k| matches!(k.as_str(), Some("lib" | "cdylib")))
            .then(|| t["name"].as_str())
            .flatten()
    })
}

/// How many `compiler-artifact` messages a build will print, roughly: one per package in the
/// resolved graph and one more per build script. `None` when cargo cannot say.
fn estimate_units(dir: &Path) -> Option<u64> {
    let meta = cargo_metadata(dir, true).ok()?;
    let nodes = meta["resolve"]["nodes"].as_array()?;
    let build_scripts = meta["packages"]
        .as_array()?
        .iter()
        .filter(|p| {
            let in_graph = nodes.iter().any(|n| n["id"] == p["id"]);
            in_graph
                && p["targets"].as_array().is_some_and(|ts| {
                    ts.iter()
                        .any(|t| t["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "custom-build")))
                })
        })
        .count();
    Some((nodes.len() + build_scripts) as u64)
}

fn cargo_build(name: &FunctionName, dir: &Path) -> anyhow::Result<PathBuf> {
    let tty = std::io::stderr().is_terminal();
    eprintln!("building {name} (cargo, {WASM_TARGET}) in {}", dir.display());
    let own_manifest = std::fs::canonicalize(dir.join("Cargo.toml"))
        .with_context(|| format!("{name}: build = \"cargo\" but {} has no Cargo.toml", dir.display()))?;
    let bar = if tty {
        let bar = match estimate_units(dir) {
            Some(units) => ProgressBar::new(units).with_style(bar_style()),
            None => ProgressBar::new_spinner().with_style(spinner_style()),
        };
        bar.set_prefix(name.to_string());
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    } else {
        ProgressBar::hidden()
    };

    let mut cmd = cargo();
    cmd.args(["build", "--release", "--target", WASM_TARGET, "--message-format=json-render-diagnostics"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if tty {
        // Its stderr is our pipe, so cargo would not colour the diagnostics it renders.
        cmd.args(["--color", "always"]);
    }
    let mut child = cmd.spawn().context("running cargo (is it installed?)")?;
    let stdout = child.stdout.take().context("cargo's stdout is piped")?;
    let stderr = child.stderr.take().context("cargo's stderr is piped")?;
    let diagnostics = forward_stderr(stderr, bar.clone(), tty);

    let mut component = None;
    for line in BufReader::new(stdout).split(b'\n') {
        let Ok(line) = line else { break };
        let Ok(msg) = serde_json::from_slice::<Value>(&line) else { continue };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        bar.inc(1);
        if bar.length().is_some_and(|len| bar.position() > len) {
            bar.set_length(bar.position());
        }
        let ours = msg["manifest_path"].as_str().is_some_and(|m| same_file(Path::new(m), &own_manifest));
        if ours {
            let wasm = msg["filenames"].as_array().into_iter().flatten().filter_map(Value::as_str);
            if let Some(f) = wasm.into_iter().find(|f| f.ends_with(".wasm")) {
                component = Some(PathBuf::from(f));
            }
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    let target_missing = diagnostics.join().unwrap_or(false);
    bar.finish_and_clear();
    if !status.success() {
        let hint = if target_missing { " (install the target: rustup target add wasm32-wasip2)" } else { "" };
        bail!("{name}: cargo build failed ({status}){hint}");
    }
    component.ok_or_else(|| {
        anyhow::anyhow!(
            "{name}: cargo built no .wasm for the package in {}: a component needs [lib] \
             crate-type = [\"cdylib\"] in its Cargo.toml",
            dir.display()
        )
    })
}

fn command_build(name: &FunctionName, dir: &Path, cmd: &str) -> anyhow::Result<()> {
    let tty = std::io::stderr().is_terminal();
    eprintln!("building {name}: {cmd} (in {})", dir.display());
    let bar = if tty {
        let bar = ProgressBar::new_spinner().with_style(spinner_style());
        bar.set_prefix(name.to_string());
        bar.set_message(cmd.to_string());
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    } else {
        ProgressBar::hidden()
    };
    // Both streams of the command go to our stderr: stdout is for yun's own results.
    let mut child = Command::new("sh")
        .args(["-c", cmd])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("{name}: running sh -c {cmd:?} in {}", dir.display()))?;
    let stdout = child.stdout.take().context("the command's stdout is piped")?;
    let stderr = child.stderr.take().context("the command's stderr is piped")?;
    let out = forward_lines(stdout, bar.clone());
    let err = forward_lines(stderr, bar.clone());
    let status = child.wait().context("waiting for the build command")?;
    let _ = out.join();
    let _ = err.join();
    bar.finish_and_clear();
    if !status.success() {
        bail!("{name}: the build command {cmd:?} failed ({status})");
    }
    Ok(())
}

/// Copies a child's output to our stderr line by line, around the progress display.
fn forward_lines(from: impl Read + Send + 'static, bar: ProgressBar) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(from).split(b'\n') {
            let Ok(line) = line else { break };
            bar.suspend(|| eprintln!("{}", String::from_utf8_lossy(&line).trim_end_matches('\r')));
        }
    })
}

/// Shows cargo's stderr (the diagnostics it renders, its status lines). On a terminal the
/// "Compiling X" lines become the bar's message instead: the bar is their summary. Returns
/// whether cargo said the wasm target is not installed, to hint at the fix.
fn forward_stderr(
    from: impl Read + Send + 'static,
    bar: ProgressBar,
    tty: bool,
) -> std::thread::JoinHandle<bool> {
    std::thread::spawn(move || {
        let mut target_missing = false;
        for line in BufReader::new(from).split(b'\n') {
            let Ok(line) = line else { break };
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches('\r');
            let plain = strip_ansi(line);
            target_missing |= plain.contains("target may not be installed");
            if tty && let Some(unit) = plain.trim_start().strip_prefix("Compiling ") {
                bar.set_message(unit.split(" v").next().unwrap_or(unit).to_string());
                continue;
            }
            bar.suspend(|| eprintln!("{line}"));
        }
        target_missing
    })
}

/// `line` without its terminal colour escapes (`ESC [ ... letter`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix:.bold} [{bar:30}] {pos}/{len} {wide_msg}")
        .expect("the bar template is valid")
        .progress_chars("=> ")
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix:.bold} {elapsed} {wide_msg}")
        .expect("the spinner template is valid")
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_escapes_are_stripped() {
        assert_eq!(
            strip_ansi("\u{1b}[1m\u{1b}[32m   Compiling\u{1b}[0m wasip2 v2.0.1"),
            "   Compiling wasip2 v2.0.1"
        );
        assert_eq!(strip_ansi("plain"), "plain");
    }

    #[test]
    fn sizes_are_human() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(64 * 1024 + 512), "64.5 KiB");
        assert_eq!(human_size(3 * 1024 * 1024), "3.0 MiB");
    }

    fn function(dir: &Path, toml: &str) -> FunctionDef {
        let manifest = yun_manifest::parse(toml, &dir.join("yun.toml")).unwrap();
        manifest.functions.into_values().next().unwrap()
    }

    #[test]
    fn artifact_path_asks_cargo_for_the_library_name_without_building() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join("Cargo.toml"),
            "[package]\nname = \"my-fn\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [lib]\ncrate-type = [\"cdylib\"]\n\n[workspace]\n",
        )
        .unwrap();
        std::fs::create_dir(tmp.path().join("src")).unwrap();
        std::fs::write(tmp.path().join("src/lib.rs"), "").unwrap();
        let name = FunctionName::new("my-fn").unwrap();

        let def = function(tmp.path(), "[functions.my-fn]\nbuild = \"cargo\"\n");
        let path = artifact_path(&name, &def).unwrap();
        assert!(path.is_absolute(), "{}", path.display());
        assert!(path.ends_with("wasm32-wasip2/release/my_fn.wasm"), "{}", path.display());
        assert!(!path.exists(), "nothing was built");

        let def = function(tmp.path(), "[functions.my-fn]\nbuild = \"cargo\"\nsource = \"out/x.wasm\"\n");
        assert_eq!(artifact_path(&name, &def).unwrap(), tmp.path().join("out/x.wasm"));
    }

    #[test]
    fn the_library_target_names_the_component() {
        let package = json!({"targets": [
            {"name": "build-script-build", "kind": ["custom-build"]},
            {"name": "my_fn", "kind": ["cdylib"]},
        ]});
        assert_eq!(lib_name(&package), Some("my_fn"));
        assert_eq!(lib_name(&json!({"targets": [{"name": "tool", "kind": ["bin"]}]})), None);
    }
}
