//! `yun new NAME --template rust|python|node|static [--dir DIR]`: scaffold a function, with the
//! `yun.toml` that describes it, from a template embedded in the binary (`templates/` in the
//! repository), so `yun new` works without the source tree.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::json;
use yun_types::FunctionName;

use crate::Global;
use crate::client::print_json;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Function name (lowercase letters, digits, '-'); also the directory created.
    name: String,
    /// What the function is written in and how yun runs it.
    #[arg(long, short = 't', value_enum)]
    template: Template,
    /// Where to create it (default: ./NAME). It must not exist, or be empty.
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Template {
    /// A wasi:http component in Rust, built by cargo for wasm32-wasip2.
    Rust,
    /// A Python web app (standard library only), run as a process.
    Python,
    /// A Node.js web app (the http module), run as a process.
    Node,
    /// A statically linked native executable (Rust, std only), run as a process.
    Static,
}

/// One file of a template: where it goes in the new directory, and its text with `{{name}}`
/// where the function's name belongs.
struct TemplateFile {
    path: &'static str,
    text: &'static str,
}

macro_rules! template_file {
    ($kind:literal, $dest:literal) => {
        template_file!($kind, $dest, $dest)
    };
    ($kind:literal, $dest:literal, $src:literal) => {
        TemplateFile { path: $dest, text: include_str!(concat!("../../templates/", $kind, "/", $src)) }
    };
}

// The Cargo manifests are stored as `Cargo.toml.in`: a real `Cargo.toml` with a `{{name}}`
// placeholder would be an invalid package to every tool that walks the repository, and cargo
// leaves directories holding a Cargo.toml out of this crate's package.
const RUST: &[TemplateFile] = &[
    template_file!("rust", "Cargo.toml", "Cargo.toml.in"),
    template_file!("rust", "src/lib.rs"),
    template_file!("rust", "yun.toml"),
    template_file!("rust", "README.md"),
    template_file!("rust", ".gitignore"),
];
const PYTHON: &[TemplateFile] = &[
    template_file!("python", "app.py"),
    template_file!("python", "yun.toml"),
    template_file!("python", "README.md"),
];
const NODE: &[TemplateFile] = &[
    template_file!("node", "server.js"),
    template_file!("node", "yun.toml"),
    template_file!("node", "README.md"),
];
const STATIC: &[TemplateFile] = &[
    template_file!("static", "Cargo.toml", "Cargo.toml.in"),
    template_file!("static", "src/main.rs"),
    template_file!("static", ".cargo/config.toml"),
    template_file!("static", "yun.toml"),
    template_file!("static", "README.md"),
    template_file!("static", ".gitignore"),
];

impl Template {
    fn files(self) -> &'static [TemplateFile] {
        match self {
            Template::Rust => RUST,
            Template::Python => PYTHON,
            Template::Node => NODE,
            Template::Static => STATIC,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Template::Rust => "a wasi:http component in Rust",
            Template::Python => "a Python web app, run as a process",
            Template::Node => "a Node.js web app, run as a process",
            Template::Static => "a static native executable, run as a process",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Template::Rust => "rust",
            Template::Python => "python",
            Template::Node => "node",
            Template::Static => "static",
        }
    }
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let name = FunctionName::new(args.name)?;
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(name.as_str()));
    let files = scaffold(&dir, &name, args.template)?;

    if global.json {
        print_json(&json!({
            "function": name.as_str(),
            "template": args.template.name(),
            "dir": dir.display().to_string(),
            "files": files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
        }));
        return Ok(ExitCode::SUCCESS);
    }
    println!("created {} in {} ({})", name, dir.display(), args.template.describe());
    for f in &files {
        println!("  {}", dir.join(f).display());
    }
    println!();
    println!("next:");
    let cd = shell_word(&dir.display().to_string());
    match args.template {
        Template::Rust | Template::Static => println!("  cd {cd} && yun build && yun deploy"),
        // Nothing to compile: the code directory is what gets deployed.
        Template::Python | Template::Node => println!("  cd {cd} && yun deploy"),
    }
    if args.template == Template::Rust {
        println!("  (needs the wasm target once: rustup target add wasm32-wasip2)");
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the template's files into `dir`, which must not exist or be empty; checked before
/// anything is written, so a refusal leaves the disk as it was. Returns the files written
/// (relative to `dir`).
fn scaffold(dir: &Path, name: &FunctionName, template: Template) -> anyhow::Result<Vec<PathBuf>> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!("{} already exists and is not empty: choose another --dir or remove it", dir.display());
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            bail!("{} already exists and is not a directory", dir.display())
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    }
    let mut written = Vec::new();
    for file in template.files() {
        let dest = dir.join(file.path);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&dest, file.text.replace("{{name}}", name.as_str()))
            .with_context(|| format!("writing {}", dest.display()))?;
        written.push(PathBuf::from(file.path));
    }
    Ok(written)
}

/// Quotes a path for the `cd` hint when a shell would split or expand it.
fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use yun_manifest::Runtime;

    use super::*;

    #[test]
    fn every_template_names_the_function_and_leaves_no_placeholder() {
        let name = FunctionName::new("my-fn").unwrap();
        for t in [Template::Rust, Template::Python, Template::Node, Template::Static] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("my-fn");
            let files = scaffold(&dir, &name, t).unwrap();
            assert_eq!(files.len(), t.files().len());
            for f in &files {
                let text = std::fs::read_to_string(dir.join(f)).unwrap();
                assert!(!text.contains("{{"), "{t:?} {} keeps a placeholder", f.display());
            }
            let manifest = yun_manifest::load(&dir.join("yun.toml")).unwrap_or_else(|e| panic!("{t:?}: {e}"));
            let def = &manifest.functions[&name];
            let expected = if t == Template::Rust { Runtime::Wasm } else { Runtime::Process };
            assert_eq!(def.runtime, expected, "{t:?}");
            assert_eq!(def.build.is_some(), matches!(t, Template::Rust | Template::Static), "{t:?}");
        }
    }

    #[test]
    fn a_non_empty_directory_is_refused_and_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("keep.txt"), "mine").unwrap();
        let err = scaffold(tmp.path(), &FunctionName::new("f").unwrap(), Template::Node).unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
        let names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["keep.txt"]);
    }

    #[test]
    fn an_empty_directory_is_filled() {
        let tmp = tempfile::tempdir().unwrap();
        scaffold(tmp.path(), &FunctionName::new("f").unwrap(), Template::Python).unwrap();
        assert!(tmp.path().join("app.py").is_file());
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(shell_word("a/b-c_d.e"), "a/b-c_d.e");
        assert_eq!(shell_word("my dir"), "'my dir'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }
}
