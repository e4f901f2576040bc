//! The registry client's one error type (the shape of `unionctl_union::errors`).
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
    /// A reference, flag value, file or registry answer that cannot be accepted, and why.
    #[error("{0}")]
    Invalid(String),
    /// A repository, tag, manifest or blob the registry does not have.
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
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Http(#[from] ureq::Error),
    #[error(transparent)]
    Request(#[from] ureq::http::Error),
    #[error(transparent)]
    Oci(#[from] oci_spec::OciSpecError),
    /// The image store's error, passed through.
    #[error(transparent)]
    Store(#[from] unionctl_image::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

unionctl_union::error_context!(Error);
