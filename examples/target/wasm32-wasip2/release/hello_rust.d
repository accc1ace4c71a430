/work/main/examples/target/wasm32-wasip2/release/hello_rust.wasm: /work/main/examples/hello-rust/src/lib.rs
