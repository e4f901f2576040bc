//! Reading a merged directory as overlayfs serves it: readers at once each see every entry
//! once, telldir/seekdir return to the same place, and changes while a reader is halfway
//! (and other readers listing the directory meanwhile) neither repeat nor lose an entry
//! that did not change. unionctl serves directories without a per-open state (the kernel
//! opens them without asking it), so readers that overlap must not disturb each other.
mod common;

use common::Scratch;
use common::mounts::{Kind, UnionDirs, mount_kind};
use std::collections::BTreeSet;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const LOWER: usize = 5000;
const UPPER: usize = 500;

/// An open directory stream (libc's DIR).
struct Dir(*mut libc::DIR);

impl Dir {
    fn open(p: &Path) -> Dir {
        let c = CString::new(p.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid C string; the stream is closed on drop.
        let d = unsafe { libc::opendir(c.as_ptr()) };
        assert!(!d.is_null(), "opendir {}", p.display());
        Dir(d)
    }

    /// The next N names (fewer at the end).
    fn read(&mut self, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        while out.len() < n {
            // SAFETY: our open stream; the entry is copied before the next call.
            let e = unsafe { libc::readdir(self.0) };
            if e.is_null() {
                break;
            }
            let name = unsafe { std::ffi::CStr::from_ptr((*e).d_name.as_ptr()) };
            out.push(name.to_string_lossy().into_owned());
        }
        out
    }

    fn tell(&mut self) -> libc::c_long {
        // SAFETY: our open stream.
        unsafe { libc::telldir(self.0) }
    }

    fn seek(&mut self, pos: libc::c_long) {
        // SAFETY: our open stream, a position it gave.
        unsafe { libc::seekdir(self.0, pos) }
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        // SAFETY: closed once.
        unsafe { libc::closedir(self.0) };
    }
}

/// Names seen more than once.
fn repeated(names: &[String]) -> Vec<&String> {
    let mut seen = BTreeSet::new();
    names.iter().filter(|n| !seen.insert(*n)).collect()
}

/// Returns one whole listing, in readdir order.
fn check(kind: Kind) -> Vec<String> {
    let s = Scratch::new(&format!("readdir-{kind:?}"));
    let (lower, upper, work, merged) = (
        s.mkdir("lower"),
        s.mkdir("upper"),
        s.mkdir("work"),
        s.mkdir("merged"),
    );
    std::fs::create_dir(lower.join("d")).unwrap();
    std::fs::create_dir(upper.join("d")).unwrap();
    for i in 0..LOWER {
        std::fs::write(lower.join(format!("d/l{i:04}")), b"").unwrap();
    }
    for i in 0..UPPER {
        std::fs::write(upper.join(format!("d/u{i:04}")), b"").unwrap();
    }
    let dirs = UnionDirs {
        lowers: vec![lower],
        upper: Some(upper),
        work: Some(work),
    };
    let mut m = mount_kind(kind, &dirs, &merged).unwrap_or_else(|e| panic!("{e}"));
    let d = merged.join("d");
    let mut all: BTreeSet<String> = (0..LOWER).map(|i| format!("l{i:04}")).collect();
    all.extend((0..UPPER).map(|i| format!("u{i:04}")));
    all.extend([".".to_string(), "..".to_string()]);

    // Two readers at once: A reads part, B all of it, then A the rest.
    let mut a = Dir::open(&d);
    let mut seen_a = a.read(700);
    let pos = a.tell();
    // 32-bit programs read offsets as 31-bit numbers (EOVERFLOW beyond).
    assert!((0..1 << 31).contains(&pos), "{kind:?}: telldir {pos:#x}");
    let b = Dir::open(&d).read(usize::MAX);
    let rest = a.read(usize::MAX);
    seen_a.extend(rest.iter().cloned());
    for (who, names) in [("A", &seen_a), ("B", &b)] {
        assert!(
            repeated(names).is_empty(),
            "{kind:?}: reader {who} saw names twice: {:?}",
            repeated(names)
        );
        assert_eq!(
            names.iter().cloned().collect::<BTreeSet<_>>(),
            all,
            "{kind:?}: reader {who}"
        );
    }
    // Back to the same place: the same rest.
    a.seek(pos);
    assert_eq!(
        a.read(usize::MAX),
        rest,
        "{kind:?}: seekdir to a telldir position"
    );

    // Changes while a reader is halfway: names it read go, new names come.
    let mut c = Dir::open(&d);
    let first = c.read(300);
    let gone: Vec<&String> = first
        .iter()
        .filter(|n| n.starts_with('u'))
        .take(100)
        .collect();
    for n in &gone {
        std::fs::remove_file(d.join(n)).unwrap();
    }
    for i in 0..5 {
        std::fs::write(d.join(format!("new{i}")), b"").unwrap();
    }
    // A new reader sees the change (and makes the kernel drop its cached listing, so C
    // reads on from the file system, at its offset).
    let now: BTreeSet<String> = Dir::open(&d).read(usize::MAX).into_iter().collect();
    assert!(
        gone.iter().all(|n| !now.contains(*n)) && now.contains("new0"),
        "{kind:?}: a reader opened after the change does not see it"
    );
    // Many more listings while C is halfway: each after another change.
    for i in 0..6 {
        std::fs::write(d.join(format!("more{i}")), b"").unwrap();
        let _ = Dir::open(&d).read(usize::MAX);
    }
    let mut seen_c = first.clone();
    seen_c.extend(c.read(usize::MAX));
    assert!(
        repeated(&seen_c).is_empty(),
        "{kind:?}: after changes, names twice: {:?}",
        repeated(&seen_c)
    );
    let unchanged: BTreeSet<&String> = all.iter().collect();
    let got: BTreeSet<&String> = seen_c.iter().collect();
    let lost: Vec<&&String> = unchanged.difference(&got).collect();
    assert!(
        lost.is_empty(),
        "{kind:?}: names that did not change were not listed: {lost:?}"
    );
    drop((a, c));
    m.unmount().unwrap_or_else(|e| panic!("{e}"));
    b
}

#[test]
fn readers_at_once_seekdir_and_changes_halfway_as_overlayfs() {
    assert!(common::is_root(), "mounts: run as root");
    let kernel = check(Kind::Kernel);
    let ours = check(Kind::Unionctl);
    // overlayfs' order too (upper, then the lower's other names), not only its set.
    assert!(
        kernel == ours,
        "the listing order differs from overlayfs': {:?} vs {:?}",
        &kernel[..8],
        &ours[..8]
    );
}
