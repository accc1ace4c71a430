/work/main/examples/target/wasm32-wasip2/release/deps/echo.d: echo/src/lib.rs

/work/main/examples/target/wasm32-wasip2/release/deps/echo.wasm: echo/src/lib.rs

echo/src/lib.rs:
