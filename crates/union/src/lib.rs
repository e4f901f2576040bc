//! The union rule over plain directories, with no FUSE: which layer supplies each name
//! (whiteouts, opaque dirs, redirects, the hard-link index), how the upper layer is
//! written (copy-up, whiteouts, the kernel overlayfs on-disk format and AUFS `.wh.`),
//! and the thin `*at` syscall adapters it stands on.
pub mod cow;
pub mod errors;
pub mod idmap;
pub mod logging;
pub mod override_stat;
pub mod readahead;
pub mod sys;
pub mod timestamp;
pub mod unionfs;
pub mod whiteout;
pub mod writebehind;
