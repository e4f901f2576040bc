//! Owner shifting between the layers on disk and what a mount shows, as fuse-overlayfs'
//! `uidmapping=`, `gidmapping=` and `squash_to_*` options do it: one unpacked image can
//! then serve containers with different id maps without a chown pass.
//!
//! A range `DISK:SHOWN:LEN` shows the disk ids `DISK..DISK+LEN` as `SHOWN..SHOWN+LEN`
//! and writes the shown ids back as disk ids. With a mapping given, an id outside every
//! range becomes the kernel's overflow id (65534) in either direction. A squash replaces
//! every shown owner; ids written (chown, a caller creating a file) still go through the
//! mapping. Pure logic: the FUSE adapter applies it at its boundary.

/// One `DISK:SHOWN:LEN` triple.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub disk: u32,
    pub shown: u32,
    pub len: u32,
}

/// The id options of a mount, as given (`-o uidmapping=...,squash_to_root`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMapSpec {
    pub uids: Option<Vec<IdRange>>,
    pub gids: Option<Vec<IdRange>>,
    pub squash_to_root: bool,
    pub squash_to_uid: Option<u32>,
    pub squash_to_gid: Option<u32>,
}

impl IdMapSpec {
    /// Shows every owner as it is on disk.
    pub fn is_identity(&self) -> bool {
        *self == IdMapSpec::default()
    }
}

/// Parses fuse-overlayfs' mapping value: `DISK:SHOWN:LEN` triples, all joined by `:`.
pub fn parse_ranges(v: &str) -> Result<Vec<IdRange>, String> {
    // fuse-overlayfs splits with strtok, which skips empty fields.
    let fields: Vec<&str> = v.split(':').filter(|f| !f.is_empty()).collect();
    if fields.is_empty() || !fields.len().is_multiple_of(3) {
        return Err(format!(
            "invalid mapping '{v}': expected ID:MAPPED-ID:LENGTH triples joined by ':'"
        ));
    }
    let num = |f: &str| {
        f.parse::<u32>()
            .map_err(|_| format!("invalid mapping '{v}': '{f}' is not an id or length"))
    };
    fields
        .chunks(3)
        .map(|t| {
            let r = IdRange {
                disk: num(t[0])?,
                shown: num(t[1])?,
                len: num(t[2])?,
            };
            // A range past the last id would wrap around to low ids (root among them).
            let end = u64::from(r.disk.max(r.shown)) + u64::from(r.len);
            if end > 1 << 32 {
                return Err(format!(
                    "invalid mapping '{v}': {}:{}:{} goes past the last id",
                    r.disk, r.shown, r.len
                ));
            }
            Ok(r)
        })
        .collect()
}

/// One kind of id (uids or gids): its ranges, its squash and its overflow id.
#[derive(Debug, Clone, Default)]
struct Shift {
    ranges: Option<Vec<IdRange>>,
    squash: Option<u32>,
    overflow: u32,
}

impl Shift {
    fn shown(&self, disk: u32) -> u32 {
        if let Some(s) = self.squash {
            return s;
        }
        self.through(disk, |r| (r.disk, r.shown))
    }

    fn disk(&self, shown: u32) -> u32 {
        self.through(shown, |r| (r.shown, r.disk))
    }

    /// ID through the ranges, FROM -> TO of each; fuse-overlayfs keeps the triples in a
    /// list it prepends to, so the last one given wins where ranges overlap.
    fn through(&self, id: u32, ends: impl Fn(&IdRange) -> (u32, u32)) -> u32 {
        let Some(ranges) = &self.ranges else {
            return id;
        };
        ranges
            .iter()
            .rev()
            .find_map(|r| {
                let (from, to) = ends(r);
                let off = (id as u64).checked_sub(from as u64)?;
                (off < r.len as u64).then(|| (to as u64 + off) as u32)
            })
            .unwrap_or(self.overflow)
    }
}

/// The mapping of a mount; the identity when no id option was given.
#[derive(Debug, Clone)]
pub struct IdMap {
    uids: Shift,
    gids: Shift,
    identity: bool,
    squash: bool,
}

impl Default for IdMap {
    fn default() -> Self {
        IdMap::new(&IdMapSpec::default(), (65534, 65534))
    }
}

impl IdMap {
    /// The mapping SPEC asks for; `overflow` is the kernel's (uid, gid) for an unmapped
    /// id (`/proc/sys/kernel/overflow{u,g}id`, 65534 unless changed).
    pub fn new(spec: &IdMapSpec, overflow: (u32, u32)) -> IdMap {
        let root = spec.squash_to_root.then_some(0);
        IdMap {
            uids: Shift {
                ranges: spec.uids.clone(),
                squash: spec.squash_to_uid.or(root),
                overflow: overflow.0,
            },
            gids: Shift {
                ranges: spec.gids.clone(),
                squash: spec.squash_to_gid.or(root),
                overflow: overflow.1,
            },
            identity: spec.is_identity(),
            squash: spec.squash_to_root
                || spec.squash_to_uid.is_some()
                || spec.squash_to_gid.is_some(),
        }
    }

    pub fn is_identity(&self) -> bool {
        self.identity
    }

    /// A squash is set: every shown owner is made up, so fuse-overlayfs ignores a chown
    /// that fails on disk.
    pub fn squashes(&self) -> bool {
        self.squash
    }

    /// The owner a mount shows for the disk owner (UID, GID).
    pub fn shown(&self, uid: u32, gid: u32) -> (u32, u32) {
        if self.identity {
            return (uid, gid);
        }
        (self.uids.shown(uid), self.gids.shown(gid))
    }

    /// The disk uid for a uid given through the mount (chown, a creating caller).
    pub fn disk_uid(&self, uid: u32) -> u32 {
        if self.identity {
            uid
        } else {
            self.uids.disk(uid)
        }
    }

    /// The disk gid for a gid given through the mount.
    pub fn disk_gid(&self, gid: u32) -> u32 {
        if self.identity {
            gid
        } else {
            self.gids.disk(gid)
        }
    }
}

/// The kernel's overflow ids, which an unmapped id becomes (65534 when unreadable).
pub fn kernel_overflow_ids() -> (u32, u32) {
    let read = |f: &str| {
        std::fs::read_to_string(f)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .unwrap_or(65534)
    };
    (
        read("/proc/sys/kernel/overflowuid"),
        read("/proc/sys/kernel/overflowgid"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(spec: IdMapSpec) -> IdMap {
        IdMap::new(&spec, (65534, 65534))
    }

    #[test]
    fn parses_triples_and_refuses_the_rest() {
        assert_eq!(
            parse_ranges("0:1000:1:1:110000:65536").unwrap(),
            vec![
                IdRange {
                    disk: 0,
                    shown: 1000,
                    len: 1
                },
                IdRange {
                    disk: 1,
                    shown: 110000,
                    len: 65536
                },
            ]
        );
        // strtok skips empty fields, as fuse-overlayfs reads them.
        assert_eq!(parse_ranges("0::5:1").unwrap().len(), 1);
        for bad in [
            "",
            "0:1",
            "0:1:2:3",
            "0:x:1",
            "-1:0:1",
            "0:0:4294967296",
            "4294967200:0:1000", // would wrap shown ids 96.. onto disk id 0..
        ] {
            let e = parse_ranges(bad).unwrap_err();
            assert!(e.contains("invalid mapping"), "{bad}: {e}");
        }
    }

    #[test]
    fn shifts_both_ways_and_overflows_outside_the_ranges() {
        let m = map(IdMapSpec {
            uids: Some(parse_ranges("0:1000:1:1:110000:65536").unwrap()),
            gids: Some(parse_ranges("0:2000:10").unwrap()),
            ..Default::default()
        });
        assert_eq!(m.shown(0, 0), (1000, 2000));
        assert_eq!(m.shown(1, 9), (110000, 2009));
        assert_eq!(m.shown(65536, 10), (175535, 65534));
        assert_eq!(m.shown(65537, 10), (65534, 65534));
        assert_eq!(m.disk_uid(1000), 0);
        assert_eq!(m.disk_uid(110005), 6);
        assert_eq!(m.disk_uid(0), 65534);
        assert_eq!(m.disk_gid(2009), 9);
        assert_eq!(m.disk_gid(2010), 65534);
        assert!(!m.squashes());
    }

    #[test]
    fn the_last_overlapping_range_wins() {
        let m = map(IdMapSpec {
            uids: Some(parse_ranges("0:100:10:5:500:10").unwrap()),
            ..Default::default()
        });
        assert_eq!(m.shown(4, 4), (104, 4));
        assert_eq!(m.shown(5, 5), (500, 5));
        assert_eq!(m.disk_uid(105), 5);
    }

    #[test]
    fn squash_shows_one_owner_but_writes_through_the_mapping() {
        let m = map(IdMapSpec {
            squash_to_root: true,
            squash_to_uid: Some(7),
            ..Default::default()
        });
        assert_eq!(m.shown(5, 5), (7, 0));
        assert_eq!(m.disk_uid(9), 9);
        assert_eq!(m.disk_gid(9), 9);
        assert!(m.squashes());
        let m = map(IdMapSpec {
            uids: Some(parse_ranges("0:1000:10").unwrap()),
            squash_to_gid: Some(3),
            ..Default::default()
        });
        assert_eq!(m.shown(2, 2), (1002, 3));
        assert_eq!(m.disk_uid(1003), 3);
        assert_eq!(m.disk_uid(3), 65534);
    }

    #[test]
    fn no_option_is_the_identity() {
        let m = map(IdMapSpec::default());
        assert!(m.is_identity());
        assert_eq!(m.shown(123, 456), (123, 456));
        assert_eq!(m.disk_uid(u32::MAX), u32::MAX);
    }
}
