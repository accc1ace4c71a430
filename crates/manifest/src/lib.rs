//! The app manifest, yun.toml (skeleton; being written).
