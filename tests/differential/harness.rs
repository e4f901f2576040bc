//! The harness: what the oracle is compared with, the environment that picks the
//! sequences, and the loop over seeds that gathers and reports the differences.
use super::compare::AUFS;
use super::runner::run_seed;
use super::{DEFAULT_OPS, DEFAULT_ROUNDS, DEFAULT_SEEDS, SEED_LIMIT_SECS};
use crate::common::layers::Format;
use crate::common::mounts::{Kind, Mount, UnionDirs, mount_kernel, mount_kind, mount_unionctl};
use crate::common::{self, Scratch};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The sequences to run: DIFF_SEED alone, else DIFF_SEEDS of them from DIFF_FIRST on.
pub(crate) fn seeds_from_env(default_count: u64) -> Vec<u64> {
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
pub(crate) fn time_budget_secs() -> Option<u64> {
    std::env::var("DIFF_BUDGET_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
}

pub(crate) fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the oracle (kernel overlayfs over kernel-format lowers) is compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Subject {
    Kernel,
    /// unionctl writing its upper in `write` format over lowers in `lowers` format.
    Unionctl {
        write: Format,
        lowers: Format,
    },
}

pub(crate) const UNIONCTL: Subject = Subject::Unionctl {
    write: Format::Overlay,
    lowers: Format::Overlay,
};

impl Subject {
    pub(crate) fn name(self) -> &'static str {
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

    pub(crate) fn kind(self) -> Kind {
        match self {
            Subject::Kernel => Kind::Kernel,
            Subject::Unionctl { .. } => Kind::Unionctl,
        }
    }

    pub(crate) fn lower_format(self) -> Format {
        match self {
            Subject::Kernel => Format::Overlay,
            Subject::Unionctl { lowers, .. } => lowers,
        }
    }

    /// Whether kernel overlayfs can read what this subject wrote over its lowers (and the
    /// reverse).
    pub(crate) fn kernel_format(self) -> bool {
        matches!(self, Subject::Kernel) || matches!(self, UNIONCTL)
    }

    pub(crate) fn mount(self, dirs: &UnionDirs, merged: &Path) -> Result<Mount, String> {
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

/// How many rounds of ops a sequence has: one, or several with the layers rotated between
/// them (each side's upper becomes its own top lower layer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layers {
    Fixed,
    Rotated,
}

impl Layers {
    /// The rounds of a sequence: 1, or DIFF_ROUNDS (DEFAULT_ROUNDS) with rotated layers.
    fn rounds(self) -> usize {
        match self {
            Layers::Fixed => 1,
            Layers::Rotated => env_num("DIFF_ROUNDS", DEFAULT_ROUNDS as u64).max(1) as usize,
        }
    }
}

/// Sequences (seed, ops) in which long runs (`DIFF_SEEDS=600 DIFF_OPS=300`) found a
/// difference that was fixed since: a failed rename's copy-up left the parent's cached
/// mtime stale (20494); a metacopy file's data copy-up moved its mtime unseen (9038); a
/// removed merged dir held open showed no links, overlayfs one (40091, 40569); a handle
/// opened on a lower hard link before its copy-up read the lower data once every name
/// was gone (60724); an unlinked metacopy file held open showed its upper file's blocks,
/// not those of its data (80878, metacopy=on).
const FOUND: [(u64, usize); 6] = [
    (20494, 300),
    (9038, 300),
    (40091, 300),
    (40569, 300),
    (60724, 300),
    (80878, 300),
];

pub(crate) fn run_all(subject: Subject, layers: Layers) -> Vec<String> {
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
    let scratch = Scratch::new(&format!(
        "diff-{}-{rounds_name}",
        subject.name(),
        rounds_name = match layers {
            Layers::Fixed => "fixed",
            Layers::Rotated => "rotated",
        }
    ));
    let lowers = common::layers::standard_lowers(&scratch.mkdir("lowers"));
    let subject_lowers = match subject.lower_format() {
        Format::Aufs => {
            common::layers::standard_lowers_in(&scratch.mkdir("aufs-lowers"), Format::Aufs)
        }
        Format::Overlay => lowers.clone(),
    };
    let ops = env_num("DIFF_OPS", DEFAULT_OPS as u64) as usize;
    let mut runs: Vec<(u64, usize)> = seeds_from_env(DEFAULT_SEEDS)
        .into_iter()
        .map(|s| (s, ops))
        .collect();
    // The default run also replays the sequences long runs once found differences in
    // (with the kernel's format: aufs' rename of a lower dir copies up differently).
    if subject.kernel_format()
        && ["DIFF_SEED", "DIFF_FIRST", "DIFF_SEEDS"]
            .iter()
            .all(|v| std::env::var_os(v).is_none())
    {
        runs.extend(FOUND);
    }
    let rounds = layers.rounds();
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut distinct = BTreeMap::new();
    for (seed, ops) in &runs {
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
            [rounds, *ops],
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
        "differential test, kernel overlayfs vs {}: {} sequences x {rounds} round(s) x {ops} ops{} in {:.1}s, {} difference(s)",
        subject.name(),
        runs.len(),
        if rounds > 1 {
            " (layers rotated between rounds)"
        } else {
            ""
        },
        started.elapsed().as_secs_f64(),
        failures.len()
    ));
    failures
}

/// One side of the comparison: its upper and work dirs and mount point.
pub(crate) struct Side {
    pub(crate) dirs: UnionDirs,
    pub(crate) merged: PathBuf,
}

impl Side {
    pub(crate) fn new(name: &str, lowers: &[PathBuf], base: &Path) -> Side {
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

    /// Rotates the layers as an image commit stacks a container's changes: the upper
    /// becomes the top lower layer, under a fresh empty upper and work dir (named after
    /// ROUND). The old work dir goes: it is no part of a layer (and its index would hold
    /// an extra link to each hard link copied up through it).
    pub(crate) fn rotate(&mut self, round: usize) {
        let root = self.merged.parent().unwrap().to_path_buf();
        let (upper, work) = (
            root.join(format!("upper{round}")),
            root.join(format!("work{round}")),
        );
        std::fs::create_dir_all(&upper).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        let old_work = self.dirs.work.replace(work).unwrap();
        std::fs::remove_dir_all(old_work).unwrap();
        let old = self.dirs.upper.replace(upper).unwrap();
        self.dirs.lowers.insert(0, old);
    }

    pub(crate) fn mount_as(&self, kind: Kind, dirs: &UnionDirs) -> Result<Mount, String> {
        mount_kind(kind, dirs, &self.merged)
    }
}
