//! The registry client's one error type (the shape of `unionctl_union::errors`).

unionctl_union::define_error! {
    /// A registry error: which reference, registry or file, and why.
    pub enum Error {
        #[error("{0}")]
        Json(#[from] serde_json::Error),
        #[error("{0}")]
        Http(#[from] ureq::Error),
        #[error("{0}")]
        Request(#[from] ureq::http::Error),
        #[error("{0}")]
        Oci(#[from] oci_spec::OciSpecError),
        /// The image store's error, passed through.
        #[error("{0}")]
        Store(#[from] unionctl_image::Error),
    }
}
