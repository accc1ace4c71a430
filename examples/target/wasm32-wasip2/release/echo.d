/work/main/examples/target/wasm32-wasip2/release/echo.wasm: /work/main/examples/echo/src/lib.rs
