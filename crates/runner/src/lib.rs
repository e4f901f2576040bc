//! Container runner: namespaces, rootfs, process, cgroups, life cycle.
//!
//! `run` writes a record under the store root and becomes (or, with `-d`, forks) the
//! container's supervisor; every other command reads and updates that record.

// The crates below this one, under the names the modules use.
pub(crate) use unionctl_fuse as fuse;
pub(crate) use unionctl_image as image;
pub(crate) use unionctl_union::timestamp;
pub(crate) use unionctl_union::{sys, whiteout};
#[macro_use]
mod error;
pub mod cgroups;
pub mod exec;
pub mod freeze;
pub mod idmap;
pub mod initlayer;
pub mod lifecycle;
pub mod linux;
pub mod process;
pub mod rootfs;
pub mod spec;
pub mod state;
pub mod supervisor;
pub mod tty;
pub mod union;

pub mod options;

pub use crate::image::store_root;
pub use error::{Error, Result};
pub use lifecycle::{attach, list, logs, pause, remove, restart, run, start, stop, unpause};
pub use options::{ExecOptions, RunOptions, RunOutcome};
pub use state::{Container, Status, find_container};

/// Runs a command in a running container; returns its exit status.
pub fn exec(root: &std::path::Path, opts: ExecOptions) -> Result<i32> {
    exec::exec(root, opts)
}

/// Prints a phase and the milliseconds since the first call when UNIONCTL_TRACE is set
/// (to see where container start-up time goes).
pub fn trace(phase: &str) {
    use std::sync::OnceLock;
    use std::time::Instant;
    static START: OnceLock<Option<Instant>> = OnceLock::new();
    if let Some(t0) =
        START.get_or_init(|| std::env::var_os("UNIONCTL_TRACE").map(|_| Instant::now()))
    {
        eprintln!("[{:7.2} ms] {phase}", t0.elapsed().as_secs_f64() * 1000.0);
    }
}
