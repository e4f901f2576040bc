//! `-o` mount options: parsed strictly so a typo is an error, not a silent no-op.
use crate::error::Result;
use fuser::{Config, MountOption, SessionACL};
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
    /// `uidmapping=`, `gidmapping=`, `squash_to_root`, `squash_to_uid=`, `squash_to_gid=`:
    /// owners shifted between the layers and the mount, as fuse-overlayfs does.
    pub ids: IdMapSpec,
    /// `metacopy=on`: a metadata change of a lower regular file copies its metadata only,
    /// in the kernel's format (`metacopy=off`, the default: the whole file).
    pub metacopy: bool,
    /// `datadir+=DIR` (repeatable, top first): data-only lower layers below the others,
    /// read only as the data of lower metacopy files through their absolute redirects.
    pub data_lowers: Vec<std::path::PathBuf>,
}

impl MountOptions {
    pub fn parse(opts: &[String]) -> Result<MountOptions> {
        let mut o = MountOptions::default();
        for item in opts
            .iter()
            .flat_map(|s| s.split(','))
            .filter(|s| !s.is_empty())
        {
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
                s if s.starts_with("fsname=") => o.fsname = Some(s[7..].to_string()),
                s if s.starts_with("threads=") => match s[8..].parse::<usize>() {
                    Ok(n) if (1..=64).contains(&n) => o.threads = Some(n),
                    _ => bail!("-o {s}: threads must be a number from 1 to 64"),
                },
                "squash_to_root" => o.ids.squash_to_root = true,
                "metacopy=on" => o.metacopy = true,
                "metacopy=off" => o.metacopy = false,
                s if s.starts_with("datadir+=") => match &s[9..] {
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
            MountOption::Subtype("unionctl".into()),
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
        // One serving thread per core: more only hand requests between threads (each
        // hand-off a wake-up on another CPU), fewer cannot serve parallel callers.
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        c.n_threads = Some(self.threads.unwrap_or(cores.clamp(2, 8)));
        c.clone_fd = true;
        c
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
