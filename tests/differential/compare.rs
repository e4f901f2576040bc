//! Comparing the two sides: snapshots of the trees, their differences as report lines,
//! and where the aufs format may differ from overlayfs by design.
use super::harness::Subject;
use super::ops::{Node, Op};
use crate::common::layers::Format;
use crate::common::tree::{self, Tree};
use std::collections::BTreeSet;
use std::path::Path;

thread_local! {
    /// Set while the aufs-format subject runs (each test has its own thread).
    pub(crate) static AUFS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Where unionctl differs from overlayfs by design, not compared:
/// - mknod of a character device 0/0: overlayfs refuses (EPERM: it is its whiteout);
///   unionctl makes a device (marked as such in the upper layer; in aufs format an
///   ordinary one), so such a mknod is not run;
/// - in aufs format a directory renamed from a lower layer is moved as a full copy (aufs
///   has no redirect), so it shows its real link count instead of 1.
pub(crate) fn aufs_skips(subject: Subject, op: &Op) -> bool {
    matches!(subject, Subject::Unionctl { .. })
        && matches!(
            op,
            Op::Mknod {
                node: Node::Whiteout,
                ..
            }
        )
}

pub(crate) fn relax_aufs(subject: Subject, ra: String, rb: String) -> (String, String) {
    if !matches!(
        subject,
        Subject::Unionctl {
            write: Format::Aufs,
            ..
        }
    ) {
        return (ra, rb);
    }
    let dir_nlink = |r: String| -> String {
        if !r.starts_with("ok d ") {
            return r;
        }
        r.split(' ')
            .map(|w| {
                if w.starts_with("nlink=") {
                    "nlink=*"
                } else {
                    w
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    (dir_nlink(ra), dir_nlink(rb))
}

/// Tree-side counterpart of `relax_aufs`: directory link counts are not compared.
pub(crate) fn relax_tree(mut t: Tree) -> Tree {
    if AUFS.with(|a| a.get()) {
        for e in t.values_mut() {
            if e.kind == 'd' {
                e.nlink = 0;
            }
        }
    }
    t
}

pub(crate) fn first_word(s: String) -> String {
    s.split(':').next().unwrap_or_default().to_string()
}

pub(crate) fn snap(root: &Path) -> Tree {
    relax_tree(snap_exact(root))
}

pub(crate) fn snap_exact(root: &Path) -> Tree {
    tree::snapshot(root).unwrap_or_else(|e| {
        let mut t = Tree::new();
        // A tree that cannot be walked is itself a difference worth showing.
        t.insert(
            format!("<walk failed: {e}>"),
            tree::entry(Path::new("/")).unwrap(),
        );
        t
    })
}

pub(crate) fn push_diff(
    fails: &mut Vec<String>,
    seed: u64,
    what: &str,
    an: &str,
    a: &Tree,
    bn: &str,
    b: &Tree,
) {
    let broken: Vec<String> = [(an, a), (bn, b)]
        .iter()
        .flat_map(|(n, t)| {
            t.keys()
                .filter(|k| k.starts_with("<walk failed"))
                .map(move |k| format!("{n}: {k}"))
        })
        .collect();
    if !broken.is_empty() {
        fails.push(format!("seed {seed}: {what}: {}", broken.join("; ")));
        return;
    }
    let d = tree::diff(an, a, bn, b, 15);
    if !d.is_empty() {
        fails.push(format!(
            "seed {seed}: {what} differs:\n    {}",
            d.join("\n    ")
        ));
    }
}

pub(crate) fn push_set_diff(
    fails: &mut Vec<String>,
    seed: u64,
    what: &str,
    a: &BTreeSet<String>,
    b: &BTreeSet<String>,
) {
    if a != b {
        let only_a: Vec<_> = a.difference(b).take(10).collect();
        let only_b: Vec<_> = b.difference(a).take(10).collect();
        fails.push(format!(
            "seed {seed}: {what}: kernel only {only_a:?}, subject only {only_b:?}"
        ));
    }
}

pub(crate) fn same_ino(before: &Tree, after: &Tree) -> BTreeSet<String> {
    before
        .iter()
        .filter(|(p, e)| after.get(*p).is_some_and(|a| a.ino == e.ino))
        .map(|(p, _)| p.clone())
        .collect()
}
