//! The sandbox through the real binary: `yun __sandbox` is the helper that builds each instance.
//! The checks themselves live with the crate (crates/sandbox/tests/common/suite.rs), which runs
//! the same suite with a standalone helper.

fn helper_exe() -> std::path::PathBuf {
    env!("CARGO_BIN_EXE_yun").into()
}

include!("../crates/sandbox/tests/common/suite.rs");
