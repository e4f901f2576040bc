//! The shape every unionctl crate gives its one error type, so they read alike:
//! - `Io`: a system call on a path failed (the operation, the path, the errno);
//! - `Invalid`: input that cannot be accepted (a value, a file, a peer's answer), and why;
//! - `NotFound`: what was asked for (image, container, tag) does not exist;
//! - `Context`: what was being done when an inner error happened;
//! - a variant per crate below, passed through unchanged.
//!
//! [`error_context!`] writes, for such a type, the `Context` extension that code uses to
//! say what it was doing (`.context("reading index.json")?`), and the `bail!`, `invalid!` and
//! `not_found!` shorthands. Displaying an error shows its own line only; the caller walks
//! `source()` for the chain (the binary prints `op: inner: cause`).

/// Defines `Context` (for `Result<_, E: Into<Error>>` and `Option`), `bail!` (returns
/// `Error::Invalid`), `invalid!` and `not_found!` for the crate's `Error`, which must
/// have the variants `Invalid(String)`, `NotFound(String)` and `Context { op, source }`
/// and live in the crate's `error` module (invoke it there, and declare that module
/// first with `#[macro_use]`).
/// Defines the crate's `Error` with the variants every crate shares (`Io`, `Invalid`,
/// `NotFound`, `Context`, `Sys` for a bare io::Error) followed by the crate's own, plus
/// `Result`, `Error::is_not_found`, `Error::chain`, the `io(op, path)` mapper and what
/// [`error_context!`] writes. Invoke it in the crate's `error` module.
#[macro_export]
macro_rules! define_error {
    ($(#[$meta:meta])* pub enum Error { $($own:tt)* }) => {
        $(#[$meta])*
        #[derive(Debug, thiserror::Error)]
        pub enum Error {
            /// A system call on a path failed.
            #[error("{op} {}", path.display())]
            Io {
                op: String,
                path: std::path::PathBuf,
                #[source]
                source: std::io::Error,
            },
            /// Input that cannot be accepted (a value, a file, a peer's answer), and why.
            #[error("{0}")]
            Invalid(String),
            /// What was asked for does not exist.
            #[error("{0}")]
            NotFound(String),
            /// What was being done when the inner error happened.
            #[error("{op}")]
            Context {
                op: String,
                #[source]
                source: Box<Error>,
            },
            /// A system call failed; a `Context` around it says on what.
            #[error(transparent)]
            Sys(#[from] std::io::Error),
            $($own)*
        }

        pub type Result<T, E = Error> = std::result::Result<T, E>;

        impl Error {
            /// True when what was asked for does not exist, under any `Context` around it.
            pub fn is_not_found(&self) -> bool {
                match self {
                    Error::NotFound(_) => true,
                    Error::Context { source, .. } => source.is_not_found(),
                    _ => false,
                }
            }

            /// What was asked for does not exist, in the one wording of
            /// [`errors::no_such`]($crate::errors::no_such).
            pub fn no_such(kind: &str, name: &str) -> Error {
                Error::NotFound($crate::errors::no_such(kind, name))
            }

            /// The error and its sources on one line, `op: inner: cause`.
            pub fn chain(&self) -> String {
                $crate::errors::chain(self)
            }
        }

        /// For `.map_err(io("reading", &p))`: a failed system call on a known path.
        pub fn io(op: &str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error {
            let (op, path) = (op.to_string(), path.to_path_buf());
            move |source| Error::Io { op, path, source }
        }

        $crate::error_context!(Error);
    };
}

// `crate::error` in the inner macros is meant: it is the calling crate's error module.
#[allow(clippy::crate_in_macro_def)]
#[macro_export]
macro_rules! error_context {
    ($Error:ident) => {
        $crate::error_context!(@with ($) $Error);
    };
    (@with ($d:tt) $Error:ident) => {
        /// Says what was being done when an error happened.
        pub trait Context<T> {
            fn context(self, op: impl std::fmt::Display) -> std::result::Result<T, $Error>;
            fn with_context<D: std::fmt::Display>(
                self,
                op: impl FnOnce() -> D,
            ) -> std::result::Result<T, $Error>;
        }

        impl<T, E: Into<$Error>> Context<T> for std::result::Result<T, E> {
            fn context(self, op: impl std::fmt::Display) -> std::result::Result<T, $Error> {
                self.map_err(|e| $Error::Context {
                    op: op.to_string(),
                    source: Box::new(e.into()),
                })
            }
            fn with_context<D: std::fmt::Display>(
                self,
                op: impl FnOnce() -> D,
            ) -> std::result::Result<T, $Error> {
                self.map_err(|e| $Error::Context {
                    op: op().to_string(),
                    source: Box::new(e.into()),
                })
            }
        }

        /// A missing value is invalid input: `op` says which.
        impl<T> Context<T> for Option<T> {
            fn context(self, op: impl std::fmt::Display) -> std::result::Result<T, $Error> {
                self.ok_or_else(|| $Error::Invalid(op.to_string()))
            }
            fn with_context<D: std::fmt::Display>(
                self,
                op: impl FnOnce() -> D,
            ) -> std::result::Result<T, $Error> {
                self.ok_or_else(|| $Error::Invalid(op().to_string()))
            }
        }

        /// Returns `Error::Invalid` with a formatted reason.
        #[allow(unused_macros)]
        macro_rules! bail {
            ($d($d t:tt)*) => {
                return Err(crate::error::$Error::Invalid(format!($d($d t)*)))
            };
        }

        /// `Error::Invalid` with a formatted reason, as a value.
        #[allow(unused_macros)]
        macro_rules! invalid {
            ($d($d t:tt)*) => {
                crate::error::$Error::Invalid(format!($d($d t)*))
            };
        }

        /// Returns `Error::NotFound` with a formatted reason.
        #[allow(unused_macros)]
        macro_rules! not_found {
            ($d($d t:tt)*) => {
                return Err(crate::error::$Error::NotFound(format!($d($d t)*)))
            };
        }
    };
}

/// An error and its sources on one line, `op: inner: cause`, as a user reads it.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = as_user_reads(e);
    let mut next = e.source();
    while let Some(inner) = next {
        let text = as_user_reads(inner);
        // A transparent wrapper shows its source's text: say it once.
        if !s.ends_with(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        next = inner.source();
    }
    s
}

/// One error's own text; a system call's errno as [`io_cause`] words it.
fn as_user_reads(e: &(dyn std::error::Error + 'static)) -> String {
    match e.downcast_ref::<std::io::Error>() {
        Some(io) if io.raw_os_error().is_some() => io_cause(io),
        // An io::Error behind a transparent wrapper, or nix's "ENOENT: No such file or
        // directory", reads the same.
        _ => match e.to_string() {
            // Only the errno's words are lowercased: a path before them stays as it is.
            s if s.ends_with(')') && s.contains(" (os error ") => {
                let s = s.rsplit_once(" (os error").map_or(s.as_str(), |(t, _)| t);
                match s.rsplit_once(": ") {
                    Some((what, cause)) => format!("{what}: {}", cause.to_lowercase()),
                    None => s.to_lowercase(),
                }
            }
            s => match s.split_once(": ") {
                Some((name, desc)) if is_errno_name(name) => desc.to_lowercase(),
                _ => s,
            },
        },
    }
}

/// nix's name of an errno ("ENOENT"), which its messages start with.
fn is_errno_name(name: &str) -> bool {
    name.len() > 2
        && name.starts_with('E')
        && name != "EOF"
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// An io::Error as a user reads it: "no such file or directory", without "(os error 2)".
pub fn io_cause(e: &std::io::Error) -> String {
    let s = e.to_string();
    s.split(" (os error").next().unwrap_or(&s).to_lowercase()
}

/// The one wording of "what was asked for does not exist", for every kind of thing:
/// `container "web": no such container`, `image "bb:1": no such image`.
pub fn no_such(kind: &str, name: &str) -> String {
    format!("{kind} {name:?}: no such {kind}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_words_errno_as_a_user_reads_it() {
        let e = std::fs::File::open("/no/such/file").unwrap_err();
        assert_eq!(chain(&e), "no such file or directory");
        let custom = std::io::Error::other("Odd Thing");
        assert_eq!(chain(&custom), "Odd Thing");
        // Behind a wrapper that shows its text (thiserror's transparent), and nix's errno.
        #[derive(Debug)]
        struct Shown(String);
        impl std::fmt::Display for Shown {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::error::Error for Shown {}
        for (text, want) in [
            ("Is a directory (os error 21)", "is a directory"),
            (
                "ENOENT: No such file or directory",
                "no such file or directory",
            ),
            (
                "EXDEV: Invalid cross-device link",
                "invalid cross-device link",
            ),
            ("Error: keep me", "Error: keep me"),
            ("EOF: keep me", "EOF: keep me"),
            (
                "opening lock /srv/MyStore/x: Permission denied (os error 13)",
                "opening lock /srv/MyStore/x: permission denied",
            ),
        ] {
            assert_eq!(chain(&Shown(text.into())), want);
        }
    }

    #[test]
    fn one_wording_for_missing_things() {
        assert_eq!(
            no_such("container", "x"),
            r#"container "x": no such container"#
        );
    }
}
