//! The sandbox helper as a standalone binary, so this crate's own tests can run real instances
//! without building all of yun (which embeds the same entry point as `yun __sandbox`).

fn main() {
    std::process::exit(yun_sandbox::helper_main());
}
