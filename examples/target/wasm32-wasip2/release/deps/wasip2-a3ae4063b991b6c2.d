/work/main/examples/target/wasm32-wasip2/release/deps/wasip2-a3ae4063b991b6c2.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/wasip2-2.0.1+wasi-0.2.12/src/lib.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/wasip2-2.0.1+wasi-0.2.12/src/ext/mod.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/wasip2-2.0.1+wasi-0.2.12/src/ext/std.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/wasip2-2.0.1+wasi-0.2.12/src/command.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/wasip2-2.0.1+wasi-0.2.12/src/imports.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/wasip2-2.0.1+wasi-0.2.12/src/proxy.rs

/work/main/examples/target/wasm32-wasip2/release/deps/libwasip2-a3ae4063b991b6c2.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/wasip2-2.0.1+wasi-0.2.12/src/lib.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/wasip2-2.0.1+wasi-0.2.12/src/ext/mod.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/wasip2-2.0.1+wasi-0.2.12/src/ext/std.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/wasip2-2.0.1+wasi-0.2.12/src/command.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/wasip2-2.0.1+wasi-0.2.12/src/imports.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/wasip2-2.0.1+wasi-0.2.12/src/proxy.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/wasip2-2.0.1+wasi-0.2.12/src/lib.rs:
/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/wasip2-2.0.1+wasi-0.2.12/src/ext/mod.rs:
/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/wasip2-2.0.1+wasi-0.2.12/src/ext/std.rs:
/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/wasip2-2.0.1+wasi-0.2.12/src/command.rs:
/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/wasip2-2.0.1+wasi-0.2.12/src/imports.rs:
/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/wasip2-2.0.1+wasi-0.2.12/src/proxy.rs:
