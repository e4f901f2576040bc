//! Random operation sequences: a seeded generator and the names it picks from.
//! Every call on `Rng` is part of what a seed means: reordering them changes the
//! sequence a reported seed replays.
use super::held::HELD_SLOTS;
use super::ops::{Falloc, Mode, Node, Op, RenameFlags, XattrFlags};
use crate::common::tree::Tree;

/// Deterministic random numbers (splitmix64): the same seed gives the same sequence.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E3779B97F4A7C15) ^ 0xD1B54A32D192ED03)
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    /// A write length: mostly small, sometimes beyond one 128 KiB FUSE request.
    pub(crate) fn len(&mut self) -> usize {
        match self.below(10) {
            0 => 0,
            1..=6 => self.below(200) as usize,
            7 | 8 => 200 + self.below(8000) as usize,
            _ => 100_000 + self.below(100_000) as usize,
        }
    }
}

/// Names the generator knows: everything the oracle showed at the start, plus what the
/// operations created. Deleted names stay (they make ENOENT cases).
pub(crate) struct Model {
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
    pub(crate) fn from_tree(t: &Tree) -> Model {
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

    pub(crate) fn learn(&mut self, op: &Op) {
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

    pub(crate) fn existing(&self, rng: &mut Rng) -> String {
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

    pub(crate) fn any(&self, rng: &mut Rng) -> String {
        if rng.chance(65) {
            self.existing(rng)
        } else {
            self.fresh(rng)
        }
    }
}

/// One op, chosen from what the model knows. The first draw picks the kind; each group
/// below draws the op's arguments in the order they appear.
pub(crate) fn gen_op(rng: &mut Rng, m: &Model) -> Op {
    match rng.below(126) {
        k @ (0..=28 | 102..=107 | 110) => gen_data_op(k, rng, m),
        k @ (29..=65 | 100..=101) => gen_name_op(k, rng, m),
        k @ (66..=75 | 108..=109) => gen_attr_op(k, rng, m),
        k @ 76..=89 => gen_xattr_op(k, rng, m),
        k @ 90..=99 => gen_lookup_op(k, rng, m),
        k @ 111.. => gen_held_op(k, rng, m),
    }
}

const MODES: [u32; 9] = [
    0o644, 0o600, 0o755, 0o700, 0o640, 0o4755, 0o1777, 0o000, 0o444,
];

/// File contents: writes, truncation, reads, space allocation, holes.
fn gen_data_op(k: u64, rng: &mut Rng, m: &Model) -> Op {
    match k {
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
        110 => Op::OpenTrunc {
            path: m.existing(rng),
        },
        _ => unreachable!("{k} is not a data op"),
    }
}

/// Names: creating, removing, renaming and linking entries of every type.
fn gen_name_op(k: u64, rng: &mut Rng, m: &Model) -> Op {
    match k {
        29..=31 => Op::CreateExcl {
            path: m.any(rng),
            mode: Mode(*rng.pick(&MODES)),
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
        100..=101 => Op::Mknod {
            path: m.any(rng),
            node: *rng.pick(&[Node::Fifo, Node::Socket, Node::CharDevice, Node::Whiteout]),
        },
        _ => unreachable!("{k} is not a name op"),
    }
}

/// Inode attributes: mode, owner, times, and the permission check that reads them.
fn gen_attr_op(k: u64, rng: &mut Rng, m: &Model) -> Op {
    match k {
        66..=69 => Op::Chmod {
            path: m.existing(rng),
            mode: Mode(*rng.pick(&MODES)),
        },
        70..=72 => Op::Chown {
            path: m.existing(rng),
            uid: *rng.pick(&[0, 1000, 65534]),
            gid: *rng.pick(&[0, 1000, 65534]),
            nofollow: rng.chance(50),
        },
        73..=75 => Op::Utimens {
            path: m.existing(rng),
            atime: gen_time(rng),
            mtime: gen_time(rng),
            nofollow: rng.chance(40),
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
        _ => unreachable!("{k} is not an attribute op"),
    }
}

/// A utimensat time: mostly explicit (seconds, nanoseconds), sometimes UTIME_OMIT.
fn gen_time(rng: &mut Rng) -> Option<(i64, i64)> {
    match rng.below(5) {
        0 => None,
        _ => Some((
            900_000_000 + rng.below(400_000_000) as i64,
            rng.below(1_000_000_000) as i64,
        )),
    }
}

/// Extended attributes, including reads of the overlay's own (which must stay hidden).
fn gen_xattr_op(k: u64, rng: &mut Rng, m: &Model) -> Op {
    match k {
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
        _ => unreachable!("{k} is not an xattr op"),
    }
}

/// Lookups that change nothing: directory listings and stat.
fn gen_lookup_op(k: u64, rng: &mut Rng, m: &Model) -> Op {
    match k {
        90..=93 => Op::Readdir {
            path: rng.pick(&m.dirs).clone(),
        },
        94..=97 => Op::Lstat {
            path: m.existing(rng),
        },
        98..=99 => Op::Stat {
            path: m.existing(rng),
        },
        _ => unreachable!("{k} is not a lookup op"),
    }
}

/// Descriptors held open across other ops (see `Op::Hold`).
fn gen_held_op(k: u64, rng: &mut Rng, m: &Model) -> Op {
    match k {
        111..=113 => Op::Hold {
            slot: gen_slot(rng),
            path: m.existing(rng),
            write: rng.chance(50),
        },
        114..=115 => Op::HeldRead {
            slot: gen_slot(rng),
        },
        116..=118 => Op::HeldWrite {
            slot: gen_slot(rng),
            off: rng.below(6000),
            len: 1 + rng.below(3000) as usize,
            seed: rng.next(),
        },
        119..=120 => Op::HeldStat {
            slot: gen_slot(rng),
        },
        121 => Op::HeldTruncate {
            slot: gen_slot(rng),
            len: rng.below(5000),
        },
        122..=123 => Op::HeldReaddir {
            slot: gen_slot(rng),
        },
        _ => Op::HeldClose {
            slot: gen_slot(rng),
        },
    }
}

fn gen_slot(rng: &mut Rng) -> u8 {
    rng.below(HELD_SLOTS as u64) as u8
}
