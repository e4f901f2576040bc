//! The runner's one error type (the shape of `unionctl_union::errors`).
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call on a path failed.
    #[error("{op} {}", path.display())]
    Io {
        op: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A flag value, name, volume spec, user spec or record that cannot be accepted, and why.
    #[error("{0}")]
    Invalid(String),
    /// No such container.
    #[error("{0}")]
    NotFound(String),
    /// The named container does not run (stop, attach, exec, pause of a stopped one).
    #[error("container {0} is not running")]
    NotRunning(String),
    /// What was being done when the inner error happened.
    #[error("{op}")]
    Context {
        op: String,
        #[source]
        source: Box<Error>,
    },
    /// A system call failed; a `Context` around it says on what.
    #[error(transparent)]
    Sys(#[from] std::io::Error),
    #[error(transparent)]
    Errno(#[from] nix::errno::Errno),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// The mount daemon's error, passed through.
    #[error(transparent)]
    Mount(#[from] unionctl_fuse::Error),
    /// The errors of the crates below (image store, FUSE mount, union sys helpers), passed
    /// through. Temporary: those crates still return `anyhow::Error`; this becomes one
    /// variant per crate when they have their own types.
    #[error(transparent)]
    Lower(#[from] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

unionctl_union::error_context!(Error);

impl Error {
    /// The whole chain on one line, `op: inner: cause`, for the places that hand an
    /// error on as text (the setup-error pipe of a container, a detached supervisor's log).
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(self);
        while let Some(e) = cur {
            out.push_str(": ");
            out.push_str(&e.to_string());
            cur = e.source();
        }
        out
    }
}

/// Maps an io::Error of an operation on `path` to `Error::Io`:
/// `.map_err(io("mkdir", &dir))?`.
pub fn io(op: &str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let (op, path) = (op.to_string(), path.to_path_buf());
    move |source| Error::Io { op, path, source }
}
