//! Thin helpers over raw syscalls shared by several modules.
