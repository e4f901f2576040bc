//! The image side's views against the mount: random uppers written by kernel overlayfs
//! and by unionctl (overlay format, aufs format, and rootless `user.overlay.*` xattrs read
//! by root) are committed, exported and diffed offline, and each result must show what a
//! unionctl mount of the same lowers + upper shows, entry by entry: types, modes, owners,
//! sizes, content hashes, symlink targets, device numbers and hard-link groups.
//!
//! Every sequence starts with fixed changes that make each rule appear (a 0/0 device made
//! through unionctl, nested, relative and absolute redirects, opaque dirs, a lower hard
//! link written through one name, whiteouts of both formats), then runs random ops.
use super::apply::apply;
use super::compare::{push_diff, snap};
use super::generate::{Model, Rng, gen_op};
use super::harness::{Side, env_num, seeds_from_env};
use super::held::close_held;
use super::syscalls::{cpath, errno};
use super::{DEFAULT_OPS, DEFAULT_SEEDS, SEED_LIMIT_SECS};
use crate::common::mounts::{Mount, UnionDirs, mount_kernel, mount_unionctl};
use crate::common::tree::{self, Tree};
use crate::common::{self, Scratch};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use unionctl::image::layer::{LayerWriter, PackOptions, unpack};
use unionctl::image::views;
use unionctl::unionfs::{MergedView, OfflineSpec};

/// Who writes the upper.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Writer {
    Kernel,
    Unionctl,
    UnionctlAufs,
    /// unionctl with `-o userxattr`, as a rootless union writes (`user.overlay.*`).
    UnionctlRootless,
}

const WRITERS: [Writer; 4] = [
    Writer::Kernel,
    Writer::Unionctl,
    Writer::UnionctlAufs,
    Writer::UnionctlRootless,
];

impl Writer {
    /// unionctl mount options that read (and write) the upper as this writer did.
    fn unionctl_args(self) -> &'static [&'static str] {
        match self {
            Writer::Kernel | Writer::Unionctl => &[],
            Writer::UnionctlAufs => &["--format", "aufs"],
            Writer::UnionctlRootless => &["-o", "userxattr"],
        }
    }

    fn mount(self, dirs: &UnionDirs, merged: &Path) -> Result<Mount, String> {
        match self {
            Writer::Kernel => mount_kernel(dirs, merged),
            _ => mount_unionctl(dirs, merged, self.unionctl_args()),
        }
    }

    /// The upper's format as the offline view is told it: None (unknown, both read) is
    /// what the commands use for a container's upper; an aufs upper must be named.
    fn format(self) -> Option<unionctl::whiteout::Format> {
        (self == Writer::UnionctlAufs).then_some(unionctl::whiteout::Format::Aufs)
    }
}

#[test]
fn commit_export_and_diff_of_random_uppers_show_the_mounted_view() {
    assert!(common::is_root(), "mounts kernel overlayfs: run it as root");
    common::mounts::ensure_fusectl();
    // SAFETY: umask only changes this process's file-creation mask.
    unsafe { libc::umask(0o022) };
    let scratch = Scratch::new("diff-views");
    let lowers = common::layers::standard_lowers(&scratch.mkdir("lowers"));
    let seeds = seeds_from_env(DEFAULT_SEEDS / 4);
    let ops = env_num("DIFF_OPS", DEFAULT_OPS as u64) as usize;
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut changes = 0;
    for w in WRITERS {
        for seed in &seeds {
            let dir = scratch.mkdir(&format!("{w:?}-seed{seed}"));
            let _watchdog = common::mounts::Watchdog::new(
                &format!("views {w:?} seed {seed}"),
                &dir,
                SEED_LIMIT_SECS,
            );
            let (found, n) = views_of_seed(w, *seed, ops, &lowers, &dir);
            changes += n;
            if found.is_empty() {
                let _ = std::fs::remove_dir_all(&dir);
            }
            failures.extend(found.into_iter().map(|f| format!("{w:?} {f}")));
        }
    }
    common::report(&format!(
        "commit/export/diff vs the mounted view, {} writers: {} sequences x (prelude + {ops} ops) in {:.1}s, {changes} diff lines checked, {} difference(s)",
        WRITERS.len(),
        WRITERS.len() * seeds.len(),
        started.elapsed().as_secs_f64(),
        failures.len()
    ));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A dir renamed out of a lower dir that is opaque: overlayfs stops at the opaque parent,
/// so what an older lower layer has at the old path stays hidden in commit and export.
#[test]
fn commit_and_export_of_a_dir_renamed_from_under_an_opaque_lower_dir() {
    assert!(common::is_root(), "mounts kernel overlayfs: run it as root");
    let s = Scratch::new("diff-layers-opaque");
    let (top, bottom) = (s.mkdir("l0"), s.mkdir("l1"));
    std::fs::create_dir_all(top.join("p/d")).unwrap();
    std::fs::write(top.join("p/d/top"), b"top\n").unwrap();
    xattr::set(top.join("p"), "trusted.overlay.opaque", b"y").unwrap();
    std::fs::create_dir_all(bottom.join("p/d")).unwrap();
    std::fs::write(bottom.join("p/d/hidden"), b"hidden by the opaque p\n").unwrap();
    let (fails, _) =
        views_show_the_mount(Writer::Kernel, 0, &[top, bottom], &s.mkdir("run"), |m| {
            std::fs::rename(m.join("p/d"), m.join("q")).unwrap();
            assert!(
                !m.join("q/hidden").exists(),
                "kernel overlayfs shows q/hidden"
            );
        });
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}

fn views_of_seed(
    w: Writer,
    seed: u64,
    n_ops: usize,
    lowers: &[PathBuf],
    base: &Path,
) -> (Vec<String>, usize) {
    views_show_the_mount(w, seed, lowers, base, |merged| {
        prelude(w, merged);
        let mut rng = Rng::new(seed);
        let mut model = Model::from_tree(&snap(merged));
        for _ in 0..n_ops {
            let op = gen_op(&mut rng, &model);
            if apply(merged, &op).starts_with("ok") {
                model.learn(&op);
            }
        }
        close_held(merged);
    })
}

/// Changes over `standard_lowers` that bring in every rule the views must follow.
fn prelude(w: Writer, m: &Path) {
    let must = |what: &str, r: std::io::Result<()>| {
        r.unwrap_or_else(|e| panic!("{w:?} prelude: {what}: {e}"));
    };
    // Relative redirect (rename within a dir), then a nested one inside it, then the
    // parent moved across dirs (absolute redirect above a relative one).
    must(
        "rename deep",
        std::fs::rename(m.join("usr/lib/deep"), m.join("usr/lib/deep2")),
    );
    must(
        "rename er",
        std::fs::rename(m.join("usr/lib/deep2/er"), m.join("usr/lib/deep2/er2")),
    );
    must(
        "rename lib",
        std::fs::rename(m.join("usr/lib"), m.join("app/lib")),
    );
    // Absolute redirect of a merged dir (data is in l0, l1 and l2).
    must(
        "rename data",
        std::fs::rename(m.join("data"), m.join("app/bin/data")),
    );
    // Opaque dirs: a lower dir removed and made again, a new dir in a merged dir.
    must("rm var/cache", std::fs::remove_dir_all(m.join("var/cache")));
    must("mkdir var/cache", std::fs::create_dir(m.join("var/cache")));
    must(
        "write",
        std::fs::write(m.join("var/cache/fresh"), b"fresh\n"),
    );
    must("mkdir etc/new", std::fs::create_dir(m.join("etc/new")));
    // A lower hard link (nlink 3) written through one name: the index holds it.
    must("append hl/one", {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .open(m.join("hl/one"))
            .and_then(|mut f| f.write_all(b"more\n"))
    });
    must(
        "link hl/two",
        std::fs::hard_link(m.join("hl/two"), m.join("etc/two")),
    );
    // Whiteouts (char 0/0 or `.wh.` files, by format).
    must("rm etc/hosts", std::fs::remove_file(m.join("etc/hosts")));
    must("rm shadowdir", std::fs::remove_dir_all(m.join("shadowdir")));
    must("rm hl/three", std::fs::remove_file(m.join("hl/three")));
    // A character device 0/0: overlayfs refuses it (EPERM, it is its whiteout).
    let dev0 = cpath(m, "dev0");
    // SAFETY: mknod with a valid C path.
    let r = unsafe { libc::mknod(dev0.as_ptr(), libc::S_IFCHR | 0o600, 0) };
    match (w, r) {
        (Writer::Kernel, -1) => {}
        (Writer::Kernel, _) => panic!("kernel overlayfs made a 0/0 device"),
        // The mark cannot be set: `user.` xattrs are refused on devices.
        (Writer::UnionctlRootless, -1) => {}
        (_, 0) => {}
        _ => panic!("{w:?}: mknod dev0 c 0 0: {}", errno()),
    }
}

/// Runs `change` on a mount by `w` of `lowers`; then checks the commit layer of its
/// upper (unpacked, under the lowers), the export of upper + lowers, and the diff against
/// the lowers, each against what a unionctl mount of the same dirs shows. Returns the
/// differences and the number of diff lines checked.
fn views_show_the_mount(
    w: Writer,
    seed: u64,
    lowers: &[PathBuf],
    base: &Path,
    change: impl FnOnce(&Path),
) -> (Vec<String>, usize) {
    let side = Side::new("written", lowers, base);
    let mut m = w
        .mount(&side.dirs, &side.merged)
        .unwrap_or_else(|e| panic!("seed {seed}: {w:?} mount failed: {e}"));
    change(&side.merged);
    m.unmount().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    // The mounted view: unionctl over the same lowers, upper and work dir.
    let mut m = mount_unionctl(&side.dirs, &side.merged, w.unionctl_args())
        .unwrap_or_else(|e| panic!("seed {seed}: remounting with unionctl: {e}"));
    let mounted = snap(&side.merged);
    m.unmount().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    let expected = comparable(mounted.clone());

    let upper = side.dirs.upper.clone().unwrap();
    let index = side.dirs.work.clone().unwrap().join("index");
    let mut fails = Vec::new();
    let unpacked = |w: LayerWriter<Vec<u8>>, name: &str| {
        let tar = w.finish().unwrap();
        let dir = base.join(name);
        std::fs::create_dir(&dir).unwrap();
        unpack(tar.as_slice(), &dir)
            .unwrap_or_else(|e| panic!("seed {seed}: unpack: {e:#}\n{}", members(&tar)));
        dir
    };
    let opts = || PackOptions {
        lowers: lowers.to_vec(),
        skip_runtime_mountpoints: false,
        index: Some(index.clone()),
    };

    // commit: the upper as a layer tar, unpacked as the store does, mounted over the lowers.
    if w != Writer::UnionctlAufs {
        let mut lw = LayerWriter::new(Vec::new(), opts());
        lw.pack_tree(&upper, &mut |_| {})
            .unwrap_or_else(|e| panic!("seed {seed}: packing the upper: {e:#}"));
        let committed = committed_view(&unpacked(lw, "committed"), lowers, base);
        let what = "commit layer over the lowers";
        push_diff(
            &mut fails,
            seed,
            what,
            "mounted",
            &expected,
            "committed",
            &committed,
        );
    }

    // export: the offline view of upper + lowers as one tar, unpacked. The view reads
    // both xattr namespaces, whichever one the caller would mount with.
    let view_as = |user_xattr: bool| {
        MergedView::open(&OfflineSpec {
            upper: Some(upper.clone()),
            index: Some(index.clone()),
            lowers: lowers.to_vec(),
            format: w.format(),
            user_xattr,
        })
        .unwrap()
    };
    let view = views::of_upper_in(&upper, Some(&index), lowers, w.format()).unwrap();
    for (name, v) in [("exported", &view), ("exported-as-userns", &view_as(true))] {
        let mut lw = LayerWriter::new(Vec::new(), opts());
        lw.pack_view(v, &mut |_| {})
            .unwrap_or_else(|e| panic!("seed {seed}: export walk: {e:#}"));
        let exported = comparable(without_device_mark(snap(&unpacked(lw, name))));
        let what = format!("export of upper + lowers ({name})");
        push_diff(
            &mut fails, seed, &what, "mounted", &expected, name, &exported,
        );
    }

    // diff: entry by entry, what the mounted view shows against the lowers' view.
    let below = views::of_lowers(lowers).unwrap();
    let changes = unionctl::image::diff::changes_of(&view, &below).unwrap();
    let was = lowers_view(lowers, base);
    diff_fails(seed, &changes, &was, &mounted, &mut fails);
    (fails, changes.len())
}

/// The committed layer (a plain dir with `.wh.` files) under the lowers, mounted read-only
/// as `run` mounts an image.
fn committed_view(layer: &Path, lowers: &[PathBuf], base: &Path) -> Tree {
    let mut stack = vec![layer.to_path_buf()];
    stack.extend(lowers.iter().cloned());
    let ro = UnionDirs {
        lowers: stack,
        upper: None,
        work: None,
    };
    let merged = base.join("committed-view");
    std::fs::create_dir(&merged).unwrap();
    let mut cm = mount_unionctl(&ro, &merged, &[])
        .unwrap_or_else(|e| panic!("mounting the committed layer: {e}"));
    let t = comparable(snap(&merged));
    cm.unmount().unwrap();
    t
}

fn lowers_view(lowers: &[PathBuf], base: &Path) -> Tree {
    let dir = base.join("lower-view");
    std::fs::create_dir(&dir).unwrap();
    let ro = UnionDirs {
        lowers: lowers.to_vec(),
        upper: None,
        work: None,
    };
    let mut lm = mount_unionctl(&ro, &dir, &[]).unwrap();
    // Raw trees: sockets count here (a diff names them; only a tar cannot hold them).
    let t = snap(&dir);
    lm.unmount().unwrap();
    t
}

/// What `diff` must say, from the mounted view (`now`) and the lowers' view (`was`):
/// a new path is `A`; a path whose entry differs (type, mode, owner, size, content,
/// target, device, xattrs, or hard-link partners) is `C`; a path gone is `D`, or lies in
/// a dir reported `D` or now a non-dir; and every line it prints is one of those.
fn diff_fails(
    seed: u64,
    changes: &BTreeMap<String, char>,
    was: &Tree,
    now: &Tree,
    fails: &mut Vec<String>,
) {
    let got = |p: &str| changes.get(&format!("/{p}")).copied();
    // A merged dir's link count is overlayfs' own (1); a dir's change shows otherwise.
    let dirs_unlinked = |t: &Tree| {
        let mut t = t.clone();
        t.values_mut()
            .filter(|e| e.kind == 'd')
            .for_each(|e| e.nlink = 0);
        t
    };
    let (was, now) = (&dirs_unlinked(was), &dirs_unlinked(now));
    let mut fail = |m: String| fails.push(format!("seed {seed}: diff: {m}"));
    let (gw, gn) = (partners(was), partners(now));
    for (p, e) in now.iter().filter(|(p, _)| !p.is_empty()) {
        let want = match was.get(p) {
            None => Some('A'),
            Some(o) if o.describe() != e.describe() || gw.get(p) != gn.get(p) => Some('C'),
            // Unchanged to the eye: a copy-up may still report it.
            Some(_) => None,
        };
        if want.is_some() && got(p) != want {
            fail(format!("{p}: want {want:?}, reported {:?}", got(p)));
        }
    }
    for p in was
        .keys()
        .filter(|p| !p.is_empty() && !now.contains_key(*p))
    {
        let covered = std::iter::successors(Some(p.as_str()), |q| q.rsplit_once('/').map(|x| x.0))
            .any(|q| got(q) == Some('D') || q != p && now.get(q).is_some_and(|e| e.kind != 'd'));
        if !covered {
            fail(format!("{p} is gone, reported {:?}", got(p)));
        }
    }
    for (p, k) in changes {
        let p = &p[1..];
        let ok = match k {
            'A' => now.contains_key(p) && !was.contains_key(p),
            'C' => now.contains_key(p) && was.contains_key(p),
            _ => !now.contains_key(p) && was.contains_key(p),
        };
        if !ok {
            fail(format!("{k} {p} is not what the views show"));
        }
    }
}

/// Each non-dir path's hard-link partners (other paths of the same inode), as a string.
fn partners(t: &Tree) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for g in tree::link_groups(t) {
        for p in &g {
            out.insert(p.clone(), g.join(","));
        }
    }
    out
}

/// An unpacked 0/0 device keeps its mark as a raw xattr; a mount shows it as the device.
fn without_device_mark(mut t: Tree) -> Tree {
    for e in t.values_mut().filter(|e| e.kind == 'c' && e.rdev == 0) {
        e.xattrs
            .retain(|k, _| !k.ends_with("overlay.unionctl.device"));
    }
    t
}

/// A tar's member list (name, and link target), for a failure message.
fn members(tar: &[u8]) -> String {
    let mut a = ::tar::Archive::new(tar);
    let mut out = Vec::new();
    for e in a.entries().into_iter().flatten().flatten() {
        let name = e
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        match e.link_name().ok().flatten() {
            Some(l) => out.push(format!("  {name} -> {}", l.display())),
            None => out.push(format!("  {name}")),
        }
    }
    out.join("\n")
}

/// The tree without sockets (a tar cannot carry them; where one hid a lower name, the
/// name must stay hidden), the root (its attributes belong to the mount point or the
/// unpack dir) and directory link counts (overlayfs counts a merged dir's links its way).
fn comparable(mut t: Tree) -> Tree {
    t.retain(|p, e| !p.is_empty() && e.kind != 's');
    for e in t.values_mut() {
        if e.kind == 'd' {
            e.nlink = 0;
        }
    }
    t
}
