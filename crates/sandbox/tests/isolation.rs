//! Real sandboxed instances, with the `sandbox-helper` example as the helper (yun's own
//! tests/sandbox.rs runs the same suite through the yun binary).

fn helper_exe() -> std::path::PathBuf {
    // target/<profile>/deps/isolation-* -> target/<profile>/examples/sandbox-helper
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let helper = dir.join("examples").join("sandbox-helper");
    assert!(
        helper.exists(),
        "{} is missing: run `cargo test -p yun-sandbox` (it builds examples)",
        helper.display()
    );
    helper
}

include!("common/suite.rs");
