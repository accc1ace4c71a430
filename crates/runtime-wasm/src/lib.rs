//! The WebAssembly runtime: wasmtime configured for serving untrusted `wasi:http/proxy`
//! components, isolated compilation of uploads, and the instances that handle requests.
//!
//! It owns mechanism (engine, compilation, instantiation, limits, capturing guest output) and
//! takes policy from its caller: which revision to run, with which limits, where logs go, and
//! how many instances may exist. It knows nothing about routing, storage layout or the API
//! beyond making in-process requests to it for yun's host interfaces (`yun:storage/objects`,
//! `wasi:keyvalue`, the SQLite interface `fermyon:spin/sqlite`).

mod compile;
mod host;
mod keyvalue;
mod local;
mod pool;
mod revision;
mod sqlite;
mod storage;

pub use compile::{CompileError, CompileSandbox, compile_child_main, compile_component};
pub use revision::{InvokeError, InvokeErrorKind, LoadError, LoadedRevision, RequestCtx, RevisionConfig};

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use host::Host;

/// How often the epoch advances. Guests yield to the scheduler at every tick, so a busy loop
/// cannot hold a Tokio worker for longer than this, and a deadline is enforced to within it.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Sizing of the instance pool shared by every function.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Instances that may exist at once across all functions (pool slots).
    pub max_instances: u32,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self { max_instances: 1000 }
    }
}

/// Compilation settings shared by the compiler child and the serving engine: they must agree,
/// or precompiled code would not load.
fn base_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.memory_init_cow(true);
    config
}

/// A wasmtime engine set up for serving, plus the linker every revision instantiates with.
pub struct Runtime {
    engine: Engine,
    linker: Arc<Linker<Host>>,
    fingerprint: String,
    ticker_stop: Arc<AtomicBool>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot start the wasm runtime: {0}")]
pub struct RuntimeError(String);

impl Runtime {
    pub fn new(config: &RuntimeConfig) -> Result<Self, RuntimeError> {
        let mut wasm_config = base_config();
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(config.max_instances);
        pool.total_memories(config.max_instances.saturating_mul(2));
        pool.total_tables(config.max_instances.saturating_mul(2));
        pool.total_core_instances(config.max_instances.saturating_mul(4));
        pool.total_stacks(config.max_instances);
        wasm_config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm_config).map_err(|e| RuntimeError(format!("{e:#}")))?;
        let linker = host::linker(&engine).map_err(|e| RuntimeError(format!("{e:#}")))?;
        let fingerprint = fingerprint(&engine);
        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_epoch_ticker(engine.clone(), ticker_stop.clone());
        Ok(Self { engine, linker: Arc::new(linker), fingerprint, ticker_stop })
    }

    /// Identifies the engine's code format: precompiled artifacts are cached under it, so a
    /// wasmtime upgrade or a settings change never loads stale code.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

fn fingerprint(engine: &Engine) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("wasmtime-48-{:016x}", hasher.finish())
}

fn spawn_epoch_ticker(engine: Engine, stop: Arc<AtomicBool>) {
    std::thread::Builder::new()
        .name("yun-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })
        .expect("spawning the epoch thread");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every import of the example guests (wasi:http, yun:storage, wasi:keyvalue, the SQLite
    /// interface) is satisfied by the linker every revision instantiates with.
    #[test]
    fn guests_of_yun_s_host_interfaces_link() {
        let runtime = Runtime::new(&RuntimeConfig { max_instances: 4 }).unwrap();
        for guest in ["counter_wasm", "notes_wasm"] {
            let path = yun_test_support::guest(guest);
            let component = wasmtime::component::Component::from_file(runtime.engine(), &path).unwrap();
            let imports: Vec<String> = component
                .component_type()
                .imports(runtime.engine())
                .map(|(name, _)| name.to_string())
                .collect();
            if guest == "counter_wasm" {
                for wanted in [
                    "wasi:keyvalue/store@0.2.0-draft2",
                    "wasi:keyvalue/atomics@0.2.0-draft2",
                    "wasi:keyvalue/batch@0.2.0-draft2",
                    "fermyon:spin/sqlite@2.0.0",
                ] {
                    assert!(imports.iter().any(|i| i == wanted), "{guest} imports {imports:?}");
                }
            }
            if let Err(e) = runtime.linker.instantiate_pre(&component) {
                panic!("{guest} does not link: {e:#}");
            }
        }
    }
}
