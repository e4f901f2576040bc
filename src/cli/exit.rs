//! Exit statuses, picked here and nowhere else, as docker and podman pick them.
//!
//! - 0: done; `run`, `exec`, `start -a` and `attach` return the container command's own
//!   status;
//! - 2: a usage error: clap's (an unknown flag, a missing argument), or a [`Usage`] the
//!   command finds in arguments that parse but do not go together;
//! - 125: unionctl's own error, whatever the library's kind (a missing image or
//!   container, a value that cannot be accepted, a failed system call);
//! - 126 / 127: the container's command cannot be invoked / is not found, and 128+N:
//!   it was killed by signal N. The runner's init exits with these, as a shell does, and
//!   they pass through `run`, `exec` and `start -a` unchanged.

/// unionctl's own error: it failed before or around the container's command.
pub const OWN_ERROR: i32 = 125;
/// The command line is wrong; clap's status for the same.
pub const USAGE: i32 = 2;

/// Arguments that parse but do not go together (`logout` with neither a registry nor
/// `--all`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// The exit status for an error a command returned.
pub fn status_of(e: &anyhow::Error) -> i32 {
    if e.downcast_ref::<Usage>().is_some() {
        USAGE
    } else {
        OWN_ERROR
    }
}
