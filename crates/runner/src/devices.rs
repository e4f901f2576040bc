//! Which devices a container may use: docker's default device cgroup list (deny all, then
//! the pseudo devices, ttys and tun), `--device` nodes made in the container and allowed
//! with their permissions, `--device-cgroup-rule`s; `--privileged` allows every device.
//! The list is written to the v1 devices cgroup by `cgroups::create`; the nodes are made
//! by `rootfs::prepare`.
use crate::error::{Context, Result, io};
use crate::flags::{DeviceMapping, DeviceRule};
use crate::state::Config;
use serde::{Deserialize, Serialize};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// docker's (and runc's) default allowed devices, after a deny of everything.
pub fn default_rules() -> Vec<DeviceRule> {
    let rule = |kind, major, minor, access: &str| DeviceRule {
        kind,
        major,
        minor,
        access: access.to_string(),
    };
    vec![
        // mknod of any device; opening one still needs a rule below.
        rule('c', None, None, "m"),
        rule('b', None, None, "m"),
        rule('c', Some(1), Some(3), "rwm"),    // null
        rule('c', Some(1), Some(5), "rwm"),    // zero
        rule('c', Some(1), Some(7), "rwm"),    // full
        rule('c', Some(1), Some(8), "rwm"),    // random
        rule('c', Some(1), Some(9), "rwm"),    // urandom
        rule('c', Some(5), Some(0), "rwm"),    // tty
        rule('c', Some(5), Some(1), "rwm"),    // console
        rule('c', Some(5), Some(2), "rwm"),    // ptmx
        rule('c', Some(136), None, "rwm"),     // pts
        rule('c', Some(10), Some(200), "rwm"), // tun
    ]
}

/// A `--device` resolved on the host at start: the node to make in the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostDevice {
    pub path_on_host: String,
    pub path_in_container: String,
    /// `c` or `b`.
    pub kind: char,
    pub major: u32,
    pub minor: u32,
    /// Permission bits, owner and group of the host's node (docker copies them).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub access: String,
}

/// Looks up `m`'s host node (symlinks followed, as docker does).
pub fn resolve(m: &DeviceMapping) -> Result<HostDevice> {
    let meta =
        std::fs::metadata(&m.path_on_host).map_err(io("stat", Path::new(&m.path_on_host)))?;
    let ft = meta.file_type();
    let kind = if ft.is_char_device() {
        'c'
    } else if ft.is_block_device() {
        'b'
    } else {
        bail!("{} is not a device node", m.path_on_host);
    };
    let rdev = meta.rdev();
    Ok(HostDevice {
        path_on_host: m.path_on_host.clone(),
        path_in_container: m.path_in_container.clone(),
        kind,
        major: libc::major(rdev),
        minor: libc::minor(rdev),
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        access: m.cgroup_permissions.clone(),
    })
}

/// Every device node under the host's /dev (as docker gives a privileged container), but
/// what the container's /dev has of its own: pts, shm, mqueue, the pseudo devices bound
/// in, the console and ptmx.
pub fn host_devices() -> Vec<HostDevice> {
    const SKIP: [&str; 13] = [
        "pts", "shm", "mqueue", "fd", ".lxc", ".udev", "console", "ptmx", "null", "zero", "full",
        "random", "urandom",
    ];
    let mut out = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from("/dev")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let top = dir == Path::new("/dev");
            if top && (SKIP.contains(&name.to_string_lossy().as_ref()) || name == "tty") {
                continue;
            }
            let Ok(ft) = e.file_type() else { continue };
            let path = e.path();
            if ft.is_dir() {
                dirs.push(path);
                continue;
            }
            if !(ft.is_char_device() || ft.is_block_device()) {
                continue;
            }
            let p = path.to_string_lossy().into_owned();
            let m = DeviceMapping {
                path_on_host: p.clone(),
                path_in_container: p,
                cgroup_permissions: "rwm".into(),
            };
            if let Ok(d) = resolve(&m) {
                out.push(d);
            }
        }
    }
    out.sort_by(|a, b| a.path_in_container.cmp(&b.path_in_container));
    out
}

/// Every `--device` of `config` looked up on the host; an error names the value.
pub fn resolve_all(config: &Config) -> Result<Vec<HostDevice>> {
    config
        .devices
        .iter()
        .map(|m| resolve(m).with_context(|| format!("--device {m}")))
        .collect()
}

/// What the container may open: None for every device (`--privileged`), else the list to
/// allow after denying all: docker's defaults, each `--device`, each
/// `--device-cgroup-rule`.
pub fn cgroup_rules(config: &Config, devices: &[HostDevice]) -> Option<Vec<DeviceRule>> {
    if config.security.as_ref().is_some_and(|s| s.privileged) {
        return None;
    }
    let mut rules = default_rules();
    rules.extend(devices.iter().map(|d| DeviceRule {
        kind: d.kind,
        major: Some(d.major),
        minor: Some(d.minor),
        access: d.access.clone(),
    }));
    rules.extend(config.device_cgroup_rules.iter().cloned());
    Some(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_list_is_dockers() {
        let lines: Vec<String> = default_rules().iter().map(|r| r.to_string()).collect();
        assert_eq!(lines[..2], ["c *:* m", "b *:* m"]);
        for want in ["c 1:3 rwm", "c 1:9 rwm", "c 136:* rwm", "c 10:200 rwm"] {
            assert!(lines.iter().any(|l| l == want), "{want}");
        }
        assert!(!lines.iter().any(|l| l.starts_with('b') && l != "b *:* m"));
    }

    #[test]
    fn host_devices_leave_out_the_containers_own() {
        let all = host_devices();
        assert!(all.iter().all(|d| d.kind == 'c' || d.kind == 'b'));
        for own in ["/dev/null", "/dev/tty", "/dev/ptmx", "/dev/console"] {
            assert!(!all.iter().any(|d| d.path_in_container == own), "{own}");
        }
        assert!(
            !all.iter()
                .any(|d| d.path_in_container.starts_with("/dev/pts/"))
        );
    }

    #[test]
    fn privileged_allows_all_and_devices_join_the_list() {
        let dev = resolve(&"/dev/null:/dev/n:r".parse().unwrap()).unwrap();
        assert_eq!((dev.kind, dev.major, dev.minor), ('c', 1, 3));
        let mut config = Config {
            device_cgroup_rules: vec!["c 1:11 r".parse().unwrap()],
            ..Config::default()
        };
        let rules = cgroup_rules(&config, std::slice::from_ref(&dev)).unwrap();
        let tail: Vec<String> = rules.iter().rev().take(2).map(|r| r.to_string()).collect();
        assert_eq!(tail, ["c 1:11 r", "c 1:3 r"]);
        config.security = Some(crate::state::Security {
            privileged: true,
            ..Default::default()
        });
        assert_eq!(cgroup_rules(&config, &[dev]), None);
        let e = resolve(&"/etc/passwd:/dev/pw".parse().unwrap()).unwrap_err();
        assert!(e.to_string().contains("not a device node"), "{e}");
    }
}
