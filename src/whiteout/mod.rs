//! whiteout
