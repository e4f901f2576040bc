//! Shrinking a difference to a short sequence that still shows it on fresh mounts, for
//! the report: a 200-op sequence is hard to read, three ops are a bug report.
use super::apply::apply;
use super::compare::snap;
use super::harness::{Side, Subject, env_num};
use super::held::close_held;
use super::ops::Op;
use super::rotate::rotate_both;
use crate::common::mounts::{Kind, Mount};
use crate::common::tree;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Time for shrinking each new kind of difference to a short sequence that shows it, and
/// for all of a test's (DIFF_MINIMIZE_SECS and DIFF_MINIMIZE_TOTAL_SECS override them).
fn minimize_secs() -> u64 {
    env_num("DIFF_MINIMIZE_SECS", 8)
}
fn minimize_total_secs() -> u64 {
    env_num("DIFF_MINIMIZE_TOTAL_SECS", 30)
}

/// Shrinks `ops` (whose last op gave `want` = (kernel, subject) results) to a short
/// sequence that still ends in the same two results, replaying each candidate on fresh
/// mounts. Returns the sequence as text for the report.
pub(crate) fn minimize(
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
pub(crate) fn minimize_tree(
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
pub(crate) fn diff_key(line: &str) -> String {
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
    let budget_left = MINIMIZE_SPENT.with(|s| s.get()) < Duration::from_secs(minimize_total_secs());
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
    while !keep.is_empty() && started.elapsed().as_secs() < minimize_secs() {
        let mut removed_any = false;
        let mut at = 0;
        while at < keep.len() && started.elapsed().as_secs() < minimize_secs() {
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

/// Runs `ops` on fresh kernel and subject mounts (in a fresh dir under `base`; at each
/// `Op::Rotate` both sides rotate their layers and mount again), then `check` on the two
/// mount points.
fn replay(
    subject: Subject,
    lowers: [&[PathBuf]; 2],
    base: &Path,
    ops: &[Op],
    check: impl FnOnce(&Path, &Path) -> bool,
) -> bool {
    replay_then(subject, lowers, base, ops, |a, b, mounted| {
        let r = check(&a.merged, &b.merged);
        close_held(&a.merged);
        close_held(&b.merged);
        let _ = (mounted.0.unmount(), mounted.1.unmount());
        r
    })
}

/// `replay`, with `check` on the two sides after they unmounted (their upper dirs).
fn replay_unmounted(
    subject: Subject,
    lowers: [&[PathBuf]; 2],
    base: &Path,
    ops: &[Op],
    check: impl FnOnce(&Side, &Side) -> bool,
) -> bool {
    replay_then(subject, lowers, base, ops, |a, b, mounted| {
        let _ = (snap(&a.merged), snap(&b.merged));
        close_held(&a.merged);
        close_held(&b.merged);
        mounted.0.unmount().is_ok() && mounted.1.unmount().is_ok() && check(a, b)
    })
}

fn replay_then(
    subject: Subject,
    lowers: [&[PathBuf]; 2],
    base: &Path,
    ops: &[Op],
    then: impl FnOnce(&Side, &Side, (&mut Mount, &mut Mount)) -> bool,
) -> bool {
    static ROUND: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = base.join(format!(
        "min{}",
        ROUND.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    let mut a = Side::new("oracle", lowers[0], &dir);
    let mut b = Side::new("subject", lowers[1], &dir);
    let result = (|| {
        let mut ma = a.mount_as(Kind::Kernel, &a.dirs).ok()?;
        let mut mb = subject.mount(&b.dirs, &b.merged).ok()?;
        let _ = (snap(&a.merged), snap(&b.merged));
        let mut rounds = 0;
        for op in ops {
            if let Op::Rotate = op {
                // As the runner ends a round: the trees walked, unmounted, remounted
                // and walked again (a walk lists dirs, which may clean their marks).
                let _ = (snap(&a.merged), snap(&b.merged));
                close_held(&a.merged);
                close_held(&b.merged);
                ma.unmount().ok()?;
                mb.unmount().ok()?;
                ma = a.mount_as(Kind::Kernel, &a.dirs).ok()?;
                mb = subject.mount(&b.dirs, &b.merged).ok()?;
                let _ = (snap(&a.merged), snap(&b.merged));
                ma.unmount().ok()?;
                mb.unmount().ok()?;
                rounds += 1;
                rotate_both(&mut a, &mut b, rounds);
                ma = a.mount_as(Kind::Kernel, &a.dirs).ok()?;
                mb = subject.mount(&b.dirs, &b.merged).ok()?;
                let _ = (snap(&a.merged), snap(&b.merged));
                continue;
            }
            apply(&a.merged, op);
            apply(&b.merged, op);
        }
        Some(then(&a, &b, (&mut ma, &mut mb)))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result.unwrap_or(false)
}

/// Shrinks `ops` to a short sequence after which the two upper dirs still differ at the
/// path of `line` (a line of tree::upper_layout_diff_over).
pub(crate) fn minimize_upper(
    subject: Subject,
    lowers: [&[PathBuf]; 2],
    base: &Path,
    ops: &[Op],
    line: &str,
) -> String {
    let path = line.split(": ").next().unwrap_or_default().to_string();
    let found = shrink(ops, |cand| {
        replay_unmounted(subject, lowers, base, cand, |a, b| {
            let side = |s: &Side| (s.dirs.upper.clone().unwrap(), s.dirs.lowers.clone());
            let ((ua, la), (ub, lb)) = (side(a), side(b));
            tree::upper_layout_diff_over((&ua, &la), (&ub, &lb))
                .iter()
                .any(|l| l.split(": ").next() == Some(path.as_str()))
        })
    });
    describe_shrunk(found)
}
