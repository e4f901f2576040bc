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
