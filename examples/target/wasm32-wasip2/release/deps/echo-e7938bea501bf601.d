/work/main/examples/target/wasm32-wasip2/release/deps/echo-e7938bea501bf601.d: echo/src/lib.rs Cargo.toml

/work/main/examples/target/wasm32-wasip2/release/deps/libecho-e7938bea501bf601.rmeta: echo/src/lib.rs Cargo.toml

echo/src/lib.rs:
Cargo.toml:

# env-dep:CLIPPY_ARGS=
# env-dep:CLIPPY_CONF_DIR
