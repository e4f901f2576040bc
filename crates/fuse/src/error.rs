//! The mount side's one error type (the shape of `unionctl_union::errors`).

unionctl_union::define_error! {
    /// A mount error: which layer, mount point or option, and why.
    pub enum Error {
        #[error("{0}")]
        Errno(#[from] nix::errno::Errno),
        #[error("{0}")]
        Nul(#[from] std::ffi::NulError),
        /// The layers of the union cannot be used.
        #[error("{0}")]
        Layers(#[from] crate::unionfs::layers::SpecError),
    }
}

/// An io::Error as a user reads it: "no such file or directory", without "(os error 2)".
pub(crate) fn short(e: &std::io::Error) -> String {
    let s = e.to_string();
    s.split(" (os error").next().unwrap_or(&s).to_lowercase()
}
