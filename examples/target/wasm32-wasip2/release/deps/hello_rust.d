/work/main/examples/target/wasm32-wasip2/release/deps/hello_rust.d: hello-rust/src/lib.rs

/work/main/examples/target/wasm32-wasip2/release/deps/hello_rust.wasm: hello-rust/src/lib.rs

hello-rust/src/lib.rs:
