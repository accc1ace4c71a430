//! Turning an upload into native code, and refusing what is not an HTTP component.
//!
//! wasmtime does not treat resource exhaustion during compilation as a vulnerability, so uploads
//! are compiled in a child process with an address-space limit and a wall-clock deadline: a
//! hostile upload can only kill its own compiler.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::host;

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The upload is not a usable `wasi:http/proxy` component; the message says why.
    #[error("{0}")]
    Invalid(String),
    /// Compiling it needed more memory or time than an upload is allowed.
    #[error("{0}")]
    ResourceLimit(String),
    #[error("compiler failed: {0}")]
    Internal(String),
}

const COMPONENT_LAYER: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];
const CORE_MODULE_VERSION: [u8; 4] = [0x01, 0x00, 0x00, 0x00];

/// Checks the header first, because wasmtime's messages for the commonest mistakes (a core
/// module, a text file, a truncated download) do not tell a user what to do.
fn check_header(wasm: &[u8]) -> Result<(), CompileError> {
    if wasm.len() < 8 {
        return Err(CompileError::Invalid(format!(
            "not a WebAssembly component: the upload is only {} bytes (truncated?)",
            wasm.len()
        )));
    }
    if wasm[..4] != *b"\0asm" {
        return Err(CompileError::Invalid(
            "not a WebAssembly binary: it does not start with the \\0asm magic bytes".into(),
        ));
    }
    if wasm[4..8] == CORE_MODULE_VERSION {
        return Err(CompileError::Invalid(
            "this is a core WebAssembly module, not a component: build for wasm32-wasip2 or wrap it with `wasm-tools component new`".into(),
        ));
    }
    if wasm[4..8] != COMPONENT_LAYER {
        return Err(CompileError::Invalid(format!(
            "unsupported WebAssembly version/layer {:02x?}: expected a component (version 0x0d, layer 1)",
            &wasm[4..8]
        )));
    }
    Ok(())
}

/// Validates `wasm` as a `wasi:http/proxy` component and compiles it for `engine`, returning
/// the precompiled artifact. Runs in whatever process calls it: use [`CompileSandbox`] for
/// untrusted input.
pub fn compile_component(engine: &Engine, wasm: &[u8]) -> Result<Vec<u8>, CompileError> {
    check_header(wasm)?;
    let component = Component::new(engine, wasm)
        .map_err(|e| CompileError::Invalid(format!("invalid component: {e:#}")))?;
    let exports_handler = component
        .component_type()
        .exports(engine)
        .any(|(name, _)| name.starts_with("wasi:http/incoming-handler@0.2"));
    if !exports_handler {
        return Err(CompileError::Invalid(
            "the component does not export wasi:http/incoming-handler@0.2.x: build it for the wasi:http/proxy world".into(),
        ));
    }
    let linker = host::linker(engine).map_err(|e| CompileError::Internal(format!("{e:#}")))?;
    let pre = linker.instantiate_pre(&component).map_err(|e| {
        CompileError::Invalid(format!("the component needs imports outside the wasi:http/proxy world: {e:#}"))
    })?;
    wasmtime_wasi_http::p2::bindings::ProxyPre::new(pre)
        .map_err(|e| CompileError::Invalid(format!("the component's handler has the wrong type: {e:#}")))?;
    component.serialize().map_err(|e| CompileError::Internal(format!("{e:#}")))
}

/// How to run the compiler in a child process: the caller supplies the program and arguments
/// that end up calling [`compile_child_main`] (for yun, a hidden subcommand of its own binary).
#[derive(Clone, Debug)]
pub struct CompileSandbox {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Address space the compiler may take beyond what its loaded program maps.
    pub memory_limit: u64,
    pub time_limit: Duration,
}

/// The child's address-space allowance, beyond what it maps once loaded. It limits itself (an
/// `RLIMIT_AS` set before exec would also have to cover the binary, whose size changes with
/// every build, so a fixed limit would fail a large debug build before it even starts).
const MEMORY_ENV: &str = "YUN_COMPILE_MEMORY";

/// Exit code the child uses for "this upload is invalid"; its stdout then holds the message.
const EXIT_INVALID: i32 = 3;

impl CompileSandbox {
    /// Compiles `wasm_path` into `out_path` in a child process bounded in memory and time.
    pub async fn compile(&self, wasm_path: &Path, out_path: &Path) -> Result<(), CompileError> {
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.args)
            .arg(wasm_path)
            .arg(out_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env(MEMORY_ENV, self.memory_limit.to_string())
            .kill_on_drop(true);
        let cpu_secs = self.time_limit.as_secs().max(1) * 2;
        // SAFETY: the closure runs between fork and exec and only calls setrlimit, which is
        // async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                set_rlimit(libc::RLIMIT_CPU, cpu_secs)?;
                set_rlimit(libc::RLIMIT_CORE, 0)
            });
        }
        let child = cmd.spawn().map_err(|e| CompileError::Internal(format!("spawning the compiler: {e}")))?;
        let output = match tokio::time::timeout(self.time_limit, child.wait_with_output()).await {
            Ok(out) => out.map_err(|e| CompileError::Internal(format!("waiting for the compiler: {e}")))?,
            Err(_) => {
                return Err(CompileError::ResourceLimit(format!(
                    "compiling the component took longer than {} s",
                    self.time_limit.as_secs()
                )));
            }
        };
        let stdout = String::from_utf8_lossy(&output.stdout).trim().to_string();
        match output.status.code() {
            Some(0) => Ok(()),
            Some(EXIT_INVALID) => Err(CompileError::Invalid(stdout)),
            _ => {
                let stderr = String::from_utf8_lossy(&output.stderr);
                if stderr.contains("memory allocation")
                    || stderr.contains("out of memory")
                    || output.status.code().is_none()
                {
                    Err(CompileError::ResourceLimit(format!(
                        "compiling the component exceeded the compiler's limits ({} MiB of memory, {} s)",
                        self.memory_limit >> 20,
                        self.time_limit.as_secs()
                    )))
                } else {
                    Err(CompileError::Internal(format!("{} {}", output.status, stderr.trim())))
                }
            }
        }
    }
}

fn set_rlimit(resource: libc::__rlimit_resource_t, value: u64) -> std::io::Result<()> {
    let lim = libc::rlimit { rlim_cur: value, rlim_max: value };
    // SAFETY: a plain syscall on a valid, initialised struct.
    if unsafe { libc::setrlimit(resource, &lim) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Entry point of the compiler child: compiles `wasm_path` to `out_path` and returns the exit
/// code. An invalid upload prints its reason on stdout and exits with a dedicated code.
pub fn compile_child_main(wasm_path: &Path, out_path: &Path) -> i32 {
    if let Some(limit) = std::env::var(MEMORY_ENV).ok().and_then(|v| v.parse::<u64>().ok()) {
        let mapped = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmSize:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .map_or(0, |kb| kb * 1024);
        if let Err(e) = set_rlimit(libc::RLIMIT_AS, mapped.saturating_add(limit)) {
            eprintln!("the compiler could not limit its memory: {e}");
            return 1;
        }
    }
    // wasmtime compiles functions in parallel on rayon's global pool, made lazily on first use;
    // under this child's address-space limit its threads may fail to start, and rayon then
    // panics deep inside a compile. Made here first, that failure is a plain resource error.
    if let Err(e) = rayon::ThreadPoolBuilder::new().build_global() {
        eprintln!("out of memory: the compiler's threads could not start ({e})");
        return 1;
    }
    let result = (|| {
        let wasm = std::fs::read(wasm_path).map_err(|e| CompileError::Internal(e.to_string()))?;
        // Same code-generation settings as the serving engine, without its instance pool: a
        // compiler needs no slots, and reserving them would eat the address-space limit.
        let engine =
            Engine::new(&crate::base_config()).map_err(|e| CompileError::Internal(format!("{e:#}")))?;
        let code = compile_component(&engine, &wasm)?;
        std::fs::write(out_path, code).map_err(|e| CompileError::Internal(e.to_string()))
    })();
    match result {
        Ok(()) => 0,
        Err(CompileError::Invalid(msg)) => {
            println!("{msg}");
            EXIT_INVALID
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        Engine::new(&crate::base_config()).unwrap()
    }

    fn invalid(wasm: &[u8]) -> String {
        match compile_component(&engine(), wasm) {
            Err(CompileError::Invalid(msg)) => msg,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn random_bytes_are_not_wasm() {
        assert!(invalid(b"hello world, not wasm").contains("\\0asm magic"));
    }

    #[test]
    fn truncated_input_says_so() {
        assert!(invalid(b"\0asm").contains("truncated"));
    }

    #[test]
    fn core_modules_are_told_to_become_components() {
        assert!(invalid(b"\0asm\x01\0\0\0").contains("core WebAssembly module"));
    }

    #[test]
    fn a_component_without_the_handler_is_refused() {
        // The smallest valid component: header only, no exports.
        let msg = invalid(b"\0asm\x0d\0\x01\0");
        assert!(msg.contains("wasi:http/incoming-handler"), "{msg}");
    }

    #[test]
    fn a_component_cut_short_is_invalid() {
        let mut wasm = b"\0asm\x0d\0\x01\0".to_vec();
        wasm.extend_from_slice(&[0x01, 0x20, 0x00]);
        assert!(invalid(&wasm).starts_with("invalid component"));
    }
}
