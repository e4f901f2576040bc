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
pub mod capabilities;
pub mod cgroups;
pub mod copy;
pub mod cp;
pub mod devices;
pub mod exec;
pub mod flags;
pub mod freeze;
pub mod idmap;
pub mod initlayer;
pub mod inspect;
pub mod lifecycle;
pub mod linux;
pub mod logfile;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod security;
pub mod spec;
pub mod state;
pub mod stats;
pub mod supervisor;
pub mod system;
pub mod trace;
pub mod tty;
pub mod union;
pub mod volumes;

pub mod options;

pub use crate::image::store_root;
pub use error::{Error, Result};
pub use inspect::{ContainerInspect, ContainerSummary, inspect};
pub use lifecycle::{
    attach, create_container, kill, list, logs, pause, prune, remove, rename, restart, run, start,
    start_attached, stop, unpause, wait,
};
pub use options::{ExecOptions, RunOptions, RunOutcome, SecurityOptions};
pub use state::{Container, Status, find_container};

/// Runs a command in a running container; returns its exit status.
pub fn exec(root: &std::path::Path, opts: ExecOptions) -> Result<i32> {
    exec::exec(root, opts)
}
