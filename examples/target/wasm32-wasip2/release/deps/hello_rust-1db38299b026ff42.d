/work/main/examples/target/wasm32-wasip2/release/deps/hello_rust-1db38299b026ff42.d: hello-rust/src/lib.rs Cargo.toml

/work/main/examples/target/wasm32-wasip2/release/deps/libhello_rust-1db38299b026ff42.rmeta: hello-rust/src/lib.rs Cargo.toml

hello-rust/src/lib.rs:
Cargo.toml:

# env-dep:CLIPPY_ARGS=
# env-dep:CLIPPY_CONF_DIR
