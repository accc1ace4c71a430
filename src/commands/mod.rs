//! One module per CLI verb.

pub mod apply;
pub mod build;
pub mod compile;
pub mod deploy;
pub mod describe;
pub mod invocation;
pub mod invocations;
pub mod invoke;
pub mod logs;
pub mod ls;
pub mod new;
pub mod queue;
pub mod revisions;
pub mod rm;
pub mod rollback;
pub mod route;
pub mod sandbox;
pub mod scale;
pub mod secret;
pub mod sim;
pub mod tag;
pub mod topic;
pub mod traffic;
pub mod trigger;
pub mod up;
pub mod usage;
