//! `-o` mount options: parsed strictly so a typo is an error, not a silent no-op.
//! They are the union of the kernel overlayfs options, fuse-overlayfs' and the FUSE
//! mount options, so `unionctl-overlay` can stand in for fuse-overlayfs.
use crate::error::Result;
use fuser::{Config, MountOption, SessionACL};
use std::path::PathBuf;
use std::time::Duration;
use unionctl_union::idmap::{IdMapSpec, parse_ranges};

#[derive(Debug, Clone, Default)]
pub struct MountOptions {
    pub read_only: bool,
    pub allow_other: Option<bool>,
    pub allow_root: bool,
    pub userxattr: bool,
    pub flags: Vec<MountOption>,
    pub fsname: Option<String>,
    pub threads: Option<usize>,
    /// `nopassthrough`: serve every read and write through the daemon even as root.
    pub no_passthrough: bool,
    /// `debug`: log every request and its error result (see `unionctl_union::logging`).
    pub debug: bool,
    /// `lowerdir=A:B` (top first; a backslash escapes a `:`), or one `lowerdir+=DIR` each
    /// (taken as it is: `A:B` is one path).
    pub lowerdir: Vec<PathBuf>,
    /// `upperdir=DIR`.
    pub upperdir: Option<PathBuf>,
    /// `workdir=DIR`.
    pub workdir: Option<PathBuf>,
    /// `volatile`: no fsync reaches the upper layer, and the work dir carries the
    /// kernel's `work/incompat/volatile` marker, so no later mount takes this upper.
    pub volatile: bool,
    /// `fsync=0` (fuse-overlayfs): fsync and fdatasync return at once.
    pub no_fsync: bool,
    /// `auto_unmount`: a daemon that dies leaves no dead mount behind.
    pub auto_unmount: bool,
    /// `timeout=SECS` (fuse-overlayfs): how long the kernel caches names and attributes.
    pub timeout: Option<Duration>,
    /// `static_nlink` (fuse-overlayfs): directories show a link count of 1.
    pub static_nlink: bool,
    /// `noacl` (fuse-overlayfs): the kernel does not enforce POSIX ACLs.
    pub noacl: bool,
    /// `noxattrs=1` (fuse-overlayfs): extended attributes answer EOPNOTSUPP.
    pub noxattrs: bool,
    /// `xino=off`: the kernel then keeps real inode numbers and tells layers apart by
    /// st_dev, which a FUSE mount cannot vary; so inode numbers of layers on more than one
    /// file system stay tagged (unique, as fuse-overlayfs keeps them), and the daemon
    /// logs it.
    pub xino_off: bool,
    /// `redirect_dir=off` or `follow` (the kernel's): renaming a directory with lower
    /// content fails with EXDEV instead of writing a redirect.
    pub no_redirects: bool,
    /// `subtype=NAME`: the file system type shows as `fuse.NAME` (default `unionctl`).
    pub subtype: Option<String>,
    /// SELinux `context=`, `fscontext=`, `defcontext=`, `rootcontext=`, handed to the kernel.
    pub security: Vec<String>,
    /// Options accepted for compatibility that change nothing here (they tune libfuse's
    /// or fuse-overlayfs' own I/O paths); logged by the daemon.
    pub no_effect: Vec<String>,
    /// `xattr_permissions=1|2` (fuse-overlayfs): the upper keeps owners and modes in an
    /// xattr (`security.fuseoverlayfs.override_stat`, `user.containers.override_stat`).
    pub xattr_permissions: u8,
    /// `uidmapping=`, `gidmapping=`, `squash_to_root`, `squash_to_uid=`, `squash_to_gid=`:
    /// owners shifted between the layers and the mount, as fuse-overlayfs does.
    pub ids: IdMapSpec,
    /// `metacopy=on`: a metadata change of a lower regular file copies its metadata only,
    /// in the kernel's format (`metacopy=off`, the default: the whole file).
    pub metacopy: bool,
    /// `datadir+=DIR` (repeatable, top first): data-only lower layers below the others,
    /// read only as the data of lower metacopy files through their absolute redirects.
    pub data_lowers: Vec<PathBuf>,
}

impl MountOptions {
    pub fn parse(opts: &[String]) -> Result<MountOptions> {
        let mut o = MountOptions::default();
        // The kernel refuses `lowerdir+=` after `lowerdir=` (one list, two ways).
        let mut lowerdir_given = false;
        for item in opts.iter().flat_map(|s| split_options(s)) {
            let item = item.as_str();
            match item {
                "ro" => o.read_only = true,
                "rw" => o.read_only = false,
                "allow_other" => o.allow_other = Some(true),
                "allow_root" => o.allow_root = true,
                "default_permissions" => {}
                "userxattr" => o.userxattr = true,
                "passthrough" => o.no_passthrough = false,
                "nopassthrough" => o.no_passthrough = true,
                "debug" => o.debug = true,
                "suid" => o.flags.push(MountOption::Suid),
                "nosuid" => o.flags.push(MountOption::NoSuid),
                "dev" => o.flags.push(MountOption::Dev),
                "nodev" => o.flags.push(MountOption::NoDev),
                "exec" => o.flags.push(MountOption::Exec),
                "noexec" => o.flags.push(MountOption::NoExec),
                "atime" => o.flags.push(MountOption::Atime),
                "noatime" => o.flags.push(MountOption::NoAtime),
                "sync" => o.flags.push(MountOption::Sync),
                "async" => o.flags.push(MountOption::Async),
                "dirsync" => o.flags.push(MountOption::DirSync),
                "diratime" | "nodiratime" | "relatime" | "norelatime" | "strictatime" => {
                    o.flags.push(MountOption::CUSTOM(item.to_string()))
                }
                s if s.starts_with("fsname=") => o.fsname = Some(s[7..].to_string()),
                s if s.starts_with("threads=") => match s[8..].parse::<usize>() {
                    Ok(n) if (1..=64).contains(&n) => o.threads = Some(n),
                    _ => bail!("-o {s}: threads must be a number from 1 to 64"),
                },
                // The layers, as kernel overlayfs and fuse-overlayfs take them.
                s if s.starts_with("lowerdir=") => {
                    lowerdir_given = true;
                    // A later lowerdir= replaces the whole list, as the kernel's does.
                    (o.lowerdir, o.data_lowers) =
                        split_lowerdir(&s[9..]).map_err(|e| invalid!("-o {s}: {e}"))?;
                }
                s if s.starts_with("lowerdir+=") => match &s[10..] {
                    _ if lowerdir_given => {
                        bail!("-o {s}: lowerdir+ and datadir+ cannot follow lowerdir")
                    }
                    _ if !o.data_lowers.is_empty() => {
                        bail!("-o {s}: regular lower layers cannot follow data-only layers")
                    }
                    "" => bail!("-o {s}: empty lower layer path"),
                    // One path each, read as it is (the kernel unescapes only the
                    // lists of lowerdir= and the paths of upperdir= and workdir=).
                    l => o.lowerdir.push(l.into()),
                },
                s if s.starts_with("upperdir=") => o.upperdir = Some(unescape(&s[9..]).into()),
                s if s.starts_with("workdir=") => o.workdir = Some(unescape(&s[8..]).into()),
                "volatile" => o.volatile = true,
                "auto_unmount" => o.auto_unmount = true,
                s if s.starts_with("fsync=") => o.no_fsync = !flag(s)?,
                "static_nlink" => o.static_nlink = true,
                "noacl" => o.noacl = true,
                s if s.starts_with("noxattrs=") => o.noxattrs = flag(s)?,
                s if s.starts_with("timeout=") => o.timeout = Some(seconds(s)?),
                s if s.starts_with("subtype=") => o.subtype = Some(s[8..].to_string()),
                s if ["context=", "fscontext=", "defcontext=", "rootcontext="]
                    .iter()
                    .any(|p| s.starts_with(p)) =>
                {
                    o.security.push(s.to_string())
                }
                // What unionctl always does: the kernel's defaults it keeps.
                "index=on" | "xino=on" | "xino=auto" | "uuid=on" | "nfs_export=off"
                | "verity=off" | "plugins=" => {}
                "xino=off" => o.xino_off = true,
                "redirect_dir=on" => o.no_redirects = false,
                "redirect_dir=off" | "redirect_dir=follow" => o.no_redirects = true,
                // fuse-overlayfs' single-threaded loop, and libfuse's thread count.
                s if s.starts_with("threaded=") => {
                    if !flag(s)? {
                        o.threads = Some(1);
                    }
                }
                s if s.starts_with("max_threads=") => match s[12..].parse::<usize>() {
                    Ok(n) if (1..=64).contains(&n) => o.threads = Some(n),
                    _ => bail!("-o {s}: max_threads must be a number from 1 to 64"),
                },
                // Tuning of libfuse's or fuse-overlayfs' own I/O paths and caches, which
                // unionctl does not use: nothing to honour, nothing changes.
                "kernel_cache" | "splice_read" | "splice_write" | "splice_move" | "max_write"
                | "clone_fd" => o.no_effect.push(item.to_string()),
                s if [
                    "fast_ino=",
                    "writeback=",
                    "max_write=",
                    "max_read=",
                    "max_idle_threads=",
                ]
                .iter()
                .any(|p| s.starts_with(p)) =>
                {
                    o.no_effect.push(item.to_string())
                }
                s if s.starts_with("redirect_dir=") => bail!(
                    "-o {s}: not supported: unionctl always follows redirects (on, follow or off)"
                ),
                s if s.starts_with("index=") => bail!(
                    "-o {s}: not supported: unionctl always keeps the hard-link index (index=on)"
                ),
                s if s.starts_with("plugins=") => {
                    bail!("-o {s}: not supported: unionctl loads no fuse-overlayfs plugins")
                }
                s if s.starts_with("xattr_permissions=") => match &s[18..] {
                    "0" => o.xattr_permissions = 0,
                    "1" => o.xattr_permissions = 1,
                    "2" => o.xattr_permissions = 2,
                    _ => bail!("-o {s}: want 0, 1 or 2"),
                },
                "ino32_t" => bail!("-o ino32_t: not supported: inode numbers are 64-bit"),
                "squash_to_root" => o.ids.squash_to_root = true,
                "metacopy=on" => o.metacopy = true,
                "metacopy=off" => o.metacopy = false,
                s if s.starts_with("datadir+=") => match &s[9..] {
                    _ if lowerdir_given => {
                        bail!("-o {s}: lowerdir+ and datadir+ cannot follow lowerdir")
                    }
                    "" => bail!("-o {s}: a data-only lower layer needs a path"),
                    d => o.data_lowers.push(d.into()),
                },
                s if s.starts_with("uidmapping=") => {
                    o.ids.uids = Some(parse_ranges(&s[11..]).map_err(|e| invalid!("-o {s}: {e}"))?)
                }
                s if s.starts_with("gidmapping=") => {
                    o.ids.gids = Some(parse_ranges(&s[11..]).map_err(|e| invalid!("-o {s}: {e}"))?)
                }
                s if s.starts_with("squash_to_uid=") => o.ids.squash_to_uid = Some(id_value(s)?),
                s if s.starts_with("squash_to_gid=") => o.ids.squash_to_gid = Some(id_value(s)?),
                s => bail!("-o {s}: unknown mount option"),
            }
        }
        Ok(o)
    }

    pub fn fuser_config(&self, read_only: bool) -> Config {
        let mut c = Config::default();
        let mut m = vec![
            MountOption::FSName(self.fsname.clone().unwrap_or_else(|| "unionctl".into())),
            MountOption::Subtype(self.subtype.clone().unwrap_or_else(|| "unionctl".into())),
            MountOption::DefaultPermissions,
        ];
        if read_only {
            m.push(MountOption::RO);
        }
        // As root the union serves every user, as overlayfs does; rootless only on request.
        let root = nix::unistd::geteuid().is_root() && crate::sys::in_initial_userns();
        let all = self.allow_other.unwrap_or(root);
        let is_dev = self
            .flags
            .iter()
            .any(|f| matches!(f, MountOption::NoDev | MountOption::Dev));
        m.extend(self.flags.iter().cloned());
        m.extend(self.security.iter().cloned().map(MountOption::CUSTOM));
        if root && !is_dev {
            m.push(MountOption::Dev);
            m.push(MountOption::Suid);
        }
        c.mount_options = m;
        c.acl = if all {
            SessionACL::All
        } else if self.allow_root {
            SessionACL::RootAndOwner
        } else {
            SessionACL::Owner
        };
        // One serving thread per core, at least two: one takes the requests, the others
        // serve when it is busy (see `workers`).
        let cores = usable_cpus();
        c.n_threads = Some(self.threads.unwrap_or(cores.clamp(2, 8)));
        // One descriptor for all threads: a reply spliced to the device (adapter
        // `splice`) must go to the descriptor its request came from.
        c.clone_fd = false;
        c
    }
}

/// The CPUs this process may run on. Not available_parallelism: that also reads the
/// cgroup's CPU quota (four files opened on every mount), which does not bound how many
/// requests the kernel sends at once.
fn usable_cpus() -> usize {
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    match unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) } {
        0 => (unsafe { libc::CPU_COUNT(&set) }) as usize,
        // More CPUs than a cpu_set_t holds (1024).
        _ => std::thread::available_parallelism().map_or(2, |n| n.get()),
    }
}

/// Splits one `-o` argument at its commas: `\,` is a comma inside a value. Other
/// backslash escapes stay for the path options, which read them as the kernel does
/// (`lowerdir=A\:B` is one layer); empty items are dropped.
pub fn split_options(s: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(',') => cur.push(','),
                next => {
                    cur.push('\\');
                    cur.extend(next);
                }
            },
            ',' => items.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    items.push(cur);
    items.retain(|i| !i.is_empty());
    items
}

/// `--lower A:B`: the lower layers, top first, read as `lowerdir=` is (`\\:` is a colon in
/// a path); data-only layers (`::`) are given with `-o lowerdir=` or `datadir+=`.
pub fn lower_list(s: &str) -> Result<Vec<PathBuf>> {
    let (lowers, data) = split_lowerdir(s).map_err(|e| invalid!("--lower {s:?}: {e}"))?;
    if !data.is_empty() {
        bail!("--lower {s:?}: data-only layers ('::') go in -o lowerdir=");
    }
    Ok(lowers)
}

/// `lowerdir=` split into the lower layers and the data-only ones, as the kernel reads
/// it: `:` between layers, `::` before each data-only layer (`A:B::DATA1::DATA2`), a
/// backslash escaping the next character.
fn split_lowerdir(s: &str) -> std::result::Result<(Vec<PathBuf>, Vec<PathBuf>), String> {
    let (mut lowers, mut data) = (Vec::new(), Vec::new());
    let mut cur = String::new();
    // Whether the layer being read follows a `::`.
    let mut is_data = false;
    let mut chars = s.chars().peekable();
    loop {
        let c = chars.next();
        if c == Some('\\') {
            cur.extend(chars.next());
            continue;
        }
        if c.is_some_and(|c| c != ':') {
            cur.push(c.unwrap_or_default());
            continue;
        }
        // The end of a layer: at a `:`, a `::` or the end of the string.
        if cur.is_empty() {
            return Err("empty lower layer path".into());
        }
        let path = PathBuf::from(std::mem::take(&mut cur));
        match is_data {
            true => data.push(path),
            false if !data.is_empty() => {
                return Err("regular lower layers cannot follow data-only layers".into());
            }
            false => lowers.push(path),
        }
        if c.is_none() {
            break;
        }
        is_data = chars.next_if_eq(&':').is_some();
        if chars.peek() == Some(&':') {
            return Err("only single ':' or double '::' separators are allowed".into());
        }
        if !is_data && !data.is_empty() {
            return Err("regular lower layers cannot follow data-only layers".into());
        }
    }
    Ok((lowers, data))
}

/// A path with its backslash escapes removed.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

/// `NAME=0` or `NAME=1` (fuse-overlayfs reads any number; non-zero is on).
fn flag(item: &str) -> Result<bool> {
    let (_, v) = item.split_once('=').unwrap_or((item, ""));
    match v.parse::<i64>() {
        Ok(n) => Ok(n != 0),
        Err(_) => bail!("-o {item}: want a number (0 or 1)"),
    }
}

/// `timeout=SECS`, a non-negative number of seconds (fractions allowed).
fn seconds(item: &str) -> Result<Duration> {
    let v = &item[item.find('=').map_or(0, |i| i + 1)..];
    match v.parse::<f64>() {
        Ok(s) if s.is_finite() && (0.0..=1e9).contains(&s) => Ok(Duration::from_secs_f64(s)),
        _ => bail!("-o {item}: want a number of seconds from 0 to 1000000000"),
    }
}

/// The id of a `NAME=ID` option.
fn id_value(s: &str) -> Result<u32> {
    let (_, v) = s.split_once('=').unwrap_or((s, ""));
    v.parse::<u32>()
        .map_err(|_| invalid!("-o {s}: '{v}' is not a user or group id"))
}

/// mount(2) flags and data for mounting the FUSE connection on `fd` ourselves, from
/// the same options fuser would use (its Config), so both paths mount alike.
pub fn kernel_mount_args(
    config: &Config,
    fd: i32,
    rootmode: u32,
) -> (nix::mount::MsFlags, String, String) {
    use nix::mount::MsFlags as F;
    let mut flags = F::MS_NOSUID | F::MS_NODEV;
    let mut source = "unionctl".to_string();
    let mut data = format!(
        "fd={fd},rootmode={rootmode:o},user_id={},group_id={}",
        nix::unistd::geteuid(),
        nix::unistd::getegid()
    );
    for o in &config.mount_options {
        match o {
            MountOption::FSName(n) => source = n.clone(),
            MountOption::DefaultPermissions => data.push_str(",default_permissions"),
            MountOption::Dev => flags.remove(F::MS_NODEV),
            MountOption::NoDev => flags.insert(F::MS_NODEV),
            MountOption::Suid => flags.remove(F::MS_NOSUID),
            MountOption::NoSuid => flags.insert(F::MS_NOSUID),
            MountOption::RO => flags.insert(F::MS_RDONLY),
            MountOption::NoExec => flags.insert(F::MS_NOEXEC),
            MountOption::NoAtime => flags.insert(F::MS_NOATIME),
            MountOption::Sync => flags.insert(F::MS_SYNCHRONOUS),
            MountOption::DirSync => flags.insert(F::MS_DIRSYNC),
            MountOption::CUSTOM(c) => match c.as_str() {
                "nodiratime" => flags.insert(F::MS_NODIRATIME),
                "diratime" => flags.remove(F::MS_NODIRATIME),
                "relatime" => flags.insert(F::MS_RELATIME),
                "norelatime" => flags.remove(F::MS_RELATIME),
                "strictatime" => flags.insert(F::MS_STRICTATIME),
                // SELinux labels: the kernel's LSM reads them from the mount data.
                _ => {
                    data.push(',');
                    data.push_str(c);
                }
            },
            _ => {}
        }
    }
    if config.acl != SessionACL::Owner {
        data.push_str(",allow_other");
    }
    (flags, source, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_and_rejects_unknown() {
        let o = MountOptions::parse(&["ro,allow_other".into(), "noatime".into()]).unwrap();
        assert!(o.read_only);
        assert_eq!(o.allow_other, Some(true));
        assert_eq!(o.flags, vec![MountOption::NoAtime]);
        let e = MountOptions::parse(&["bogus".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus") && e.contains("unknown"), "{e}");
        assert!(MountOptions::parse(&["threads=0".into()]).is_err());
    }

    #[test]
    fn layers_and_escapes() {
        // One backslash escapes a colon, as the kernel reads lowerdir=; `\,` a comma.
        let o = MountOptions::parse(&[r"lowerdir=/a\:b:/c,upperdir=/u\,v\:w".into()]).unwrap();
        assert_eq!(o.lowerdir, [PathBuf::from("/a:b"), PathBuf::from("/c")]);
        assert_eq!(o.upperdir, Some(PathBuf::from("/u,v:w")));
        let o = MountOptions::parse(&[r"lowerdir=/a\\b:/c\,d".into()]).unwrap();
        assert_eq!(o.lowerdir, [PathBuf::from(r"/a\b"), PathBuf::from("/c,d")]);
        let o = MountOptions::parse(&["lowerdir+=/a,lowerdir+=/b:c,,volatile".into()]).unwrap();
        assert_eq!(o.lowerdir, [PathBuf::from("/a"), PathBuf::from("/b:c")]);
        assert!(o.volatile);
        // lowerdir+= and datadir+= take their path as it is, backslashes too.
        let o = MountOptions::parse(&[r"lowerdir+=/a\:b,datadir+=/d\e\,f".into()]).unwrap();
        assert_eq!(o.lowerdir, [PathBuf::from(r"/a\:b")]);
        assert_eq!(o.data_lowers, [PathBuf::from(r"/d\e,f")]);
        let e = MountOptions::parse(&["lowerdir=/a,lowerdir+=/b".into()]).unwrap_err();
        assert!(e.to_string().contains("cannot follow lowerdir"), "{e}");
        let o = MountOptions::parse(&[r"lowerdir=/a:/b::/d\:1::/e".into()]).unwrap();
        assert_eq!(o.lowerdir, [PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(o.data_lowers, [PathBuf::from("/d:1"), PathBuf::from("/e")]);
        for bad in [
            "lowerdir=/a::/d:/b",
            "lowerdir=/a:::/d",
            "lowerdir=::/d",
            "lowerdir=/a::",
            "lowerdir=/a:",
            "lowerdir=/a,datadir+=/d",
            "lowerdir+=/a,datadir+=/d,lowerdir+=/b",
        ] {
            let e = MountOptions::parse(&[bad.into()]).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("-o {}", bad.rsplit(',').next().unwrap())),
                "{e}"
            );
        }
        let o = MountOptions::parse(&["fsync=0,timeout=0.5,threaded=0,redirect_dir=off".into()])
            .unwrap();
        assert!(o.no_fsync && o.no_redirects);
        assert_eq!(o.timeout, Some(Duration::from_millis(500)));
        assert_eq!(o.threads, Some(1));
    }

    #[test]
    fn parses_metacopy_and_data_only_layers() {
        let o = MountOptions::parse(&["metacopy=on,datadir+=/d1,datadir+=/d2".into()]).unwrap();
        assert!(o.metacopy);
        assert_eq!(
            o.data_lowers,
            vec![std::path::PathBuf::from("/d1"), "/d2".into()]
        );
        assert!(
            !MountOptions::parse(&["metacopy=on,metacopy=off".into()])
                .unwrap()
                .metacopy
        );
        for bad in ["metacopy=yes", "datadir+="] {
            assert!(MountOptions::parse(&[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_id_mapping_and_squash() {
        let o = MountOptions::parse(&[
            "uidmapping=0:1000:1:1:100000:65536,gidmapping=0:1000:1".into(),
            "squash_to_root,squash_to_uid=7,squash_to_gid=8".into(),
        ])
        .unwrap();
        assert_eq!(o.ids.uids.as_ref().map(|r| r.len()), Some(2));
        assert_eq!(o.ids.gids.as_ref().map(|r| r[0].shown), Some(1000));
        assert!(o.ids.squash_to_root);
        assert_eq!(
            (o.ids.squash_to_uid, o.ids.squash_to_gid),
            (Some(7), Some(8))
        );
        for bad in [
            "uidmapping=0:1000",
            "gidmapping=a:b:c",
            "squash_to_uid=-1",
            "squash_to_gid=",
        ] {
            let e = MountOptions::parse(&[bad.into()]).unwrap_err().to_string();
            assert!(e.starts_with(&format!("-o {bad}: ")), "{e}");
        }
    }
}
