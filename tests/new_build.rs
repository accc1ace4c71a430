//! End-to-end: `yun new` scaffolds each template, `yun build` builds it, and what it built,
//! deployed to the real `yun` binary on port 0, answers with the template's greeting.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use yun_test_support::Yun;

const BIN: &str = env!("CARGO_BIN_EXE_yun");

/// A target directory shared by every run of these tests, so the rust template's dependencies
/// (wasip2 and its bindings) are compiled once, not once per test.
fn shared_target_dir() -> PathBuf {
    let bin_dir = Path::new(BIN).parent().expect("the binary is in a profile directory");
    bin_dir.parent().expect("the profile directory is in the target directory").join("templates")
}

fn yun(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN).args(args).current_dir(dir).output().expect("running yun")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `yun new NAME --template KIND` in `parent`; returns the created directory.
fn new_function(parent: &Path, name: &str, template: &str) -> PathBuf {
    let out = yun(parent, &["new", name, "--template", template]);
    assert!(out.status.success(), "yun new {name} -t {template} failed: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains(&format!("created {name}")), "{stdout}");
    assert!(stdout.contains(&format!("cd {name} && ")), "no next step in: {stdout}");
    parent.join(name)
}

/// `yun build` in `dir` (its yun.toml), with `envs` set and `remove` unset for the build;
/// returns each function's name, artifact and size (`None` for a directory), from `--json`.
fn build(dir: &Path, envs: &[(&str, &Path)], remove: &[&str]) -> Vec<(String, PathBuf, Option<u64>)> {
    let mut cmd = Command::new(BIN);
    cmd.args(["--json", "build"]).current_dir(dir);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    for k in remove {
        cmd.env_remove(k);
    }
    let out = cmd.output().expect("running yun build");
    assert!(out.status.success(), "yun build failed:\n{}", text(&out.stderr));
    let built: Value = serde_json::from_slice(&out.stdout).expect("yun --json build prints JSON");
    built
        .as_array()
        .expect("an array of built functions")
        .iter()
        .map(|b| {
            (
                b["function"].as_str().unwrap().to_string(),
                PathBuf::from(b["artifact"].as_str().unwrap()),
                b["bytes"].as_u64(),
            )
        })
        .collect()
}

async fn get(yun: &Yun, path: &str) -> (u16, String) {
    let resp = reqwest::Client::new().get(format!("{}{path}", yun.url())).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn deploy_process(yun: &Yun, name: &str, dir: &Path, command: &str) {
    let dir = dir.to_str().unwrap();
    let out =
        yun.cli_ok(&["deploy", name, dir, "--runtime", "process", "--mode", "http", "--command", command]);
    assert!(out.contains(&format!("deployed {name} revision 1")), "{out}");
}

#[test]
fn new_writes_every_template_with_a_manifest_naming_the_function() {
    let tmp = tempfile::tempdir().unwrap();
    let expected: &[(&str, &[&str])] = &[
        ("rust", &["Cargo.toml", "src/lib.rs", "yun.toml", "README.md", ".gitignore"]),
        ("python", &["app.py", "yun.toml", "README.md"]),
        ("node", &["server.js", "yun.toml", "README.md"]),
        (
            "static",
            &["Cargo.toml", "src/main.rs", ".cargo/config.toml", "yun.toml", "README.md", ".gitignore"],
        ),
    ];
    for (template, files) in expected {
        let name = format!("fn-{template}");
        let dir = new_function(tmp.path(), &name, template);
        for f in *files {
            let body =
                std::fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{template}: {f}: {e}"));
            assert!(!body.contains("{{"), "{template}: {f} keeps a placeholder");
        }
        let manifest = std::fs::read_to_string(dir.join("yun.toml")).unwrap();
        assert!(manifest.contains(&format!("[functions.{name}]")), "{template}: {manifest}");
    }
    let cargo = std::fs::read_to_string(tmp.path().join("fn-rust/Cargo.toml")).unwrap();
    assert!(cargo.contains("name = \"fn-rust\"") && cargo.contains("[workspace]"), "{cargo}");
    assert!(cargo.contains("crate-type = [\"cdylib\"]") && cargo.contains("wasip2 = \"2.0.1\""), "{cargo}");
    let config = std::fs::read_to_string(tmp.path().join("fn-static/.cargo/config.toml")).unwrap();
    assert!(config.contains("+crt-static"), "{config}");

    // --dir puts it elsewhere; an existing empty directory is fine.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = yun(tmp.path(), &["new", "other", "--template", "node", "--dir", empty.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(empty.join("server.js").is_file());
    assert!(!tmp.path().join("other").exists());
}

#[test]
fn new_refuses_a_non_empty_directory_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("taken");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    let out = yun(tmp.path(), &["new", "taken", "--template", "python"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("taken") && stderr.contains("not empty"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["notes.txt"]);

    // A bad name is refused before anything is created.
    let out = yun(tmp.path(), &["new", "Bad_Name", "--template", "node"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("invalid"), "{}", text(&out.stderr));
    assert!(!tmp.path().join("Bad_Name").exists());
}

#[tokio::test]
async fn rust_template_builds_to_a_component_that_deploys_and_greets() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_function(tmp.path(), "hello-rs", "rust");
    let target = shared_target_dir();
    let built = build(&dir, &[("CARGO_TARGET_DIR", &target)], &[]);
    assert_eq!(built.len(), 1, "{built:?}");
    let (name, artifact, bytes) = &built[0];
    assert_eq!(name, "hello-rs");
    assert_eq!(artifact, &target.join("wasm32-wasip2/release/hello_rs.wasm"));
    assert_eq!(Some(std::fs::metadata(artifact).unwrap().len()), *bytes);
    assert_eq!(std::fs::read(artifact).unwrap()[..4], *b"\0asm");

    let yun = Yun::start(BIN);
    let out = yun.cli_ok(&["deploy", "hello-rs", artifact.to_str().unwrap()]);
    assert!(out.contains("deployed hello-rs revision 1"), "{out}");
    let (status, body) = get(&yun, "/fn/hello-rs/some/path?x=1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "Hello from hello-rs!\nGET /some/path?x=1\n");
}

#[tokio::test]
async fn rust_build_failure_exits_non_zero_and_shows_the_compiler_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_function(tmp.path(), "broken", "rust");
    let lib = dir.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(&lib, source.replace("struct Function;", "struct Function")).unwrap();

    let out = Command::new(BIN)
        .arg("build")
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", shared_target_dir())
        .output()
        .expect("running yun build");
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("error: expected"), "the compiler's error is not shown:\n{stderr}");
    assert!(stderr.contains("src/lib.rs"), "the error does not point at the source:\n{stderr}");
    assert!(stderr.contains("broken: cargo build failed"), "{stderr}");
    assert!(out.stdout.is_empty() || !text(&out.stdout).contains("built broken"), "{}", text(&out.stdout));
}

#[tokio::test]
async fn python_and_node_templates_answer_as_process_functions() {
    let tmp = tempfile::tempdir().unwrap();
    let py = new_function(tmp.path(), "hello-py", "python");
    let node = new_function(tmp.path(), "hello-node", "node");
    // Nothing to build: `yun build` says so and succeeds.
    let out = yun(&py, &["build"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("nothing to build"), "{}", text(&out.stdout));

    let yun = Yun::start(BIN);
    deploy_process(&yun, "hello-py", &py, "python3 app.py");
    deploy_process(&yun, "hello-node", &node, "node server.js");
    let (status, body) = get(&yun, "/fn/hello-py/a/b").await;
    assert_eq!((status, body.as_str()), (200, "Hello from hello-py!\nGET /a/b\n"), "{}", yun.output());
    let (status, body) = get(&yun, "/fn/hello-node/c?d=e").await;
    assert_eq!((status, body.as_str()), (200, "Hello from hello-node!\nGET /c?d=e\n"), "{}", yun.output());
}

/// Whether an ELF executable asks for a dynamic loader (has a PT_INTERP program header).
fn needs_loader(elf: &[u8]) -> bool {
    assert_eq!(elf[..4], *b"\x7fELF");
    assert_eq!(elf[4], 2, "a 64-bit ELF");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let at = phoff + i * phentsize;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == 3
    })
}

#[tokio::test]
async fn static_template_builds_a_static_executable_that_answers_as_a_process() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_function(tmp.path(), "hello-static", "static");
    // The build pins cargo's target directory, so the executable is where `source` says even
    // with CARGO_TARGET_DIR set; RUSTFLAGS would override the template's static-linking flags.
    let target = shared_target_dir();
    let built = build(&dir, &[("CARGO_TARGET_DIR", &target)], &["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS"]);
    assert_eq!(built.len(), 1, "{built:?}");
    let (_, code, bytes) = &built[0];
    // Paths from yun.toml are shown as the manifest resolves them: relative to where yun ran.
    let code = &dir.join(code);
    assert_eq!(code.canonicalize().unwrap(), dir.join("target/deploy").canonicalize().unwrap());
    assert_eq!(*bytes, None, "the artifact is a directory");
    // The deployed code is the executable alone, statically linked.
    let files: Vec<_> = std::fs::read_dir(code).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(files, ["hello-static"]);
    let exe = std::fs::read(code.join("hello-static")).unwrap();
    assert!(!needs_loader(&exe), "{} is dynamically linked", code.display());

    let yun = Yun::start(BIN);
    deploy_process(&yun, "hello-static", code, "./hello-static");
    let (status, body) = get(&yun, "/fn/hello-static/x/y?z").await;
    assert_eq!((status, body.as_str()), (200, "Hello from hello-static!\nGET /x/y?z\n"), "{}", yun.output());
    // The instance is resident: a second request finds it and is answered as well.
    let (status, body) = get(&yun, "/fn/hello-static/again").await;
    assert_eq!((status, body.as_str()), (200, "Hello from hello-static!\nGET /again\n"));
}
