//! Replaying an invocation trace against keep-alive policies.
//!
//! The trace is in the format of the Azure Functions 2019 public trace (Shahrad et al.): per
//! function, invocations per minute (`inv.csv`) and execution times (`run.csv`); per application,
//! allocated memory (`mem.csv`). [`Trace::read_dir`] reads it, [`simulate`] replays it against
//! one [`KeepAlive`](crate::KeepAlive) per application and counts cold starts and the memory held
//! by idle instances, [`table`] prints reports side by side, and [`synthetic`] makes traces in the
//! same format from a seed.
//!
//! Modelling choices (see [`simulate`] and [`Arrivals`]): the application is the unit, as in the
//! paper (its functions share one instance and one policy, and `mem.csv` has memory per
//! application, so nothing is divided); a minute's invocations start together at the start of
//! the minute (or, optionally, spread evenly over it); every invocation runs for its function's
//! average duration; a cold start adds no time; wasted memory is counted until the trace ends.

mod replay;
pub mod synthetic;
mod trace;

pub use replay::{AppReport, Arrivals, Report, SimConfig, simulate, table};
pub use trace::{App, FALLBACK_DURATION, FALLBACK_MEMORY_MB, Function, Trace, TraceError};
