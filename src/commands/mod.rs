//! One module per CLI verb.

pub mod build;
pub mod compile;
pub mod deploy;
pub mod describe;
pub mod invoke;
pub mod logs;
pub mod ls;
pub mod new;
pub mod rm;
pub mod sandbox;
pub mod scale;
pub mod sim;
pub mod up;
