//! unionfs
