//! One sequence, in phases: the ops in lockstep, the trees after them, after a remount,
//! and each side mounting the upper + work dir the other wrote. With rotated layers the
//! sequence has several rounds of ops: after each round's remount, each side's upper
//! becomes its own top lower layer under a fresh upper, and the next round goes on from
//! the same seeded ops over that stack.
use super::apply::apply;
use super::compare::{
    aufs_skips, first_word, push_diff, push_set_diff, relax_aufs, same_ino, snap,
};
use super::generate::{Model, Rng, gen_op};
use super::harness::{Side, Subject};
use super::held::close_held;
use super::ops::Op;
use super::rotate::rotate_both;
use super::shrink::{diff_key, minimize, minimize_tree, minimize_upper};
use crate::common::mounts::{Kind, Mount};
use crate::common::tree::{self, Tree};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Distinct differences across a test's sequences: signature -> (count, first report).
pub(crate) type Distinct = BTreeMap<String, (usize, String)>;

/// Runs one sequence of ROUNDS rounds of N_OPS ops (the layers rotated between rounds);
/// returns the differences found (empty when both sides agree).
pub(crate) fn run_seed(
    seed: u64,
    [rounds, n_ops]: [usize; 2],
    subject: Subject,
    lowers: [&[PathBuf]; 2],
    base: &Path,
    distinct: &mut Distinct,
) -> Vec<String> {
    let mut run = SeedRun {
        seed,
        subject,
        lowers,
        base,
        oracle: Side::new("oracle", lowers[0], base),
        test: Side::new("subject", lowers[1], base),
        history: Vec::new(),
        fails: Vec::new(),
    };
    // None: a mount or unmount failed, the rest of the sequence cannot run.
    let _ = run.run(rounds, n_ops, distinct);
    run.fails
}

/// One sequence's state: both sides and the differences found so far.
struct SeedRun<'a> {
    seed: u64,
    subject: Subject,
    lowers: [&'a [PathBuf]; 2],
    base: &'a Path,
    oracle: Side,
    test: Side,
    /// The ops run so far, with an `Op::Rotate` where the layers were rotated: what a
    /// difference is shrunk from.
    history: Vec<Op>,
    fails: Vec<String>,
}

/// The trees after a remount, for the next rotation and the cross mounts.
struct Remounted {
    oracle: Tree,
    subject: Tree,
    /// Entries whose d_ino is not their st_ino, on the kernel's own mount.
    kernel_d_ino: BTreeSet<String>,
}

impl SeedRun<'_> {
    fn run(&mut self, rounds: usize, n_ops: usize, distinct: &mut Distinct) -> Option<()> {
        let mut rng = Rng::new(self.seed);
        let mut model: Option<Model> = None;
        let mut remounted: Option<Remounted> = None;
        for round in 0..rounds {
            if round > 0 {
                rotate_both(&mut self.oracle, &mut self.test, round);
                self.history.push(Op::Rotate);
            }
            let (r, diverged) = self.run_round(
                round,
                &mut rng,
                &mut model,
                remounted.as_ref(),
                n_ops,
                distinct,
            )?;
            remounted = Some(r);
            // From a change that went differently on, the trees differ by construction.
            if diverged {
                break;
            }
        }
        if self.subject.kernel_format() {
            self.check_cross_mounts(remounted.as_ref()?);
        }
        Some(())
    }

    /// One round: mount (over the rotated layers after the first), the ops, the trees
    /// after them, unmount, the uppers, a remount. Returns the remounted trees and whether
    /// a change went differently.
    fn run_round(
        &mut self,
        round: usize,
        rng: &mut Rng,
        model: &mut Option<Model>,
        before: Option<&Remounted>,
        n_ops: usize,
        distinct: &mut Distinct,
    ) -> Option<(Remounted, bool)> {
        let sname = self.subject.name();
        let what = match round {
            0 => format!("mount {sname}"),
            _ => format!("mount {sname} over its rotated layers (round {round})"),
        };
        let (ma, mb) = self.mount_both("kernel overlayfs mount failed", &what)?;
        let a0 = snap(&self.oracle.merged);
        let b0 = snap(&self.test.merged);
        match before {
            None => self.push_diff("initial merged view", "kernel", &a0, sname, &b0),
            Some(r) => self.check_rotation(round, r, [&a0, &b0]),
        }
        let model = model.get_or_insert_with(|| Model::from_tree(&a0));
        let diverged = self.run_ops(rng, model, n_ops, distinct);
        let a1 = snap(&self.oracle.merged);
        let b1 = snap(&self.test.merged);
        if !diverged {
            self.compare_after_ops([&a0, &b0], [&a1, &b1], distinct);
        }

        close_held(&self.oracle.merged);
        close_held(&self.test.merged);
        self.unmount_both(ma, mb)?;
        if !diverged && self.subject.kernel_format() {
            self.compare_uppers(round, distinct);
        }
        Some((self.check_remount([&a1, &b1], diverged)?, diverged))
    }

    /// The merged view over the rotated layers: the same on both sides, and the same paths
    /// keep their st_ino. (Unlike a remount, a rotation may change the kernel's own view:
    /// the link count of a hard link copied up apart from its lower names, so the subject's
    /// own before/after is not compared.)
    fn check_rotation(&mut self, round: usize, r: &Remounted, [a0, b0]: [&Tree; 2]) {
        let sname = self.subject.name();
        self.push_diff(
            &format!("tree after rotating the layers (round {round})"),
            "kernel",
            a0,
            sname,
            b0,
        );
        push_set_diff(
            &mut self.fails,
            self.seed,
            &format!("paths whose st_ino changed across the rotation (round {round})"),
            &tree::ino_changes(&r.oracle, a0)
                .into_iter()
                .map(first_word)
                .collect(),
            &tree::ino_changes(&r.subject, b0)
                .into_iter()
                .map(first_word)
                .collect(),
        );
    }

    /// The ops, in lockstep; paths are chosen from what the oracle has seen. Returns
    /// whether a change went differently (from there on the trees differ by construction).
    fn run_ops(
        &mut self,
        rng: &mut Rng,
        model: &mut Model,
        n_ops: usize,
        distinct: &mut Distinct,
    ) -> bool {
        let seed = self.seed;
        let trace = std::env::var_os("DIFF_TRACE").is_some();
        let mut oks = 0;
        for _ in 0..n_ops {
            let op = gen_op(rng, model);
            if aufs_skips(self.subject, &op) {
                continue;
            }
            let i = self.history.len();
            let ra = apply(&self.oracle.merged, &op);
            let rb = apply(&self.test.merged, &op);
            let (ra, rb) = relax_aufs(self.subject, ra, rb);
            self.history.push(op.clone());
            if ra != rb {
                self.record_op_difference(i, &op, (&ra, &rb), distinct);
                // After a change went differently, later results would only echo it.
                if op.changes_state() {
                    return true;
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
        false
    }

    /// Reports op I (of the history, rotations counted) and its two results; a new kind of
    /// difference is shrunk first.
    fn record_op_difference(
        &mut self,
        i: usize,
        op: &Op,
        (ra, rb): (&str, &str),
        distinct: &mut Distinct,
    ) {
        let (seed, sname) = (self.seed, self.subject.name());
        let variant = format!("{op:?}")
            .split([' ', '{'])
            .next()
            .unwrap_or_default()
            .to_string();
        let sig = format!("{variant}: kernel {ra} | {sname} {rb}");
        if !distinct.contains_key(&sig) {
            let repro = minimize(
                self.subject,
                self.lowers,
                self.base,
                &self.history,
                (ra, rb),
            );
            distinct.insert(
                sig.clone(),
                (0, format!("seed {seed} op {i}: {op:?}{repro}")),
            );
        }
        distinct.get_mut(&sig).unwrap().0 += 1;
        self.fails.push(format!(
            "seed {seed} op {i}: {op:?}\n    kernel:   {ra}\n    {sname:<9} {rb}"
        ));
    }

    /// The trees after the ops, and which paths kept their st_ino through them.
    fn compare_after_ops(
        &mut self,
        [a0, b0]: [&Tree; 2],
        [a1, b1]: [&Tree; 2],
        distinct: &mut Distinct,
    ) {
        let seed = self.seed;
        self.push_diff("tree after the ops", "kernel", a1, self.subject.name(), b1);
        // Shrink the first few kinds of tree difference to short sequences too.
        let first = tree::diff("kernel", a1, "subject", b1, 1).pop();
        if let Some(line) = first.filter(|_| distinct.len() < 12) {
            let sig = format!("tree after the ops: {}", diff_key(&line));
            if !distinct.contains_key(&sig) {
                let repro =
                    minimize_tree(self.subject, self.lowers, self.base, &self.history, &line);
                distinct.insert(sig.clone(), (0, format!("seed {seed}: {line}{repro}")));
            }
            distinct.get_mut(&sig).unwrap().0 += 1;
        }
        push_set_diff(
            &mut self.fails,
            seed,
            "paths whose st_ino stayed the same through the ops (copy-up keeps st_ino)",
            &same_ino(a0, a1),
            &same_ino(b0, b1),
        );
    }

    /// The same changes leave the same upper dir: objects, types, overlay xattrs (origins
    /// as the lower objects they name: after a rotation each side's lowers are its own).
    fn compare_uppers(&mut self, round: usize, distinct: &mut Distinct) {
        let side = |s: &Side| (s.dirs.upper.clone().unwrap(), s.dirs.lowers.clone());
        let ((ua, la), (ub, lb)) = (side(&self.oracle), side(&self.test));
        let diffs = tree::upper_layout_diff_over((&ua, &la), (&ub, &lb));
        // Shrink the first few kinds of upper difference to short sequences too.
        if let Some(line) = diffs.first().filter(|_| distinct.len() < 12) {
            let sig = format!("upper dir: {}", line.split(": ").next().unwrap_or_default());
            if !distinct.contains_key(&sig) {
                let repro =
                    minimize_upper(self.subject, self.lowers, self.base, &self.history, line);
                let first = format!("seed {} (round {round}): {line}{repro}", self.seed);
                distinct.insert(sig.clone(), (0, first));
            }
            distinct.get_mut(&sig).unwrap().0 += 1;
        }
        for d in diffs.into_iter().take(5) {
            self.fails.push(format!(
                "seed {}: upper dir (round {round}): {d}",
                self.seed
            ));
        }
    }

    /// Remounts each side on its own upper: same tree, same st_ino.
    fn check_remount(&mut self, [a1, b1]: [&Tree; 2], diverged: bool) -> Option<Remounted> {
        let sname = self.subject.name();
        let what = format!("remount {sname} on its own upper");
        let (ma, mb) = self.mount_both("kernel remount", &what)?;
        let a2 = snap(&self.oracle.merged);
        let b2 = snap(&self.test.merged);
        let kernel_d_ino: BTreeSet<String> = tree::d_ino_mismatches(&self.oracle.merged)
            .into_iter()
            .map(first_word)
            .collect();
        if !diverged {
            self.push_diff("tree after remount", "kernel", &a2, sname, &b2);
        }
        self.push_diff(
            "own tree before/after remount",
            &format!("{sname}-before"),
            b1,
            &format!("{sname}-after"),
            &b2,
        );
        push_set_diff(
            &mut self.fails,
            self.seed,
            "paths whose st_ino changed across remount",
            &tree::ino_changes(a1, &a2)
                .into_iter()
                .map(first_word)
                .collect(),
            &tree::ino_changes(b1, &b2)
                .into_iter()
                .map(first_word)
                .collect(),
        );
        self.unmount_both(ma, mb)?;
        Some(Remounted {
            oracle: a2,
            subject: b2,
            kernel_d_ino,
        })
    }

    /// Cross: kernel reads what the subject wrote; the subject reads what the kernel wrote.
    fn check_cross_mounts(&mut self, r: &Remounted) {
        let (seed, sname) = (self.seed, self.subject.name());
        match self.test.mount_as(Kind::Kernel, &self.test.dirs) {
            Ok(mut m) => {
                let k_of_b = snap(&self.test.merged);
                self.push_diff(
                    &format!("kernel overlayfs over {sname}'s upper+work"),
                    &format!("{sname}-own"),
                    &r.subject,
                    &format!("kernel-on-{sname}-upper"),
                    &k_of_b,
                );
                push_set_diff(
                    &mut self.fails,
                    seed,
                    "entries whose d_ino is not their st_ino",
                    &r.kernel_d_ino,
                    &tree::d_ino_mismatches(&self.test.merged)
                        .into_iter()
                        .map(first_word)
                        .collect(),
                );
                // A subject daemon that exits late may have unmounted this mount under us.
                if let Err(e) = m.unmount() {
                    self.fails.push(format!(
                        "seed {seed}: kernel mount over {sname}'s upper vanished or failed to unmount ({e}); \
                         did a late-exiting {sname} daemon unmount it?"
                    ));
                }
            }
            Err(e) => self.fails.push(format!(
                "seed {seed}: kernel overlayfs cannot mount {sname}'s upper+work: {e}"
            )),
        }
        match self.oracle.mount_as(self.subject.kind(), &self.oracle.dirs) {
            Ok(mut m) => {
                let b_of_a = snap(&self.oracle.merged);
                self.push_diff(
                    &format!("{sname} over kernel's upper+work"),
                    "kernel-own",
                    &r.oracle,
                    &format!("{sname}-on-kernel-upper"),
                    &b_of_a,
                );
                if let Err(e) = m.unmount() {
                    self.fails.push(format!("seed {seed}: {e}"));
                }
            }
            Err(e) => self.fails.push(format!(
                "seed {seed}: {sname} cannot mount the kernel's upper+work: {e}"
            )),
        }
    }

    /// Mounts the oracle (a failure is the harness's: panic), then the subject (a failure
    /// is reported as SUBJECT_WHAT, and the sequence ends).
    fn mount_both(&mut self, kernel_what: &str, subject_what: &str) -> Option<(Mount, Mount)> {
        let seed = self.seed;
        let ma = match self.oracle.mount_as(Kind::Kernel, &self.oracle.dirs) {
            Ok(m) => m,
            Err(e) => panic!("seed {seed}: {kernel_what}: {e}"),
        };
        match self.subject.mount(&self.test.dirs, &self.test.merged) {
            Ok(mb) => Some((ma, mb)),
            Err(e) => {
                self.fails.push(format!("seed {seed}: {subject_what}: {e}"));
                None
            }
        }
    }

    /// Unmounts both; a subject that fails to unmount ends the sequence.
    fn unmount_both(&mut self, mut ma: Mount, mut mb: Mount) -> Option<()> {
        let seed = self.seed;
        ma.unmount().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        if let Err(e) = mb.unmount() {
            self.fails.push(format!("seed {seed}: {e}"));
            return None;
        }
        Some(())
    }

    fn push_diff(&mut self, what: &str, an: &str, a: &Tree, bn: &str, b: &Tree) {
        push_diff(&mut self.fails, self.seed, what, an, a, bn, b);
    }
}
