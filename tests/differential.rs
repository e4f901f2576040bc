//! Differential test: the same seeded random sequences of file operations run on a
//! unionctl mount and on kernel overlayfs (redirect_dir=on,index=on) over the same
//! lower layers. Every result and errno must match, and so must the final trees, again
//! after a remount, and when each one mounts the upper + work dir the other wrote.
//!
//! `kernel_vs_kernel_is_deterministic` runs the same harness with kernel overlayfs on both
//! sides: it proves that anything the unionctl test reports is a real difference.
//! Each new kind of difference is shrunk to a short sequence that shows it on fresh mounts.
//! Env: DIFF_SEEDS (number of sequences), DIFF_FIRST (first seed, 1), DIFF_OPS (ops per
//! sequence), DIFF_SEED (run one), DIFF_BUDGET_SECS (stop after, 150),
//! DIFF_TRACE (print every op and result; use with --nocapture).
mod common;
#[path = "differential/views.rs"]
mod views;

use common::layers::Format;
use common::mounts::{Kind, Mount, UnionDirs, mount_kernel, mount_kind, mount_unionctl};
use common::tree::{self, Tree};
use common::{Scratch, errno_name};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const DEFAULT_SEEDS: u64 = 20;
const DEFAULT_OPS: usize = 200;
/// Each sequence normally takes well under a second; this bounds a hung subject.
const SEED_LIMIT_SECS: u64 = 30;

/// unionctl --format aufs over the same layers written in aufs format (.wh. files) must
/// behave as kernel overlayfs over the kernel-format layers.
#[test]
fn unionctl_aufs_format_matches_kernel_overlayfs() {
    let failures = run_all(Subject::Unionctl {
        write: Format::Aufs,
        lowers: Format::Aufs,
    });
    assert!(
        failures.is_empty(),
        "unionctl --format aufs differs from kernel overlayfs in {} place(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Reading accepts both formats: the default (overlay) format over lowers whose whiteouts
/// and opaque dirs are in aufs format.
#[test]
fn unionctl_reads_aufs_format_lowers() {
    let failures = run_all(Subject::Unionctl {
        write: Format::Overlay,
        lowers: Format::Aufs,
    });
    assert!(
        failures.is_empty(),
        "unionctl over aufs-format lowers differs from kernel overlayfs over kernel-format ones in {} place(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn kernel_vs_kernel_is_deterministic() {
    let failures = run_all(Subject::Kernel);
    assert!(
        failures.is_empty(),
        "kernel overlayfs disagrees with itself, the harness is not deterministic:\n{}",
        failures.join("\n")
    );
}

#[test]
fn unionctl_matches_kernel_overlayfs() {
    let failures = run_all(UNIONCTL);
    assert!(
        failures.is_empty(),
        "unionctl differs from kernel overlayfs in {} place(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The sequences to run: DIFF_SEED alone, else DIFF_SEEDS of them from DIFF_FIRST on.
fn seeds_from_env(default_count: u64) -> Vec<u64> {
    match std::env::var("DIFF_SEED").ok().and_then(|v| v.parse().ok()) {
        Some(s) => vec![s],
        None => {
            let first = env_num("DIFF_FIRST", 1);
            (first..first + env_num("DIFF_SEEDS", default_count)).collect()
        }
    }
}

/// A time budget for long runs (many DIFF_SEEDS), only when DIFF_BUDGET_SECS is set: by
/// default every seed runs, so whether the test passes never depends on the machine's speed.
fn time_budget_secs() -> Option<u64> {
    std::env::var("DIFF_BUDGET_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the oracle (kernel overlayfs over kernel-format lowers) is compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Subject {
    Kernel,
    /// unionctl writing its upper in `write` format over lowers in `lowers` format.
    Unionctl {
        write: Format,
        lowers: Format,
    },
}

const UNIONCTL: Subject = Subject::Unionctl {
    write: Format::Overlay,
    lowers: Format::Overlay,
};

impl Subject {
    fn name(self) -> &'static str {
        match self {
            Subject::Kernel => "kernel",
            Subject::Unionctl {
                write: Format::Overlay,
                lowers: Format::Overlay,
            } => "unionctl",
            Subject::Unionctl {
                write: Format::Aufs,
                ..
            } => "unionctl-aufs",
            Subject::Unionctl {
                write: Format::Overlay,
                lowers: Format::Aufs,
            } => "unionctl-on-aufs-lowers",
        }
    }

    fn kind(self) -> Kind {
        match self {
            Subject::Kernel => Kind::Kernel,
            Subject::Unionctl { .. } => Kind::Unionctl,
        }
    }

    fn lower_format(self) -> Format {
        match self {
            Subject::Kernel => Format::Overlay,
            Subject::Unionctl { lowers, .. } => lowers,
        }
    }

    /// Whether kernel overlayfs can read what this subject wrote over its lowers (and the
    /// reverse).
    fn kernel_format(self) -> bool {
        matches!(self, Subject::Kernel) || matches!(self, UNIONCTL)
    }

    fn mount(self, dirs: &UnionDirs, merged: &Path) -> Result<Mount, String> {
        match self {
            Subject::Kernel => mount_kernel(dirs, merged),
            Subject::Unionctl {
                write: Format::Overlay,
                ..
            } => mount_unionctl(dirs, merged, &[]),
            // This variant also serves reads and writes without FUSE passthrough, as a
            // rootless mount does, so both I/O paths meet the oracle.
            Subject::Unionctl {
                write: Format::Aufs,
                ..
            } => mount_unionctl(dirs, merged, &["--format", "aufs", "-o", "nopassthrough"]),
        }
    }
}

fn run_all(subject: Subject) -> Vec<String> {
    assert!(
        common::is_root(),
        "the differential test mounts kernel overlayfs: run it as root"
    );
    common::mounts::ensure_fusectl();
    AUFS.with(|a| {
        a.set(matches!(
            subject,
            Subject::Unionctl {
                write: Format::Aufs,
                ..
            }
        ))
    });
    // Same umask on both sides; FUSE and overlayfs both apply the caller's.
    // SAFETY: umask only changes this process's file-creation mask.
    unsafe { libc::umask(0o022) };
    let scratch = Scratch::new(&format!("diff-{}", subject.name()));
    let lowers = common::layers::standard_lowers(&scratch.mkdir("lowers"));
    let subject_lowers = match subject.lower_format() {
        Format::Aufs => {
            common::layers::standard_lowers_in(&scratch.mkdir("aufs-lowers"), Format::Aufs)
        }
        Format::Overlay => lowers.clone(),
    };
    let seeds = seeds_from_env(DEFAULT_SEEDS);
    let ops = env_num("DIFF_OPS", DEFAULT_OPS as u64) as usize;
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut distinct = BTreeMap::new();
    for seed in &seeds {
        if let Some(budget) = time_budget_secs()
            && started.elapsed().as_secs() > budget
        {
            failures.push(format!(
                "stopped before seed {seed}: over the {budget}s time budget (DIFF_BUDGET_SECS)"
            ));
            break;
        }
        let dir = scratch.mkdir(&format!("seed{seed}"));
        // A hung daemon fails only this sequence (its requests then end with ECONNABORTED).
        let _watchdog = common::mounts::Watchdog::new(
            &format!("differential seed {seed}"),
            &dir,
            SEED_LIMIT_SECS,
        );
        let found = run_seed(
            *seed,
            ops,
            subject,
            [lowers.as_slice(), subject_lowers.as_slice()],
            &dir,
            &mut distinct,
        );
        for f in &found {
            eprintln!("{f}");
        }
        // A subject that cannot even mount fails the same way for every seed.
        let cannot_mount = found
            .iter()
            .any(|f| f.starts_with(&format!("seed {seed}: mount ")));
        failures.extend(found);
        if cannot_mount {
            break;
        }
        // Each seed's uppers are only needed for its own report.
        if failures.is_empty() {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    if !distinct.is_empty() {
        let mut lines = vec![format!(
            "{} distinct differences (operation results, first tree difference of a sequence):",
            distinct.len()
        )];
        for (sig, (n, first)) in &distinct {
            lines.push(format!("  {n:>3}x {sig}\n       first: {first}"));
        }
        failures.insert(0, lines.join("\n"));
    }
    common::report(&format!(
        "differential test, kernel overlayfs vs {}: {} sequences x {ops} ops in {:.1}s, {} difference(s)",
        subject.name(),
        seeds.len(),
        started.elapsed().as_secs_f64(),
        failures.len()
    ));
    failures
}

/// One side of the comparison: its upper and work dirs and mount point.
struct Side {
    dirs: UnionDirs,
    merged: PathBuf,
}

impl Side {
    fn new(name: &str, lowers: &[PathBuf], base: &Path) -> Side {
        let root = base.join(name);
        for d in ["upper", "work", "merged"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        Side {
            dirs: UnionDirs {
                lowers: lowers.to_vec(),
                upper: Some(root.join("upper")),
                work: Some(root.join("work")),
            },
            merged: root.join("merged"),
        }
    }

    fn mount_as(&self, kind: Kind, dirs: &UnionDirs) -> Result<Mount, String> {
        mount_kind(kind, dirs, &self.merged)
    }
}

/// Runs one sequence; returns the differences found (empty when both sides agree).
fn run_seed(
    seed: u64,
    n_ops: usize,
    subject: Subject,
    lowers: [&[PathBuf]; 2],
    base: &Path,
    distinct: &mut BTreeMap<String, (usize, String)>,
) -> Vec<String> {
    let oracle = Side::new("oracle", lowers[0], base);
    let test = Side::new("subject", lowers[1], base);
    let sname = subject.name();
    let mut fails = Vec::new();
    let fail_mount = |what: &str, e: String| vec![format!("seed {seed}: {what}: {e}")];

    let mut ma = match oracle.mount_as(Kind::Kernel, &oracle.dirs) {
        Ok(m) => m,
        Err(e) => panic!("seed {seed}: kernel overlayfs mount failed: {e}"),
    };
    let mut mb = match subject.mount(&test.dirs, &test.merged) {
        Ok(m) => m,
        Err(e) => return fail_mount(&format!("mount {sname}"), e),
    };

    let a0 = snap(&oracle.merged);
    let b0 = snap(&test.merged);
    push_diff(
        &mut fails,
        seed,
        "initial merged view",
        "kernel",
        &a0,
        sname,
        &b0,
    );

    // The operations, in lockstep; paths are chosen from what the oracle has seen.
    let mut rng = Rng::new(seed);
    let mut model = Model::from_tree(&a0);
    let trace = std::env::var_os("DIFF_TRACE").is_some();
    let mut oks = 0;
    // Set when a change went differently: from there on the trees differ by construction.
    let mut diverged = false;
    let mut done: Vec<Op> = Vec::new();
    for i in 0..n_ops {
        let op = gen_op(&mut rng, &model);
        if aufs_skips(subject, &op) {
            continue;
        }
        let ra = apply(&oracle.merged, &op);
        let rb = apply(&test.merged, &op);
        let (ra, rb) = relax_aufs(subject, ra, rb);
        done.push(op.clone());
        if ra != rb {
            let variant = format!("{op:?}")
                .split([' ', '{'])
                .next()
                .unwrap_or_default()
                .to_string();
            let sig = format!("{variant}: kernel {ra} | {sname} {rb}");
            if !distinct.contains_key(&sig) {
                let repro = minimize(subject, lowers, base, &done, (&ra, &rb));
                distinct.insert(
                    sig.clone(),
                    (0, format!("seed {seed} op {i}: {op:?}{repro}")),
                );
            }
            distinct.get_mut(&sig).unwrap().0 += 1;
            fails.push(format!(
                "seed {seed} op {i}: {op:?}\n    kernel:   {ra}\n    {sname:<9} {rb}"
            ));
            // After a change went differently, later results would only echo it.
            if op.changes_state() {
                diverged = true;
                break;
            }
        }
        if trace {
            eprintln!("seed {seed} op {i}: {op:?} -> {ra}");
        }
        if ra.starts_with("ok") {
            oks += 1;
            model.learn(&op);
        }
    }

    if trace {
        eprintln!("seed {seed}: {oks} of {n_ops} ops succeeded");
    }
    let a1 = snap(&oracle.merged);
    let b1 = snap(&test.merged);
    if !diverged {
        push_diff(
            &mut fails,
            seed,
            "tree after the ops",
            "kernel",
            &a1,
            sname,
            &b1,
        );
        // Shrink the first few kinds of tree difference to short sequences too.
        let first = tree::diff("kernel", &a1, "subject", &b1, 1).pop();
        if let Some(line) = first.filter(|_| distinct.len() < 12) {
            let sig = format!("tree after the ops: {}", diff_key(&line));
            if !distinct.contains_key(&sig) {
                let repro = minimize_tree(subject, lowers, base, &done, &line);
                distinct.insert(sig.clone(), (0, format!("seed {seed}: {line}{repro}")));
            }
            distinct.get_mut(&sig).unwrap().0 += 1;
        }
        push_set_diff(
            &mut fails,
            seed,
            "paths whose st_ino stayed the same through the ops (copy-up keeps st_ino)",
            &same_ino(&a0, &a1),
            &same_ino(&b0, &b1),
        );
    }

    close_held(&oracle.merged);
    close_held(&test.merged);
    if let Err(e) = ma.unmount() {
        panic!("seed {seed}: {e}");
    }
    if let Err(e) = mb.unmount() {
        fails.push(format!("seed {seed}: {e}"));
        return fails;
    }
    if !diverged && subject.kernel_format() {
        // The same changes leave the same upper dir: objects, types, overlay xattrs.
        for d in tree::upper_layout_diff(
            oracle.dirs.upper.as_ref().unwrap(),
            test.dirs.upper.as_ref().unwrap(),
        )
        .into_iter()
        .take(5)
        {
            fails.push(format!("seed {seed}: upper dir: {d}"));
        }
    }

    // Remount each on its own upper: same tree, same st_ino.
    let mut ma = oracle
        .mount_as(Kind::Kernel, &oracle.dirs)
        .unwrap_or_else(|e| panic!("seed {seed}: kernel remount: {e}"));
    let mut mb = match subject.mount(&test.dirs, &test.merged) {
        Ok(m) => m,
        Err(e) => {
            fails.extend(fail_mount(&format!("remount {sname} on its own upper"), e));
            return fails;
        }
    };
    let a2 = snap(&oracle.merged);
    let b2 = snap(&test.merged);
    let kernel_d_ino: BTreeSet<String> = tree::d_ino_mismatches(&oracle.merged)
        .into_iter()
        .map(first_word)
        .collect();
    if !diverged {
        push_diff(
            &mut fails,
            seed,
            "tree after remount",
            "kernel",
            &a2,
            sname,
            &b2,
        );
    }
    push_diff(
        &mut fails,
        seed,
        "own tree before/after remount",
        &format!("{sname}-before"),
        &b1,
        &format!("{sname}-after"),
        &b2,
    );
    push_set_diff(
        &mut fails,
        seed,
        "paths whose st_ino changed across remount",
        &tree::ino_changes(&a1, &a2)
            .into_iter()
            .map(first_word)
            .collect(),
        &tree::ino_changes(&b1, &b2)
            .into_iter()
            .map(first_word)
            .collect(),
    );
    ma.unmount().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    if let Err(e) = mb.unmount() {
        fails.push(format!("seed {seed}: {e}"));
        return fails;
    }

    if !subject.kernel_format() {
        return fails;
    }
    // Cross: kernel reads what the subject wrote; the subject reads what the kernel wrote.
    match test.mount_as(Kind::Kernel, &test.dirs) {
        Ok(mut m) => {
            let k_of_b = snap(&test.merged);
            push_diff(
                &mut fails,
                seed,
                &format!("kernel overlayfs over {sname}'s upper+work"),
                &format!("{sname}-own"),
                &b2,
                &format!("kernel-on-{sname}-upper"),
                &k_of_b,
            );
            push_set_diff(
                &mut fails,
                seed,
                "entries whose d_ino is not their st_ino",
                &kernel_d_ino,
                &tree::d_ino_mismatches(&test.merged)
                    .into_iter()
                    .map(first_word)
                    .collect(),
            );
            // A subject daemon that exits late may have unmounted this mount under us.
            if let Err(e) = m.unmount() {
                fails.push(format!(
                    "seed {seed}: kernel mount over {sname}'s upper vanished or failed to unmount ({e}); \
                     did a late-exiting {sname} daemon unmount it?"
                ));
            }
        }
        Err(e) => fails.push(format!(
            "seed {seed}: kernel overlayfs cannot mount {sname}'s upper+work: {e}"
        )),
    }
    match oracle.mount_as(subject.kind(), &oracle.dirs) {
        Ok(mut m) => {
            let b_of_a = snap(&oracle.merged);
            push_diff(
                &mut fails,
                seed,
                &format!("{sname} over kernel's upper+work"),
                "kernel-own",
                &a2,
                &format!("{sname}-on-kernel-upper"),
                &b_of_a,
            );
            if let Err(e) = m.unmount() {
                fails.push(format!("seed {seed}: {e}"));
            }
        }
        Err(e) => fails.push(format!(
            "seed {seed}: {sname} cannot mount the kernel's upper+work: {e}"
        )),
    }
    fails
}

/// Time for shrinking each new kind of difference to a short sequence that shows it.
const MINIMIZE_SECS: u64 = 8;
const MINIMIZE_TOTAL_SECS: u64 = 30;

/// Shrinks `ops` (whose last op gave `want` = (kernel, subject) results) to a short
/// sequence that still ends in the same two results, replaying each candidate on fresh
/// mounts. Returns the sequence as text for the report.
fn minimize(
    subject: Subject,
    lowers: [&[PathBuf]; 2],
    base: &Path,
    ops: &[Op],
    want: (&str, &str),
) -> String {
    let (last, prefix) = ops.split_last().unwrap();
    let with_last = |k: &[Op]| -> Vec<Op> { k.iter().cloned().chain([last.clone()]).collect() };
    let found = shrink(prefix, |cand| {
        replay(subject, lowers, base, cand, |a, b| {
            (apply(a, last), apply(b, last)) == (want.0.to_string(), want.1.to_string())
        })
    });
    describe_shrunk(found.map(|k| with_last(&k)))
}

/// Shrinks `ops` to a short sequence after which the two trees still differ the same way
/// as in `line` (a line of tree::diff).
fn minimize_tree(
    subject: Subject,
    lowers: [&[PathBuf]; 2],
    base: &Path,
    ops: &[Op],
    line: &str,
) -> String {
    let want = diff_key(line);
    let found = shrink(ops, |cand| {
        replay(subject, lowers, base, cand, |a, b| {
            let (ta, tb) = (snap(a), snap(b));
            tree::diff("kernel", &ta, "subject", &tb, 1000)
                .iter()
                .any(|l| diff_key(l) == want)
        })
    });
    describe_shrunk(found)
}

/// What identifies a tree difference across replays: its path and, for attributes, the
/// values (mtimes of new objects change from run to run, so only "mtime" for those).
fn diff_key(line: &str) -> String {
    match line.split_once(": mtime ") {
        Some((path, _)) => format!("{path}: mtime"),
        None => line.to_string(),
    }
}

fn describe_shrunk(found: Result<Vec<Op>, &str>) -> String {
    match found {
        Err(why) => format!("\n       ({why})"),
        Ok(k) => {
            let steps: Vec<String> = k.iter().map(|o| format!("{o:?}")).collect();
            format!(
                "\n       shortest sequence found ({} ops): {}",
                steps.len(),
                steps.join("; ")
            )
        }
    }
}

/// ddmin-style: drops chunks of decreasing size while `fails` holds, within MINIMIZE_SECS.
/// None if the whole sequence does not fail on fresh mounts.
fn shrink(ops: &[Op], mut fails: impl FnMut(&[Op]) -> bool) -> Result<Vec<Op>, &'static str> {
    let started = Instant::now();
    // Each test (thread) may spend MINIMIZE_TOTAL_SECS shrinking, then reports as found.
    let budget_left = MINIMIZE_SPENT.with(|s| s.get()) < Duration::from_secs(MINIMIZE_TOTAL_SECS);
    let result = shrink_within(ops, &mut fails, budget_left);
    MINIMIZE_SPENT.with(|s| s.set(s.get() + started.elapsed()));
    result
}

thread_local! {
    static MINIMIZE_SPENT: std::cell::Cell<Duration> = const { std::cell::Cell::new(Duration::ZERO) };
}

fn shrink_within(
    ops: &[Op],
    fails: &mut impl FnMut(&[Op]) -> bool,
    budget_left: bool,
) -> Result<Vec<Op>, &'static str> {
    if !budget_left {
        return Err("not shrunk: the time for shrinking is used up");
    }
    let started = Instant::now();
    let mut keep: Vec<Op> = ops.to_vec();
    if !fails(&keep) {
        return Err("does not reproduce on fresh mounts");
    }
    let mut chunk = keep.len().div_ceil(2).max(1);
    while !keep.is_empty() && started.elapsed().as_secs() < MINIMIZE_SECS {
        let mut removed_any = false;
        let mut at = 0;
        while at < keep.len() && started.elapsed().as_secs() < MINIMIZE_SECS {
            let mut cand = keep.clone();
            cand.drain(at..(at + chunk).min(cand.len()));
            if fails(&cand) {
                keep = cand;
                removed_any = true;
            } else {
                at += chunk;
            }
        }
        if chunk == 1 && !removed_any {
            break;
        }
        chunk = (chunk / 2).max(1);
    }
    Ok(keep)
}

/// Runs `ops` on fresh kernel and subject mounts (in a fresh dir under `base`), then
/// `check` on the two mount points.
fn replay(
    subject: Subject,
    lowers: [&[PathBuf]; 2],
    base: &Path,
    ops: &[Op],
    check: impl FnOnce(&Path, &Path) -> bool,
) -> bool {
    static ROUND: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = base.join(format!(
        "min{}",
        ROUND.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    let a = Side::new("oracle", lowers[0], &dir);
    let b = Side::new("subject", lowers[1], &dir);
    let result = (|| {
        let _ma = a.mount_as(Kind::Kernel, &a.dirs).ok()?;
        let _mb = subject.mount(&b.dirs, &b.merged).ok()?;
        for op in ops {
            apply(&a.merged, op);
            apply(&b.merged, op);
        }
        let r = check(&a.merged, &b.merged);
        close_held(&a.merged);
        close_held(&b.merged);
        Some(r)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result.unwrap_or(false)
}

thread_local! {
    /// Set while the aufs-format subject runs (each test has its own thread).
    static AUFS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Where unionctl differs from overlayfs by design, not compared:
/// - mknod of a character device 0/0: overlayfs refuses (EPERM: it is its whiteout);
///   unionctl makes a device (marked as such in the upper layer; in aufs format an
///   ordinary one), so such a mknod is not run;
/// - in aufs format a directory renamed from a lower layer is moved as a full copy (aufs
///   has no redirect), so it shows its real link count instead of 1.
fn aufs_skips(subject: Subject, op: &Op) -> bool {
    matches!(subject, Subject::Unionctl { .. })
        && matches!(
            op,
            Op::Mknod {
                node: Node::Whiteout,
                ..
            }
        )
}

fn relax_aufs(subject: Subject, ra: String, rb: String) -> (String, String) {
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
fn relax_tree(mut t: Tree) -> Tree {
    if AUFS.with(|a| a.get()) {
        for e in t.values_mut() {
            if e.kind == 'd' {
                e.nlink = 0;
            }
        }
    }
    t
}

fn first_word(s: String) -> String {
    s.split(':').next().unwrap_or_default().to_string()
}

fn snap(root: &Path) -> Tree {
    relax_tree(snap_exact(root))
}

fn snap_exact(root: &Path) -> Tree {
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

fn push_diff(
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

fn push_set_diff(
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

fn same_ino(before: &Tree, after: &Tree) -> BTreeSet<String> {
    before
        .iter()
        .filter(|(p, e)| after.get(*p).is_some_and(|a| a.ino == e.ino))
        .map(|(p, _)| p.clone())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Deterministic random numbers (splitmix64): the same seed gives the same sequence.

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E3779B97F4A7C15) ^ 0xD1B54A32D192ED03)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    /// A write length: mostly small, sometimes beyond one 128 KiB FUSE request.
    fn len(&mut self) -> usize {
        match self.below(10) {
            0 => 0,
            1..=6 => self.below(200) as usize,
            7 | 8 => 200 + self.below(8000) as usize,
            _ => 100_000 + self.below(100_000) as usize,
        }
    }
}

// ---------------------------------------------------------------------------------------
// The operations.

#[derive(Debug, Clone)]
enum Op {
    Write {
        path: String,
        len: usize,
        seed: u64,
    },
    Append {
        path: String,
        len: usize,
        seed: u64,
    },
    Pwrite {
        path: String,
        off: u64,
        len: usize,
        seed: u64,
    },
    Truncate {
        path: String,
        len: u64,
    },
    Read {
        path: String,
    },
    CreateExcl {
        path: String,
        mode: Mode,
    },
    Unlink {
        path: String,
    },
    Mkdir {
        path: String,
        mode: Mode,
    },
    Rmdir {
        path: String,
    },
    Rename {
        from: String,
        to: String,
        flags: RenameFlags,
    },
    Link {
        from: String,
        to: String,
    },
    Symlink {
        target: String,
        path: String,
    },
    Readlink {
        path: String,
    },
    Chmod {
        path: String,
        mode: Mode,
    },
    Chown {
        path: String,
        uid: u32,
        gid: u32,
        nofollow: bool,
    },
    Utimens {
        path: String,
        atime: Option<(i64, i64)>,
        mtime: Option<(i64, i64)>,
        nofollow: bool,
    },
    SetXattr {
        path: String,
        name: String,
        value: String,
        flags: XattrFlags,
        nofollow: bool,
    },
    RemoveXattr {
        path: String,
        name: String,
    },
    GetXattr {
        path: String,
        name: String,
    },
    ListXattr {
        path: String,
    },
    Readdir {
        path: String,
    },
    Lstat {
        path: String,
    },
    Stat {
        path: String,
    },
    Mknod {
        path: String,
        node: Node,
    },
    Fallocate {
        path: String,
        off: u64,
        len: u64,
        how: Falloc,
    },
    Seek {
        path: String,
        off: u64,
        hole: bool,
    },
    Access {
        path: String,
        mode: i32,
    },
    OpenTrunc {
        path: String,
    },
    /// Opens PATH and keeps the descriptor in SLOT (closing what was there) for the
    /// Held* ops: I/O through a descriptor opened before a copy-up, rename or unlink.
    Hold {
        slot: u8,
        path: String,
        write: bool,
    },
    HeldRead {
        slot: u8,
    },
    HeldWrite {
        slot: u8,
        off: u64,
        len: usize,
        seed: u64,
    },
    HeldStat {
        slot: u8,
    },
    HeldTruncate {
        slot: u8,
        len: u64,
    },
    HeldClose {
        slot: u8,
    },
    /// Lists a held directory from its start (rewinddir on the same open directory).
    HeldReaddir {
        slot: u8,
    },
}

#[derive(Debug, Clone, Copy)]
enum Node {
    Fifo,
    Socket,
    /// char 1:3, as /dev/null
    CharDevice,
    /// char 0:0, which overlayfs keeps for whiteouts
    Whiteout,
}

#[derive(Debug, Clone, Copy)]
enum Falloc {
    Allocate,
    KeepSize,
    PunchHole,
}

impl Op {
    /// Whether the op may change the tree (so that a different outcome makes both sides
    /// diverge from there on).
    fn changes_state(&self) -> bool {
        !matches!(
            self,
            Op::Read { .. }
                | Op::Readlink { .. }
                | Op::GetXattr { .. }
                | Op::ListXattr { .. }
                | Op::Readdir { .. }
                | Op::Lstat { .. }
                | Op::Seek { .. }
                | Op::Access { .. }
                | Op::Stat { .. }
                | Op::Hold { write: false, .. }
                | Op::HeldRead { .. }
                | Op::HeldStat { .. }
                | Op::HeldClose { .. }
                | Op::HeldReaddir { .. }
        )
    }
}

/// A file mode, shown in octal in reports.
#[derive(Clone, Copy)]
struct Mode(u32);

impl std::fmt::Debug for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "0o{:o}", self.0)
    }
}

#[derive(Debug, Clone, Copy)]
enum RenameFlags {
    Plain,
    NoReplace,
    Exchange,
}

#[derive(Debug, Clone, Copy)]
enum XattrFlags {
    Any,
    Create,
    Replace,
}

/// Names the generator knows: everything the oracle showed at the start, plus what the
/// operations created. Deleted names stay (they make ENOENT cases).
struct Model {
    paths: Vec<String>,
    dirs: Vec<String>,
}

const NEW_NAMES: &[&str] = &["n1", "n2", "n3", "a", "b", "x"];
const XATTR_NAMES: &[&str] = &[
    "user.a",
    "user.b",
    "user.origin",
    "user.layer",
    "user.long.name",
];

impl Model {
    fn from_tree(t: &Tree) -> Model {
        let paths: Vec<String> = t.keys().cloned().collect();
        let dirs = t
            .iter()
            .filter(|(_, e)| e.kind == 'd')
            .map(|(p, _)| p.clone())
            .collect();
        Model { paths, dirs }
    }

    fn add(&mut self, p: &str, dir: bool) {
        if !self.paths.iter().any(|q| q == p) {
            self.paths.push(p.to_string());
        }
        if dir && !self.dirs.iter().any(|q| q == p) {
            self.dirs.push(p.to_string());
        }
    }

    fn learn(&mut self, op: &Op) {
        match op {
            Op::Write { path, .. } | Op::Append { path, .. } | Op::CreateExcl { path, .. } => {
                self.add(path, false)
            }
            Op::Symlink { path, .. } | Op::Mknod { path, .. } => self.add(path, false),
            Op::Link { to, .. } => self.add(to, false),
            Op::Mkdir { path, .. } => self.add(path, true),
            Op::Rename { from, to, .. } => {
                let was_dir = self.dirs.iter().any(|d| d == from);
                let (from_prefix, to_prefix) = (format!("{from}/"), format!("{to}/"));
                let moved: Vec<(String, bool)> = self
                    .paths
                    .iter()
                    .filter_map(|p| p.strip_prefix(&from_prefix))
                    .map(|rest| {
                        let old = format!("{from_prefix}{rest}");
                        (format!("{to_prefix}{rest}"), self.dirs.contains(&old))
                    })
                    .collect();
                self.add(to, was_dir);
                for (p, d) in moved {
                    self.add(&p, d);
                }
            }
            _ => {}
        }
    }

    fn existing(&self, rng: &mut Rng) -> String {
        rng.pick(&self.paths).clone()
    }

    /// A known path that was never seen as a directory (falls back to any after a few tries).
    fn non_dir(&self, rng: &mut Rng) -> String {
        for _ in 0..8 {
            let p = self.existing(rng);
            if !self.dirs.contains(&p) {
                return p;
            }
        }
        self.existing(rng)
    }

    fn fresh(&self, rng: &mut Rng) -> String {
        let dir = rng.pick(&self.dirs);
        let name = rng.pick(NEW_NAMES);
        if dir.is_empty() {
            name.to_string()
        } else {
            format!("{dir}/{name}")
        }
    }

    fn any(&self, rng: &mut Rng) -> String {
        if rng.chance(65) {
            self.existing(rng)
        } else {
            self.fresh(rng)
        }
    }
}

fn gen_op(rng: &mut Rng, m: &Model) -> Op {
    let modes = [
        0o644, 0o600, 0o755, 0o700, 0o640, 0o4755, 0o1777, 0o000, 0o444,
    ];
    let time = |rng: &mut Rng| -> Option<(i64, i64)> {
        match rng.below(5) {
            0 => None,
            _ => Some((
                900_000_000 + rng.below(400_000_000) as i64,
                rng.below(1_000_000_000) as i64,
            )),
        }
    };
    let slot = |rng: &mut Rng| rng.below(HELD_SLOTS as u64) as u8;
    match rng.below(126) {
        0..=9 => Op::Write {
            path: m.any(rng),
            len: rng.len(),
            seed: rng.next(),
        },
        10..=14 => Op::Append {
            path: m.any(rng),
            len: rng.len(),
            seed: rng.next(),
        },
        15..=19 => Op::Pwrite {
            path: m.existing(rng),
            off: if rng.chance(20) {
                100_000 + rng.below(200_000)
            } else {
                rng.below(6000)
            },
            len: 1 + rng.below(3000) as usize,
            seed: rng.next(),
        },
        20..=23 => Op::Truncate {
            path: m.existing(rng),
            len: if rng.chance(30) {
                0
            } else {
                rng.below(300_000)
            },
        },
        24..=28 => Op::Read {
            path: m.existing(rng),
        },
        29..=31 => Op::CreateExcl {
            path: m.any(rng),
            mode: Mode(*rng.pick(&modes)),
        },
        32..=37 => Op::Unlink {
            path: m.existing(rng),
        },
        38..=42 => Op::Mkdir {
            path: m.any(rng),
            mode: Mode(*rng.pick(&[0o755, 0o700, 0o777, 0o1755])),
        },
        43..=46 => Op::Rmdir {
            path: m.existing(rng),
        },
        47..=56 => Op::Rename {
            from: m.existing(rng),
            to: m.any(rng),
            flags: match rng.below(10) {
                0..=5 => RenameFlags::Plain,
                6 | 7 => RenameFlags::NoReplace,
                _ => RenameFlags::Exchange,
            },
        },
        57..=60 => Op::Link {
            from: m.existing(rng),
            to: m.any(rng),
        },
        61..=63 => Op::Symlink {
            target: rng
                .pick(&["a", "n1", "bin", "deep/er", "nowhere", "x/y"])
                .to_string(),
            path: m.any(rng),
        },
        64..=65 => Op::Readlink {
            path: m.existing(rng),
        },
        66..=69 => Op::Chmod {
            path: m.existing(rng),
            mode: Mode(*rng.pick(&modes)),
        },
        70..=72 => Op::Chown {
            path: m.existing(rng),
            uid: *rng.pick(&[0, 1000, 65534]),
            gid: *rng.pick(&[0, 1000, 65534]),
            nofollow: rng.chance(50),
        },
        73..=75 => Op::Utimens {
            path: m.existing(rng),
            atime: time(rng),
            mtime: time(rng),
            nofollow: rng.chance(40),
        },
        76..=81 => Op::SetXattr {
            path: m.existing(rng),
            name: rng.pick(XATTR_NAMES).to_string(),
            value: format!("v{}", rng.below(1000)),
            flags: match rng.below(4) {
                0 => XattrFlags::Create,
                1 => XattrFlags::Replace,
                _ => XattrFlags::Any,
            },
            nofollow: rng.chance(50),
        },
        82..=84 => Op::RemoveXattr {
            path: m.existing(rng),
            name: rng.pick(XATTR_NAMES).to_string(),
        },
        85..=87 => Op::GetXattr {
            path: m.existing(rng),
            name: rng
                .pick(&[
                    "user.a",
                    "user.origin",
                    "trusted.overlay.opaque",
                    "trusted.overlay.origin",
                    "user.overlay.opaque",
                ])
                .to_string(),
        },
        88..=89 => Op::ListXattr {
            path: m.existing(rng),
        },
        90..=93 => Op::Readdir {
            path: rng.pick(&m.dirs).clone(),
        },
        94..=97 => Op::Lstat {
            path: m.existing(rng),
        },
        98..=99 => Op::Stat {
            path: m.existing(rng),
        },
        100..=101 => Op::Mknod {
            path: m.any(rng),
            node: *rng.pick(&[Node::Fifo, Node::Socket, Node::CharDevice, Node::Whiteout]),
        },
        102..=104 => Op::Fallocate {
            path: m.existing(rng),
            off: rng.below(1 << 20),
            len: 1 + rng.below(200_000),
            how: *rng.pick(&[Falloc::Allocate, Falloc::KeepSize, Falloc::PunchHole]),
        },
        105..=107 => Op::Seek {
            // The lower layers' sparse file: its holes must survive copy-up.
            path: if rng.chance(30) {
                "sparse".into()
            } else {
                m.non_dir(rng)
            },
            off: if rng.chance(50) {
                0
            } else {
                rng.below(1 << 20)
            },
            hole: rng.chance(50),
        },
        108..=109 => Op::Access {
            path: m.existing(rng),
            mode: *rng.pick(&[
                libc::F_OK,
                libc::R_OK,
                libc::W_OK,
                libc::X_OK,
                libc::R_OK | libc::W_OK,
            ]),
        },
        110 => Op::OpenTrunc {
            path: m.existing(rng),
        },
        111..=113 => Op::Hold {
            slot: slot(rng),
            path: m.existing(rng),
            write: rng.chance(50),
        },
        114..=115 => Op::HeldRead { slot: slot(rng) },
        116..=118 => Op::HeldWrite {
            slot: slot(rng),
            off: rng.below(6000),
            len: 1 + rng.below(3000) as usize,
            seed: rng.next(),
        },
        119..=120 => Op::HeldStat { slot: slot(rng) },
        121 => Op::HeldTruncate {
            slot: slot(rng),
            len: rng.below(5000),
        },
        122..=123 => Op::HeldReaddir { slot: slot(rng) },
        _ => Op::HeldClose { slot: slot(rng) },
    }
}

const HELD_SLOTS: usize = 3;

/// Descriptors kept open by `Op::Hold`, per mount point.
static HELD: std::sync::Mutex<BTreeMap<(PathBuf, u8), i32>> =
    std::sync::Mutex::new(BTreeMap::new());

fn held(root: &Path, slot: u8) -> Result<i32, String> {
    let h = HELD.lock().unwrap_or_else(|p| p.into_inner());
    h.get(&(root.to_path_buf(), slot))
        .copied()
        .ok_or_else(|| "no descriptor".to_string())
}

/// Closes every descriptor held under ROOT: before it is unmounted.
fn close_held(root: &Path) {
    let mut h = HELD.lock().unwrap_or_else(|p| p.into_inner());
    h.retain(|(r, _), fd| {
        if r == root {
            // SAFETY: the harness opened fd and owns it.
            unsafe { libc::close(*fd) };
            false
        } else {
            true
        }
    });
}

fn data(len: usize, seed: u64) -> Vec<u8> {
    (0..len)
        .map(|i| (seed.rotate_left((i % 64) as u32) as u8) ^ (i as u8))
        .collect()
}

fn cpath(root: &Path, rel: &str) -> CString {
    let p = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn errno() -> String {
    errno_name(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

/// -1 -> "err ENOENT"; otherwise the value.
fn check(r: libc::c_long) -> Result<libc::c_long, String> {
    if r < 0 {
        Err(format!("err {}", errno()))
    } else {
        Ok(r)
    }
}

fn open(root: &Path, rel: &str, flags: i32, mode: u32) -> Result<i32, String> {
    let p = cpath(root, rel);
    // SAFETY: valid path; O_NONBLOCK so a fifo never blocks the harness.
    check(unsafe { libc::open(p.as_ptr(), flags | libc::O_NONBLOCK | libc::O_CLOEXEC, mode) } as _)
        .map(|fd| fd as i32)
}

fn write_all(fd: i32, buf: &[u8], mut off: Option<i64>) -> Result<(), String> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &buf[done..];
        // SAFETY: fd is open and rest is a valid buffer.
        let n = unsafe {
            match off {
                Some(o) => libc::pwrite(fd, rest.as_ptr().cast(), rest.len(), o),
                None => libc::write(fd, rest.as_ptr().cast(), rest.len()),
            }
        };
        let n = check(n as _)? as usize;
        if n == 0 {
            return Err("err short write".into());
        }
        done += n;
        off = off.map(|o| o + n as i64);
    }
    Ok(())
}

fn close(fd: i32) -> Result<(), String> {
    // SAFETY: fd was returned by open and is closed once.
    check(unsafe { libc::close(fd) } as _).map(|_| ())
}

fn write_op(
    root: &Path,
    path: &str,
    flags: i32,
    buf: &[u8],
    off: Option<i64>,
) -> Result<String, String> {
    let fd = crate::open(root, path, flags, 0o644)?;
    let r = write_all(fd, buf, off);
    let c = close(fd);
    r?;
    c?;
    Ok("ok".into())
}

fn stat_desc(root: &Path, rel: &str, follow: bool) -> Result<String, String> {
    let p = cpath(root, rel);
    // SAFETY: zeroed stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid path and out-pointer.
    let r = unsafe {
        if follow {
            libc::stat(p.as_ptr(), &mut st)
        } else {
            libc::lstat(p.as_ptr(), &mut st)
        }
    };
    check(r as _)?;
    Ok(describe_stat(&st))
}

fn describe_stat(st: &libc::stat) -> String {
    let kind = match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => 'd',
        libc::S_IFREG => 'f',
        libc::S_IFLNK => 'l',
        libc::S_IFIFO => 'p',
        libc::S_IFCHR => 'c',
        libc::S_IFSOCK => 's',
        _ => 'b',
    };
    format!(
        "ok {kind} {:o} size={} nlink={} {}:{} blocks>0={} sparse={} rdev={:x}",
        st.st_mode & 0o7777,
        st.st_size,
        st.st_nlink,
        st.st_uid,
        st.st_gid,
        st.st_blocks > 0,
        // Copy-up must keep holes: fewer bytes allocated than the size says.
        kind == 'f' && st.st_blocks * 512 < st.st_size,
        st.st_rdev
    )
}

fn apply(root: &Path, op: &Op) -> String {
    match apply_inner(root, op) {
        Ok(s) => s,
        Err(e) => e,
    }
}

fn apply_inner(root: &Path, op: &Op) -> Result<String, String> {
    use libc::*;
    let ok = |r: c_int| check(r as _).map(|_| "ok".to_string());
    match op {
        Op::Write { path, len, seed } => write_op(
            root,
            path,
            O_WRONLY | O_CREAT | O_TRUNC,
            &data(*len, *seed),
            None,
        ),
        Op::Append { path, len, seed } => write_op(
            root,
            path,
            O_WRONLY | O_CREAT | O_APPEND,
            &data(*len, *seed),
            None,
        ),
        Op::Pwrite {
            path,
            off,
            len,
            seed,
        } => write_op(root, path, O_WRONLY, &data(*len, *seed), Some(*off as i64)),
        Op::Truncate { path, len } => {
            let p = cpath(root, path);
            // SAFETY: valid path.
            ok(unsafe { truncate(p.as_ptr(), *len as i64) })
        }
        Op::Read { path } => {
            let fd = crate::open(root, path, O_RDONLY, 0)?;
            let mut out = Vec::new();
            let mut buf = vec![0u8; 65536];
            let r = loop {
                // SAFETY: fd open, buf valid.
                let n = unsafe { read(fd, buf.as_mut_ptr().cast(), buf.len()) };
                match check(n as _) {
                    Ok(0) => break Ok(()),
                    Ok(n) => out.extend_from_slice(&buf[..n as usize]),
                    Err(e) => break Err(e),
                }
            };
            crate::close(fd)?;
            r?;
            Ok(format!("ok {}", tree::content_summary(&out)))
        }
        Op::CreateExcl { path, mode } => {
            let fd = crate::open(root, path, O_WRONLY | O_CREAT | O_EXCL, mode.0)?;
            crate::close(fd)?;
            stat_desc(root, path, false)
        }
        Op::Unlink { path } => {
            let p = cpath(root, path);
            // SAFETY: valid path.
            ok(unsafe { unlink(p.as_ptr()) })
        }
        Op::Mkdir { path, mode } => {
            let p = cpath(root, path);
            // SAFETY: valid path.
            ok(unsafe { mkdir(p.as_ptr(), mode.0) })?;
            stat_desc(root, path, false)
        }
        Op::Rmdir { path } => {
            let p = cpath(root, path);
            // SAFETY: valid path.
            ok(unsafe { rmdir(p.as_ptr()) })
        }
        Op::Rename { from, to, flags } => {
            let (f, t) = (cpath(root, from), cpath(root, to));
            let fl = match flags {
                RenameFlags::Plain => 0,
                RenameFlags::NoReplace => RENAME_NOREPLACE,
                RenameFlags::Exchange => RENAME_EXCHANGE,
            };
            // SAFETY: valid paths.
            ok(unsafe { renameat2(AT_FDCWD, f.as_ptr(), AT_FDCWD, t.as_ptr(), fl) })
        }
        Op::Link { from, to } => {
            let (f, t) = (cpath(root, from), cpath(root, to));
            // SAFETY: valid paths.
            ok(unsafe { link(f.as_ptr(), t.as_ptr()) })?;
            stat_desc(root, to, false)
        }
        Op::Symlink { target, path } => {
            let (t, p) = (CString::new(target.as_str()).unwrap(), cpath(root, path));
            // SAFETY: valid strings.
            ok(unsafe { symlink(t.as_ptr(), p.as_ptr()) })
        }
        Op::Readlink { path } => {
            let p = cpath(root, path);
            let mut buf = vec![0u8; 4096];
            // SAFETY: valid path and buffer.
            let n =
                check(unsafe { readlink(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) } as _)?;
            Ok(format!(
                "ok {}",
                String::from_utf8_lossy(&buf[..n as usize])
            ))
        }
        Op::Chmod { path, mode } => {
            let p = cpath(root, path);
            // SAFETY: valid path.
            ok(unsafe { chmod(p.as_ptr(), mode.0) })?;
            stat_desc(root, path, true)
        }
        Op::Chown {
            path,
            uid,
            gid,
            nofollow,
        } => {
            let p = cpath(root, path);
            let fl = if *nofollow { AT_SYMLINK_NOFOLLOW } else { 0 };
            // SAFETY: valid path.
            ok(unsafe { fchownat(AT_FDCWD, p.as_ptr(), *uid, *gid, fl) })?;
            stat_desc(root, path, !*nofollow)
        }
        Op::Utimens {
            path,
            atime,
            mtime,
            nofollow,
        } => {
            let p = cpath(root, path);
            let ts = |t: &Option<(i64, i64)>| match t {
                Some((s, ns)) => timespec {
                    tv_sec: *s,
                    tv_nsec: *ns,
                },
                None => timespec {
                    tv_sec: 0,
                    tv_nsec: UTIME_OMIT,
                },
            };
            let times = [ts(atime), ts(mtime)];
            let fl = if *nofollow { AT_SYMLINK_NOFOLLOW } else { 0 };
            // SAFETY: valid path and two timespecs.
            ok(unsafe { utimensat(AT_FDCWD, p.as_ptr(), times.as_ptr(), fl) })?;
            // Explicit times must come back exactly, nanoseconds included.
            let mut st: stat = unsafe { std::mem::zeroed() };
            // SAFETY: valid path and out-pointer.
            let r = unsafe {
                if *nofollow {
                    lstat(p.as_ptr(), &mut st)
                } else {
                    stat(p.as_ptr(), &mut st)
                }
            };
            check(r as _)?;
            match mtime {
                Some(_) => Ok(format!("ok mtime={}.{:09}", st.st_mtime, st.st_mtime_nsec)),
                None => Ok("ok".into()),
            }
        }
        Op::SetXattr {
            path,
            name,
            value,
            flags,
            nofollow,
        } => {
            let (p, n) = (cpath(root, path), CString::new(name.as_str()).unwrap());
            let fl = match flags {
                XattrFlags::Any => 0,
                XattrFlags::Create => XATTR_CREATE,
                XattrFlags::Replace => XATTR_REPLACE,
            };
            // SAFETY: valid strings and value buffer.
            ok(unsafe {
                if *nofollow {
                    lsetxattr(
                        p.as_ptr(),
                        n.as_ptr(),
                        value.as_ptr().cast(),
                        value.len(),
                        fl,
                    )
                } else {
                    setxattr(
                        p.as_ptr(),
                        n.as_ptr(),
                        value.as_ptr().cast(),
                        value.len(),
                        fl,
                    )
                }
            })
        }
        Op::RemoveXattr { path, name } => {
            let (p, n) = (cpath(root, path), CString::new(name.as_str()).unwrap());
            // SAFETY: valid strings.
            ok(unsafe { lremovexattr(p.as_ptr(), n.as_ptr()) })
        }
        Op::GetXattr { path, name } => {
            let (p, n) = (cpath(root, path), CString::new(name.as_str()).unwrap());
            let mut buf = vec![0u8; 4096];
            // SAFETY: valid strings and buffer.
            let len = check(unsafe {
                lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
            } as _)?;
            Ok(format!(
                "ok {}",
                String::from_utf8_lossy(&buf[..len as usize])
            ))
        }
        Op::ListXattr { path } => {
            let p = cpath(root, path);
            let mut buf = vec![0u8; 8192];
            // SAFETY: valid path and buffer.
            let len =
                check(unsafe { llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) } as _)?;
            let mut names: Vec<String> = buf[..len as usize]
                .split(|b| *b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect();
            names.sort();
            Ok(format!("ok {names:?}"))
        }
        Op::Readdir { path } => {
            let p = if path.is_empty() {
                root.to_path_buf()
            } else {
                root.join(path)
            };
            let rd =
                std::fs::read_dir(&p).map_err(|e| format!("err {}", common::io_errno_name(&e)))?;
            let mut names = Vec::new();
            for d in rd {
                let d = d.map_err(|e| format!("err {}", common::io_errno_name(&e)))?;
                let t = d
                    .file_type()
                    .map_err(|e| format!("err {}", common::io_errno_name(&e)))?;
                let k = if t.is_dir() {
                    "/"
                } else if t.is_symlink() {
                    "@"
                } else {
                    ""
                };
                names.push(format!("{}{k}", d.file_name().to_string_lossy()));
            }
            names.sort();
            Ok(format!("ok {names:?}"))
        }
        Op::Lstat { path } => stat_desc(root, path, false),
        Op::Stat { path } => stat_desc(root, path, true),
        Op::Mknod { path, node } => {
            let p = cpath(root, path);
            let (mode, dev) = match node {
                Node::Fifo => (S_IFIFO | 0o644, 0),
                Node::Socket => (S_IFSOCK | 0o600, 0),
                Node::CharDevice => (S_IFCHR | 0o666, makedev(1, 3)),
                Node::Whiteout => (S_IFCHR | 0o600, 0),
            };
            // SAFETY: valid path.
            ok(unsafe { mknod(p.as_ptr(), mode, dev) })?;
            stat_desc(root, path, false)
        }
        Op::Fallocate {
            path,
            off,
            len,
            how,
        } => {
            let fd = crate::open(root, path, O_WRONLY, 0)?;
            let mode = match how {
                Falloc::Allocate => 0,
                Falloc::KeepSize => FALLOC_FL_KEEP_SIZE,
                Falloc::PunchHole => FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
            };
            // SAFETY: fd is open.
            let r = ok(unsafe { fallocate(fd, mode, *off as i64, *len as i64) });
            crate::close(fd)?;
            r?;
            stat_desc(root, path, true)
        }
        Op::Seek { path, off, hole } => {
            let fd = crate::open(root, path, O_RDONLY, 0)?;
            // SEEK_DATA/SEEK_HOLE on a directory: a FUSE mount's directories take the
            // kernel's generic lseek (FUSE sends no request for it), overlayfs has its own;
            // no FUSE file system can match it, so only files are compared.
            // SAFETY: fd is open; st is written by fstat.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            if unsafe { libc::fstat(fd, &mut st) } == 0
                && st.st_mode & libc::S_IFMT == libc::S_IFDIR
            {
                crate::close(fd)?;
                return Ok("directory (not compared)".into());
            }
            let whence = if *hole { SEEK_HOLE } else { SEEK_DATA };
            // SAFETY: fd is open.
            let r = check(unsafe { lseek(fd, *off as i64, whence) } as _);
            crate::close(fd)?;
            Ok(format!("ok {}", r?))
        }
        Op::Access { path, mode } => {
            let p = cpath(root, path);
            // SAFETY: valid path.
            ok(unsafe { access(p.as_ptr(), *mode) })
        }
        Op::Hold { slot, path, write } => {
            let fd = crate::open(root, path, if *write { O_RDWR } else { O_RDONLY }, 0)?;
            let mut h = HELD.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(old) = h.insert((root.to_path_buf(), *slot), fd) {
                // SAFETY: the harness owns the descriptor it replaces.
                unsafe { close(old) };
            }
            Ok("ok".into())
        }
        Op::HeldRead { slot } => {
            let fd = held(root, *slot)?;
            let mut out = Vec::new();
            let mut buf = vec![0u8; 65536];
            loop {
                // SAFETY: fd open, buf valid.
                let n = unsafe { pread(fd, buf.as_mut_ptr().cast(), buf.len(), out.len() as i64) };
                match check(n as _)? {
                    0 => break,
                    n => out.extend_from_slice(&buf[..n as usize]),
                }
            }
            Ok(format!("ok {}", tree::content_summary(&out)))
        }
        Op::HeldWrite {
            slot,
            off,
            len,
            seed,
        } => {
            let fd = held(root, *slot)?;
            write_all(fd, &data(*len, *seed), Some(*off as i64))?;
            Ok("ok".into())
        }
        Op::HeldStat { slot } => {
            let fd = held(root, *slot)?;
            // SAFETY: zeroed stat is a valid out-buffer; fd is open.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            check(unsafe { fstat(fd, &mut st) } as _)?;
            Ok(describe_stat(&st))
        }
        Op::HeldTruncate { slot, len } => {
            let fd = held(root, *slot)?;
            // SAFETY: fd is open.
            ok(unsafe { ftruncate(fd, *len as i64) })
        }
        Op::HeldClose { slot } => {
            let mut h = HELD.lock().unwrap_or_else(|p| p.into_inner());
            match h.remove(&(root.to_path_buf(), *slot)) {
                // SAFETY: the harness owns the descriptor.
                Some(fd) => ok(unsafe { close(fd) }),
                None => Err("no descriptor".into()),
            }
        }
        Op::HeldReaddir { slot } => {
            let fd = held(root, *slot)?;
            // SAFETY: fd is open; lseek to 0 is rewinddir.
            check(unsafe { lseek(fd, 0, SEEK_SET) } as _)?;
            let mut names = Vec::new();
            let mut buf = vec![0u8; 32768];
            loop {
                // SAFETY: fd open, buf valid.
                let n =
                    unsafe { syscall(SYS_getdents64, fd, buf.as_mut_ptr(), buf.len()) as isize };
                let n = check(n as _)? as usize;
                if n == 0 {
                    break;
                }
                let mut off = 0;
                while off < n {
                    // linux_dirent64: ino u64, off i64, reclen u16, type u8, name.
                    let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
                    let name = &buf[off + 19..off + reclen];
                    let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
                    let name = String::from_utf8_lossy(name).into_owned();
                    if name != "." && name != ".." {
                        names.push(name);
                    }
                    off += reclen;
                }
            }
            names.sort();
            Ok(format!("ok {names:?}"))
        }
        Op::OpenTrunc { path } => {
            let fd = crate::open(root, path, O_WRONLY | O_TRUNC, 0)?;
            crate::close(fd)?;
            stat_desc(root, path, true)
        }
    }
}
