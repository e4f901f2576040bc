//! What a union is made of, asked through the mount itself: reading the virtual xattrs
//! `user.unionctl.layers` (any path) and `user.unionctl.which[.NAME]` (an object, or the
//! child NAME of a directory, e.g. for a symlink) answers with text. Nothing is stored.
use super::{NodeState, UnionFs};
use crate::sys;
use std::ffi::OsStr;
use std::fmt::Write;
use std::io;
use std::os::unix::ffi::OsStrExt;

pub const LAYERS_XATTR: &str = "user.unionctl.layers";
pub const WHICH_XATTR: &str = "user.unionctl.which";
/// The pid of the process serving the mount (so `umount` can wait for it to finish).
pub const PID_XATTR: &str = "user.unionctl.pid";

impl UnionFs {
    /// One line per layer, top first: "upper PATH", "lower N PATH" ("data N PATH" for a
    /// data-only one), then "work PATH".
    pub fn describe_layers(&self) -> String {
        let mut s = String::new();
        if let Some(u) = &self.layers.upper {
            let _ = writeln!(s, "upper\t{}", u.path.display());
        }
        let merged = self.layers.lowers.len() - self.layers.data_only;
        for (i, l) in self.layers.lowers.iter().enumerate() {
            let role = if i < merged { "lower" } else { "data" };
            let _ = writeln!(s, "{role} {i}\t{}", l.path.display());
        }
        let _ = writeln!(s, "format\t{:?}", self.layers.format);
        s
    }

    /// Where an object comes from: one line per layer that supplies it, top first (a
    /// directory can be merged from several; anything else comes from one).
    fn describe_state(&self, st: &NodeState, path: &OsStr, is_dir: bool) -> String {
        let mut s = String::new();
        if st.upper {
            if let Some(u) = &self.layers.upper {
                let _ = writeln!(s, "upper\t{}", u.path.join(path).display());
            }
        } else if let (Some(ix), Some(u)) = (&st.index, &self.layers.upper) {
            let _ = writeln!(s, "index\t{} ({})", ix.to_string_lossy(), u.path.display());
        }
        if !is_dir && !st.metacopy && !s.is_empty() {
            return s;
        }
        for l in st.lowers.iter() {
            let layer = &self.layers.lowers[l.layer];
            let _ = writeln!(
                s,
                "lower {}\t{}",
                l.layer,
                layer.path.join(&l.path).display()
            );
        }
        s
    }

    /// Answers a virtual xattr read, or None when NAME is not one.
    pub fn virtual_xattr(&self, ino: u64, name: &[u8]) -> Option<io::Result<Vec<u8>>> {
        if name == LAYERS_XATTR.as_bytes() {
            return Some(Ok(self.describe_layers().into_bytes()));
        }
        if name == PID_XATTR.as_bytes() {
            return Some(Ok(std::process::id().to_string().into_bytes()));
        }
        let rest = name.strip_prefix(WHICH_XATTR.as_bytes())?;
        Some((|| {
            let node = self.node(ino)?;
            let path = self.path_of(ino)?;
            if rest.is_empty() {
                return Ok(self
                    .describe_state(&node.snapshot(), &path, node.is_dir)
                    .into_bytes());
            }
            let child = rest
                .strip_prefix(b".")
                .ok_or_else(|| sys::errno(libc::ENODATA))?;
            let f = self
                .resolve(&node.snapshot(), &path, OsStr::from_bytes(child))?
                .ok_or_else(|| sys::errno(libc::ENOENT))?;
            let is_dir = f.kind == libc::S_IFDIR;
            let st = NodeState {
                aliases: vec![],
                upper: f.upper.is_some(),
                lowers: f.lowers.into(),
                redirected: f.redirected,
                metacopy: f.metacopy,
                index: f.index,
                orphan: None,
            };
            Ok(self
                .describe_state(
                    &st,
                    &crate::whiteout::join(&path, OsStr::from_bytes(child)),
                    is_dir,
                )
                .into_bytes())
        })())
    }
}
