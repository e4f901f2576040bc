//! The image store's one error type (the shape of `unionctl_union::errors`).
unionctl_union::define_error! {
    /// An image store error: what failed, on which path or name, and why.
    pub enum Error {
        #[error("{0}")]
        Json(#[from] serde_json::Error),
        #[error("{0}")]
        Oci(#[from] oci_spec::OciSpecError),
        /// A union layer spec that cannot be opened.
        #[error("{0}")]
        Spec(#[from] unionctl_union::unionfs::layers::SpecError),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use std::io;
    use std::path::Path;

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
            e.chain().starts_with("loading: reading /nonexistent/x: "),
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
