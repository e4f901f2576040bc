//! The runner's one error type (the shape of `unionctl_union::errors`).

unionctl_union::define_error! {
    /// A runner error: what failed, on which container or path, and why.
    pub enum Error {
        /// The named container does not run (stop, attach, exec, pause of a stopped one).
        #[error("container {0} is not running")]
        NotRunning(String),
        /// The container's command could not run (not found, not executable): the exit
        /// status it ended with (127, 126) and why.
        #[error("{1}")]
        NotRun(i32, String),
        #[error("{0}")]
        Errno(#[from] nix::errno::Errno),
        #[error("{0}")]
        Json(#[from] serde_json::Error),
        /// The mount daemon's error, passed through.
        #[error("{0}")]
        Mount(#[from] unionctl_fuse::Error),
        /// The image store's error, passed through.
        #[error("{0}")]
        Image(#[from] unionctl_image::Error),
    }
}
