//! The image store's one error type (the shape of `unionctl_union::errors`).
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call on a path failed.
    #[error("{op} {}", path.display())]
    Io {
        op: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// An argument, file or archive member that cannot be accepted, and why.
    #[error("{0}")]
    Invalid(String),
    /// An image, container, tag or blob the store does not have.
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
    Sys(#[from] io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Oci(#[from] oci_spec::OciSpecError),
    /// A union layer spec that cannot be opened.
    #[error(transparent)]
    Spec(#[from] unionctl_union::unionfs::layers::SpecError),
}

impl Error {
    /// True when what was asked for does not exist, under any `Context` around it.
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::NotFound(_) => true,
            Error::Context { source, .. } => source.is_not_found(),
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

unionctl_union::error_context!(Error);

/// For `.map_err(io("reading", &p))`: a failed system call on a known path.
pub fn io(op: &str, path: &Path) -> impl FnOnce(io::Error) -> Error {
    let op = op.to_string();
    let path = path.to_path_buf();
    move |source| Error::Io { op, path, source }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    /// The message and its causes, as the binary prints them.
    fn chain(e: &dyn std::error::Error) -> String {
        let mut s = e.to_string();
        let mut cur = e.source();
        while let Some(c) = cur {
            s += &format!(": {c}");
            cur = c.source();
        }
        s
    }

    #[test]
    fn io_names_the_operation_and_path_and_keeps_the_errno() {
        let p = Path::new("/nonexistent/x");
        let e = std::fs::read(p).map_err(io("reading", p)).unwrap_err();
        assert_eq!(e.to_string(), "reading /nonexistent/x");
        let Error::Io { source, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(source.kind(), io::ErrorKind::NotFound);
        let e = Err::<(), _>(e).context("loading").unwrap_err();
        assert!(
            chain(&e).starts_with("loading: reading /nonexistent/x: "),
            "{e:?}"
        );
    }

    #[test]
    fn missing_images_and_containers_are_not_found() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path()).unwrap();
        let e = store.resolve("nosuch:latest").unwrap_err();
        assert!(matches!(e, Error::NotFound(_)), "{e:?}");
        assert_eq!(e.to_string(), r#"image "nosuch:latest": no such image"#);
        let e = crate::resolve_for_run(&t.path().join("none"), "x").unwrap_err();
        assert!(e.is_not_found(), "{e:?}");
        let e = crate::container::find(t.path(), "c1").unwrap_err();
        assert!(matches!(e, Error::NotFound(_)), "{e:?}");
        let e = Err::<(), _>(e).context("commit").unwrap_err();
        assert!(e.is_not_found());
    }
}
