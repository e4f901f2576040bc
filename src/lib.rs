//! unionctl: a union file system on FUSE, a container runner and an image store.
//!
//! Dependencies point one way: cli -> runner/image -> fuse -> unionfs -> whiteout, cow.
pub mod cow;
pub mod fuse;
pub mod image;
pub mod registry;
pub mod runner;
pub mod sys;
pub mod timestamp;
pub mod unionfs;
pub mod whiteout;
