//! Differential test: the same seeded random sequences of file operations run on a
//! unionctl mount and on kernel overlayfs (redirect_dir=on,index=on) over the same
//! lower layers. Every result and errno must match, and so must the final trees, again
//! after a remount, and when each one mounts the upper + work dir the other wrote.
//! The `_with_rotated_layers` tests run each sequence in rounds: between two rounds each
//! side's upper becomes its own top lower layer under a fresh upper (as image layers
//! stack), so redirects, opaque dirs, whiteouts and origins are also read from lowers.
//!
//! `kernel_vs_kernel_is_deterministic` runs the same harness with kernel overlayfs on both
//! sides: it proves that anything the unionctl test reports is a real difference.
//! Each new kind of difference is shrunk to a short sequence that shows it on fresh mounts.
//! Env: DIFF_SEEDS (number of sequences), DIFF_FIRST (first seed, 1), DIFF_OPS (ops per
//! sequence, or round), DIFF_ROUNDS (rounds of the rotated-layer tests, 3), DIFF_SEED (run
//! one), DIFF_BUDGET_SECS (stop after, 150),
//! DIFF_TRACE (print every op and result; use with --nocapture), DIFF_MINIMIZE_SECS and
//! DIFF_MINIMIZE_TOTAL_SECS (time to shrink one difference, 8, and all of a test's, 30).
//!
//! The modules: `ops` (the operations), `generate` (their seeded random choice),
//! `apply` + `held` + `syscalls` (running one on a mount), `compare` (trees and results),
//! `runner` (one sequence), `shrink` (a difference to a short sequence), `harness` (the
//! subjects, the environment and the loop over seeds), `rotate` (layers between rounds),
//! `views` (the image side's views).
#[path = "differential/apply.rs"]
mod apply;
mod common;
#[path = "differential/compare.rs"]
mod compare;
#[path = "differential/generate.rs"]
mod generate;
#[path = "differential/harness.rs"]
mod harness;
#[path = "differential/held.rs"]
mod held;
#[path = "differential/ops.rs"]
mod ops;
#[path = "differential/rotate.rs"]
mod rotate;
#[path = "differential/runner.rs"]
mod runner;
#[path = "differential/shrink.rs"]
mod shrink;
#[path = "differential/syscalls.rs"]
mod syscalls;
#[path = "differential/views.rs"]
mod views;

use common::layers::Format;
use harness::{Layers, Subject, UNIONCTL, run_all};

const DEFAULT_SEEDS: u64 = 20;
const DEFAULT_OPS: usize = 200;
/// Rounds of DEFAULT_OPS ops in the rotated-layer tests (the layers rotated between them).
const DEFAULT_ROUNDS: usize = 3;
/// Each sequence normally takes well under a second; this bounds a hung subject.
const SEED_LIMIT_SECS: u64 = 30;

/// unionctl --format aufs over the same layers written in aufs format (.wh. files) must
/// behave as kernel overlayfs over the kernel-format layers.
#[test]
fn unionctl_aufs_format_matches_kernel_overlayfs() {
    let failures = run_all(
        Subject::Unionctl {
            write: Format::Aufs,
            lowers: Format::Aufs,
        },
        Layers::Fixed,
    );
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
    let failures = run_all(
        Subject::Unionctl {
            write: Format::Overlay,
            lowers: Format::Aufs,
        },
        Layers::Fixed,
    );
    assert!(
        failures.is_empty(),
        "unionctl over aufs-format lowers differs from kernel overlayfs over kernel-format ones in {} place(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Both sides with `metacopy=on`: metadata-only copy-ups, data copied at the first write,
/// redirects of renamed and linked metacopy files, metacopy hard links in the index.
#[test]
fn unionctl_metacopy_matches_kernel_metacopy() {
    common::mounts::all_mounts_with_metacopy();
    let failures = run_all(UNIONCTL, Layers::Fixed);
    assert!(
        failures.is_empty(),
        "unionctl metacopy=on differs from kernel overlayfs metacopy=on in {} place(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn kernel_vs_kernel_is_deterministic() {
    let failures = run_all(Subject::Kernel, Layers::Fixed);
    assert!(
        failures.is_empty(),
        "kernel overlayfs disagrees with itself, the harness is not deterministic:\n{}",
        failures.join("\n")
    );
}

#[test]
fn unionctl_matches_kernel_overlayfs() {
    let failures = run_all(UNIONCTL, Layers::Fixed);
    assert!(
        failures.is_empty(),
        "unionctl differs from kernel overlayfs in {} place(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The kernel agrees with itself over rotated layers too (see `kernel_vs_kernel_is_deterministic`).
#[test]
fn kernel_vs_kernel_with_rotated_layers_is_deterministic() {
    let failures = run_all(Subject::Kernel, Layers::Rotated);
    assert!(
        failures.is_empty(),
        "kernel overlayfs over rotated layers disagrees with itself, the harness is not deterministic:\n{}",
        failures.join("\n")
    );
}

/// Rounds of ops with the layers rotated between them: each side's upper becomes its own
/// top lower layer, so what unionctl wrote (redirects, opaque dirs, whiteouts, origins,
/// hard links) is read back from lower layers under new changes.
/// Ignored for now (run it with --run-ignored): the differences it still finds all come
/// from which name of a lower hard link a change copies up. The kernel copies up the name
/// the change went through; FUSE passes unionctl only the inode, so it copies up the
/// first name it knows. Within one mount the index hides that (and the uppers are
/// compared without those names), and a rotation aligns the linked names, but the dirs
/// copied up on the way differ: e.g. `Link hl/one var/n3; Utimens hl/three; Mkdir hl/x;
/// Rename var/n3 hl/x/n1; Rotate; Link hl/three b; Lstat hl/x` (kernel: hl/x stays a lower
/// dir, nlink=2; unionctl copies hl/x/n1 up, so hl/x is merged, nlink=1), or an impure
/// mark on the other name's parent dir.
#[test]
#[ignore = "differences from the hard-link name FUSE does not tell (see the doc comment)"]
fn unionctl_matches_kernel_overlayfs_with_rotated_layers() {
    let failures = run_all(UNIONCTL, Layers::Rotated);
    assert!(
        failures.is_empty(),
        "unionctl over rotated layers differs from kernel overlayfs in {} place(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Both sides with `metacopy=on` over rotated layers: metacopy files and their redirects
/// in lower layers, their data in the layers below.
/// Ignored for now, as `unionctl_matches_kernel_overlayfs_with_rotated_layers`.
#[test]
#[ignore = "differences from the hard-link name FUSE does not tell (see unionctl_matches_kernel_overlayfs_with_rotated_layers)"]
fn unionctl_metacopy_matches_kernel_metacopy_with_rotated_layers() {
    common::mounts::all_mounts_with_metacopy();
    let failures = run_all(UNIONCTL, Layers::Rotated);
    assert!(
        failures.is_empty(),
        "unionctl metacopy=on over rotated layers differs from kernel overlayfs metacopy=on in {} place(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
