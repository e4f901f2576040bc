//! The mount side's one error type (the shape of `unionctl_union::errors`).
use std::path::PathBuf;

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
    /// A layer, mount point or option that cannot be used, and why.
    #[error("{0}")]
    Invalid(String),
    /// A path that is not there (or not a union mount).
    #[error("{0}")]
    NotFound(String),
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
    Nul(#[from] std::ffi::NulError),
    /// The layers of the union cannot be used.
    #[error(transparent)]
    Layers(#[from] crate::unionfs::layers::SpecError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

unionctl_union::error_context!(Error);
