//! unionctl as a library: a union file system on FUSE, a container runner and an image
//! store with a registry client. One crate per layer; each depends only on those below:
//!
//! ```text
//! registry ─> image ─> union          runner ─> fuse ─> union
//!                                     runner ─> image
//! ```
//! The `unionctl` binary (src/main.rs, src/cli/) is the only user of clap and the only
//! place that prints or picks exit statuses.
pub use unionctl_fuse as fuse;
pub use unionctl_image as image;
pub use unionctl_registry as registry;
pub use unionctl_runner as runner;
pub use unionctl_union::{cow, errors, logging, sys, timestamp, unionfs, whiteout};
