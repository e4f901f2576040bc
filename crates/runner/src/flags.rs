//! Typed values of `run`'s docker flags (`--restart`, `--tmpfs`, `--mount`, `--ulimit`,
//! `--add-host`, `--stop-signal`, `--label`, `--env-file`, `--device`,
//! `--device-cgroup-rule`): parsed and checked here, so
//! every caller (the binary, an embedding program) gets the same rules and messages.
use crate::error::{Context, Result, io};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;

/// `--restart`: when the supervisor starts the container's command again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "name", content = "max")]
pub enum RestartPolicy {
    #[default]
    No,
    /// After a non-zero exit, at most N times (None: no limit).
    OnFailure(Option<u32>),
    Always,
    UnlessStopped,
}

impl RestartPolicy {
    /// Whether to start again after an exit with `code`, `restarts` restarts done so far;
    /// `stopped`: a user stopped or killed it (docker's "manually stopped").
    pub fn should_restart(self, code: i32, restarts: u32, stopped: bool) -> bool {
        if stopped {
            return false;
        }
        match self {
            RestartPolicy::No => false,
            RestartPolicy::OnFailure(max) => code != 0 && max.is_none_or(|m| restarts < m),
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        }
    }
}

impl FromStr for RestartPolicy {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad =
            || invalid!("restart policy {s:?}: use no, on-failure[:N], always or unless-stopped");
        Ok(match s.split_once(':') {
            None => match s {
                "no" => RestartPolicy::No,
                "on-failure" => RestartPolicy::OnFailure(None),
                "always" => RestartPolicy::Always,
                "unless-stopped" => RestartPolicy::UnlessStopped,
                _ => return Err(bad()),
            },
            Some(("on-failure", n)) => {
                let n: u32 = n
                    .parse()
                    .map_err(|_| invalid!("restart policy {s:?}: N must be a count (0 or more)"))?;
                RestartPolicy::OnFailure(Some(n))
            }
            Some(_) => return Err(bad()),
        })
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestartPolicy::No => f.write_str("no"),
            RestartPolicy::OnFailure(None) => f.write_str("on-failure"),
            RestartPolicy::OnFailure(Some(n)) => write!(f, "on-failure:{n}"),
            RestartPolicy::Always => f.write_str("always"),
            RestartPolicy::UnlessStopped => f.write_str("unless-stopped"),
        }
    }
}

/// A tmpfs mounted in the container (`--tmpfs PATH[:OPTS]`, `--mount type=tmpfs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tmpfs {
    /// Absolute path in the container.
    pub target: String,
    /// mount(8) options: ro/rw, exec/noexec, suid/nosuid, dev/nodev, size=, mode=,
    /// uid=, gid=, nr_inodes= (docker's defaults noexec,nosuid,nodev come first).
    pub options: Vec<String>,
}

/// tmpfs data options passed on to the kernel as they are.
const TMPFS_DATA: [&str; 5] = ["size", "mode", "uid", "gid", "nr_inodes"];
/// Flag options (those the kernel takes as mount flags, not data).
const TMPFS_FLAGS: [&str; 10] = [
    "ro", "rw", "exec", "noexec", "suid", "nosuid", "dev", "nodev", "atime", "noatime",
];

impl Tmpfs {
    fn new(target: &str, opts: &[&str], what: &str) -> Result<Tmpfs> {
        crate::spec::check_container_path(target, what)?;
        let mut options: Vec<String> = ["noexec", "nosuid", "nodev"].map(String::from).into();
        for o in opts.iter().filter(|o| !o.is_empty()) {
            let key = o.split_once('=').map_or(*o, |(k, _)| k);
            let ok = match o.split_once('=') {
                Some((k, v)) => TMPFS_DATA.contains(&k) && !v.is_empty(),
                None => TMPFS_FLAGS.contains(o),
            };
            if !ok {
                bail!(
                    "{what}: unknown tmpfs option {o:?} (use ro, rw, [no]exec, [no]suid, [no]dev, size=, mode=, uid=, gid=)"
                );
            }
            if key == "size" {
                // Checked here: the kernel's own message would only say EINVAL.
                crate::spec::parse_bytes(o.split_once('=').map_or("", |(_, v)| v))
                    .map_err(|e| invalid!("{what}: {e}"))?;
            }
            options.push(o.to_string());
        }
        Ok(Tmpfs {
            target: target.to_string(),
            options,
        })
    }

    /// Mount flags (MS_*) and the data string; a later option wins over an earlier one.
    pub fn mount_args(&self) -> (libc::c_ulong, String) {
        let mut flags: libc::c_ulong = 0;
        let mut data = Vec::new();
        for o in &self.options {
            let (set, clear) = match o.as_str() {
                "ro" => (libc::MS_RDONLY, 0),
                "rw" => (0, libc::MS_RDONLY),
                "noexec" => (libc::MS_NOEXEC, 0),
                "exec" => (0, libc::MS_NOEXEC),
                "nosuid" => (libc::MS_NOSUID, 0),
                "suid" => (0, libc::MS_NOSUID),
                "nodev" => (libc::MS_NODEV, 0),
                "dev" => (0, libc::MS_NODEV),
                "noatime" => (libc::MS_NOATIME, 0),
                "atime" => (0, libc::MS_NOATIME),
                other => {
                    let (k, v) = other.split_once('=').unwrap_or((other, ""));
                    let v = match k {
                        "size" => crate::spec::parse_bytes(v)
                            .map(|b| b.to_string())
                            .unwrap_or_else(|_| v.to_string()),
                        _ => v.to_string(),
                    };
                    data.retain(|d: &String| !d.starts_with(&format!("{k}=")));
                    data.push(format!("{k}={v}"));
                    (0, 0)
                }
            };
            flags = (flags | set) & !clear;
        }
        (flags, data.join(","))
    }
}

impl FromStr for Tmpfs {
    type Err = crate::error::Error;
    /// `PATH[:OPT,OPT...]`.
    fn from_str(s: &str) -> Result<Self> {
        let (target, opts) = s.split_once(':').unwrap_or((s, ""));
        let opts: Vec<&str> = opts.split(',').collect();
        Tmpfs::new(target, &opts, &format!("tmpfs {s:?}"))
    }
}

/// `--mount type=bind|volume|tmpfs,source=..,target=..[,readonly]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSpec {
    /// A host path (`type=bind`) or a named volume (`type=volume`; no source: anonymous):
    /// the value `-v` makes.
    Volume(crate::state::Volume),
    Tmpfs(Tmpfs),
}

impl FromStr for MountSpec {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> Result<Self> {
        let what = format!("mount {s:?}");
        let (mut kind, mut source, mut target, mut readonly) = ("volume", None, None, false);
        let mut tmpfs_opts: Vec<String> = Vec::new();
        for field in s.split(',') {
            let (k, v) = field.split_once('=').unwrap_or((field, ""));
            match k {
                "type" => kind = v,
                "source" | "src" => source = Some(v),
                "target" | "destination" | "dst" => target = Some(v),
                "readonly" | "ro" => {
                    readonly = match v {
                        "" | "true" | "1" => true,
                        "false" | "0" => false,
                        _ => bail!("{what}: readonly takes true or false"),
                    }
                }
                "tmpfs-size" => tmpfs_opts.push(format!("size={v}")),
                "tmpfs-mode" => tmpfs_opts.push(format!("mode={v}")),
                // Accepted and meaningless here, as docker without SELinux or propagation.
                "bind-propagation" | "consistency" | "volume-nocopy" => {}
                _ => bail!("{what}: unknown field {k:?} (use type, source, target, readonly)"),
            }
        }
        let Some(target) = target.filter(|t| !t.is_empty()) else {
            bail!("{what}: target= is required");
        };
        let source = source.filter(|s| !s.is_empty());
        match kind {
            "bind" => {
                let Some(src) = source else {
                    bail!("{what}: a bind mount needs source=");
                };
                if !src.starts_with('/') {
                    bail!("{what}: a bind source must be an absolute host path");
                }
                crate::spec::volume(Some(src), target, readonly, &what).map(MountSpec::Volume)
            }
            "volume" => {
                if let Some(name) = source {
                    crate::volumes::validate_volume_name(name)?;
                }
                crate::spec::volume(source, target, readonly, &what).map(MountSpec::Volume)
            }
            "tmpfs" => {
                if source.is_some_and(|s| !s.is_empty()) {
                    bail!("{what}: a tmpfs has no source");
                }
                if readonly {
                    tmpfs_opts.push("ro".into());
                }
                let refs: Vec<&str> = tmpfs_opts.iter().map(String::as_str).collect();
                Ok(MountSpec::Tmpfs(Tmpfs::new(target, &refs, &what)?))
            }
            other => bail!("{what}: unknown type {other:?} (use bind, volume or tmpfs)"),
        }
    }
}

/// `--ulimit NAME=SOFT[:HARD]`; -1 or `unlimited` is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    /// RLIMIT_* number.
    pub resource: i32,
    pub soft: u64,
    pub hard: u64,
}

const ULIMITS: [(&str, i32); 16] = [
    ("as", libc::RLIMIT_AS as i32),
    ("core", libc::RLIMIT_CORE as i32),
    ("cpu", libc::RLIMIT_CPU as i32),
    ("data", libc::RLIMIT_DATA as i32),
    ("fsize", libc::RLIMIT_FSIZE as i32),
    ("locks", libc::RLIMIT_LOCKS as i32),
    ("memlock", libc::RLIMIT_MEMLOCK as i32),
    ("msgqueue", libc::RLIMIT_MSGQUEUE as i32),
    ("nice", libc::RLIMIT_NICE as i32),
    ("nofile", libc::RLIMIT_NOFILE as i32),
    ("nproc", libc::RLIMIT_NPROC as i32),
    ("rss", libc::RLIMIT_RSS as i32),
    ("rtprio", libc::RLIMIT_RTPRIO as i32),
    ("rttime", libc::RLIMIT_RTTIME as i32),
    ("sigpending", libc::RLIMIT_SIGPENDING as i32),
    ("stack", libc::RLIMIT_STACK as i32),
];

impl Ulimit {
    pub fn name(&self) -> &'static str {
        ULIMITS
            .iter()
            .find(|(_, r)| *r == self.resource)
            .map_or("?", |(n, _)| n)
    }
}

impl FromStr for Ulimit {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> Result<Self> {
        let Some((name, values)) = s.split_once('=') else {
            bail!("ulimit {s:?}: expected NAME=SOFT[:HARD]");
        };
        let Some(&(_, resource)) = ULIMITS.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = ULIMITS.iter().map(|(n, _)| *n).collect();
            bail!(
                "ulimit {s:?}: unknown limit {name:?} (one of {})",
                names.join(", ")
            );
        };
        let value = |v: &str| -> Result<u64> {
            match v {
                "-1" | "unlimited" => Ok(libc::RLIM_INFINITY),
                _ => v
                    .parse()
                    .map_err(|_| invalid!("ulimit {s:?}: {v:?} is not a number (or -1)")),
            }
        };
        let (soft, hard) = match values.split_once(':') {
            Some((a, b)) => (value(a)?, value(b)?),
            None => (value(values)?, value(values)?),
        };
        if soft > hard {
            bail!("ulimit {s:?}: the soft limit is above the hard limit");
        }
        Ok(Ulimit {
            resource,
            soft,
            hard,
        })
    }
}

/// `--add-host NAME:IP` (also `NAME=IP`, docker's newer form): a line of /etc/hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEntry {
    pub name: String,
    pub ip: IpAddr,
}

impl FromStr for HostEntry {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> Result<Self> {
        // NAME=IP first: an IPv6 address has colons.
        let (name, ip) = s
            .split_once('=')
            .or_else(|| s.split_once(':'))
            .ok_or_else(|| invalid!("host entry {s:?}: expected NAME:IP"))?;
        let ip = ip.trim_start_matches('[').trim_end_matches(']');
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| invalid!("host entry {s:?}: {ip:?} is not an IP address"))?;
        let name_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
        if !name_ok {
            bail!("host entry {s:?}: {name:?} is not a host name");
        }
        Ok(HostEntry {
            name: name.to_string(),
            ip,
        })
    }
}

/// A signal by name (`SIGTERM`, `TERM`, `term`) or number; its number.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        bail!("signal {s:?}: numbers go from 1 to 64");
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    nix::sys::signal::Signal::from_str(&name)
        .map(|sig| sig as i32)
        .map_err(|_| invalid!("signal {s:?}: no such signal"))
}

/// The name of signal `n` (`SIGTERM`), or its number.
pub fn signal_name(n: i32) -> String {
    nix::sys::signal::Signal::try_from(n)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| n.to_string())
}

/// `--label K=V` (a bare `K` has the empty value).
pub fn parse_label(s: &str) -> Result<(String, String)> {
    let (k, v) = s.split_once('=').unwrap_or((s, ""));
    if k.is_empty() {
        bail!("label {s:?}: expected KEY=VALUE");
    }
    Ok((k.to_string(), v.to_string()))
}

/// The `K=V` lines of a docker env file: `#` comments and blank lines skipped, a bare
/// `K` takes the value from `lookup` (the caller's environment) or is dropped.
pub fn parse_env_file(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // As docker: `K = V` or `export K=V` is a mistake, not a variable "K " or "export K".
        let name = line.split_once('=').map_or(line, |(k, _)| k);
        if name.contains(char::is_whitespace) {
            bail!("line {}: variable {name:?} contains whitespace", n + 1);
        }
        let entry =
            crate::spec::parse_env(line, &lookup).with_context(|| format!("line {}", n + 1))?;
        out.extend(entry);
    }
    Ok(out)
}

/// Reads an env file (`--env-file`).
pub fn read_env_file(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(io("--env-file", path))?;
    parse_env_file(&text, |k| std::env::var(k).ok())
        .with_context(|| format!("env file {}", path.display()))
}

/// Whether `s` is a device cgroup access: one or more of r, w, m, each once.
fn valid_access(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 3
        && s.bytes().all(|b| b"rwm".contains(&b))
        && (0..s.len()).all(|i| !s[i + 1..].contains(&s[i..i + 1]))
}

/// `--device HOST[:CONTAINER[:PERMS]]` as docker reads it: a second part that is an access
/// (`r`, `rw`, `rwm`, ...) is PERMS with CONTAINER = HOST; PERMS defaults to rwm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceMapping {
    pub path_on_host: String,
    pub path_in_container: String,
    pub cgroup_permissions: String,
}

impl FromStr for DeviceMapping {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split(':').collect();
        let (host, ctr, perms) = match parts[..] {
            [h] => (h, h, "rwm"),
            [h, p] if valid_access(p) => (h, h, p),
            [h, c] => (h, c, "rwm"),
            [h, c, p] => (h, c, p),
            _ => bail!("--device {s:?}: expected HOST[:CONTAINER[:PERMS]]"),
        };
        if !host.starts_with('/') {
            bail!("--device {s:?}: the host path {host:?} is not absolute");
        }
        if !ctr.starts_with('/') {
            bail!("--device {s:?}: the container path {ctr:?} is not absolute");
        }
        crate::spec::check_container_path(ctr, &format!("--device {s:?}"))?;
        // The container's tree is mounted nodev: a device node works only on its /dev.
        if !ctr.starts_with("/dev/") || ctr.trim_end_matches('/') == "/dev" {
            bail!(
                "--device {s:?}: the container path {ctr:?} must be in /dev (device nodes elsewhere cannot be opened in unionctl's containers)"
            );
        }
        if !valid_access(perms) {
            bail!("--device {s:?}: permissions {perms:?} are not a combination of r, w and m");
        }
        Ok(DeviceMapping {
            path_on_host: host.to_string(),
            path_in_container: ctr.to_string(),
            cgroup_permissions: perms.to_string(),
        })
    }
}

impl fmt::Display for DeviceMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.path_on_host, self.path_in_container, self.cgroup_permissions
        )
    }
}

/// One line of the device cgroup's list (`--device-cgroup-rule`, the kernel's
/// cgroup-v1/devices.rst format): `TYPE MAJOR:MINOR ACCESS`, TYPE `a`, `b` or `c`, a
/// number or `*` (None) for MAJOR and MINOR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRule {
    pub kind: char,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: String,
}

impl FromStr for DeviceRule {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            invalid!(
                "--device-cgroup-rule {s:?}: expected TYPE MAJOR:MINOR ACCESS, as 'c 1:3 rwm' (TYPE a, b or c; * for any number; ACCESS of r, w, m)"
            )
        };
        let f: Vec<&str> = s.split(' ').collect();
        let [kind, numbers, access] = f[..] else {
            return Err(bad());
        };
        let kind = match kind {
            "a" | "b" | "c" => kind.chars().next().unwrap_or('a'),
            _ => return Err(bad()),
        };
        let (major, minor) = numbers.split_once(':').ok_or_else(bad)?;
        let number = |n: &str| -> Result<Option<u32>> {
            match n {
                "*" => Ok(None),
                _ if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                    n.parse().map(Some).map_err(|_| bad())
                }
                _ => Err(bad()),
            }
        };
        let (major, minor) = (number(major)?, number(minor)?);
        if !valid_access(access) {
            return Err(bad());
        }
        // The kernel reads an `a` line as "every device, every access", whatever its
        // numbers and access say: only that meaning is taken.
        if kind == 'a' && (major.is_some() || minor.is_some() || access.len() != 3) {
            bail!(
                "--device-cgroup-rule {s:?}: type a allows every device with every access; write 'a *:* rwm' for that, or use b or c"
            );
        }
        Ok(DeviceRule {
            kind,
            major,
            minor,
            access: access.to_string(),
        })
    }
}

impl fmt::Display for DeviceRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |v: Option<u32>| v.map_or("*".to_string(), |v| v.to_string());
        write!(
            f,
            "{} {}:{} {}",
            self.kind,
            n(self.major),
            n(self.minor),
            self.access
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies() {
        assert_eq!("no".parse::<RestartPolicy>().unwrap(), RestartPolicy::No);
        let p: RestartPolicy = "on-failure:2".parse().unwrap();
        assert_eq!(p, RestartPolicy::OnFailure(Some(2)));
        assert_eq!(p.to_string(), "on-failure:2");
        assert!(p.should_restart(1, 0, false));
        assert!(p.should_restart(1, 1, false));
        assert!(!p.should_restart(1, 2, false));
        assert!(!p.should_restart(0, 0, false));
        assert!(!p.should_restart(1, 0, true));
        assert!(RestartPolicy::Always.should_restart(0, 100, false));
        assert!(!RestartPolicy::Always.should_restart(0, 0, true));
        for bad in ["sometimes", "on-failure:x", "always:3", ""] {
            let e = bad.parse::<RestartPolicy>().unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn tmpfs_specs() {
        let t: Tmpfs = "/run:size=1m,exec,mode=700".parse().unwrap();
        let (flags, data) = t.mount_args();
        assert_eq!(flags, libc::MS_NOSUID | libc::MS_NODEV);
        assert_eq!(data, "size=1048576,mode=700");
        assert!("run".parse::<Tmpfs>().is_err());
        assert!("/x:bogus".parse::<Tmpfs>().is_err());
        assert!("/x:size=lots".parse::<Tmpfs>().is_err());
    }

    #[test]
    fn mount_specs() {
        let m: MountSpec = "type=bind,source=/srv,target=/data,readonly"
            .parse()
            .unwrap();
        assert_eq!(
            m,
            MountSpec::Volume(crate::spec::parse_volume("/srv:/data:ro").unwrap())
        );
        let m: MountSpec = "type=volume,src=vol1,dst=/v".parse().unwrap();
        assert_eq!(
            m,
            MountSpec::Volume(crate::spec::parse_volume("vol1:/v").unwrap())
        );
        let m: MountSpec = "type=volume,dst=/v".parse().unwrap();
        assert_eq!(
            m,
            MountSpec::Volume(crate::spec::parse_volume("/v").unwrap())
        );
        // A source is a path whole, colons and all: never re-split as `-v` text.
        let m: MountSpec = "type=bind,source=/a:b,target=/x".parse().unwrap();
        let MountSpec::Volume(v) = m else { panic!() };
        assert_eq!(v.host, std::path::PathBuf::from("/a:b"));
        assert_eq!((v.container.as_str(), v.readonly), ("/x", false));
        let m: MountSpec = "type=tmpfs,target=/t,tmpfs-size=64k".parse().unwrap();
        let MountSpec::Tmpfs(t) = m else { panic!() };
        assert_eq!(t.mount_args().1, "size=65536");
        for bad in [
            "type=bind,target=/x",
            "type=nfs,target=/x",
            "type=bind,source=/a",
            "type=bind,source=rel,target=/x",
            "type=tmpfs,target=/x,bogus=1",
            "type=bind,source=/a,target=/",
            "type=volume,source=/abs,target=/x",
        ] {
            assert!(bad.parse::<MountSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ulimits_hosts_signals_labels() {
        let u: Ulimit = "nofile=1024:2048".parse().unwrap();
        assert_eq!((u.soft, u.hard, u.name()), (1024, 2048, "nofile"));
        let u: Ulimit = "core=-1".parse().unwrap();
        assert_eq!(u.hard, libc::RLIM_INFINITY);
        assert!("nofile=10:5".parse::<Ulimit>().is_err());
        assert!("bogus=1".parse::<Ulimit>().is_err());
        let h: HostEntry = "db:10.0.0.2".parse().unwrap();
        assert_eq!(h.name, "db");
        let h: HostEntry = "v6=::1".parse().unwrap();
        assert_eq!(h.ip.to_string(), "::1");
        assert!("db:notanip".parse::<HostEntry>().is_err());
        assert_eq!(parse_signal("SIGUSR1").unwrap(), libc::SIGUSR1);
        assert_eq!(parse_signal("term").unwrap(), libc::SIGTERM);
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert!(parse_signal("SIGNOPE").is_err());
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(parse_label("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(parse_label("=x").is_err());
    }

    #[test]
    fn env_files() {
        let text = "# comment\n\nA=1\n  B=two words\nHOME\nNOPE\n";
        let host = |k: &str| (k == "HOME").then(|| "/root".to_string());
        assert_eq!(
            parse_env_file(text, host).unwrap(),
            vec!["A=1", "B=two words", "HOME=/root"]
        );
        let e = parse_env_file("ok=1\n=bad\n", host)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2"), "{e}");
        for bad in ["B = 2", "export D=4", "E F"] {
            let e = parse_env_file(bad, host).unwrap_err().to_string();
            assert!(e.contains("line 1") && e.contains("whitespace"), "{e}");
        }
    }

    #[test]
    fn device_mappings_and_rules() {
        let d: DeviceMapping = "/dev/zero".parse().unwrap();
        assert_eq!(d.to_string(), "/dev/zero:/dev/zero:rwm");
        let d: DeviceMapping = "/dev/zero:r".parse().unwrap();
        assert_eq!(d.to_string(), "/dev/zero:/dev/zero:r");
        let d: DeviceMapping = "/dev/zero:/dev/z".parse().unwrap();
        assert_eq!(d.to_string(), "/dev/zero:/dev/z:rwm");
        let d: DeviceMapping = "/dev/zero:/dev/z:mr".parse().unwrap();
        assert_eq!(d.cgroup_permissions, "mr");
        for bad in [
            "",
            "dev/zero",
            "/dev/zero:dev/z",
            "/dev/zero:/dev/z:rx",
            "/dev/zero:/dev/z:rr",
            "/dev/zero:/dev/z:",
            "/a:/b:r:x",
        ] {
            let e = bad.parse::<DeviceMapping>().unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
        let r: DeviceRule = "c 1:3 mr".parse().unwrap();
        assert_eq!((r.kind, r.major, r.minor), ('c', Some(1), Some(3)));
        assert_eq!(r.to_string(), "c 1:3 mr");
        let r: DeviceRule = "b *:* m".parse().unwrap();
        assert_eq!(r.to_string(), "b *:* m");
        let r: DeviceRule = "a *:* rwm".parse().unwrap();
        assert_eq!(r.to_string(), "a *:* rwm");
        for bad in [
            "c 1:3", "x 1:3 r", "c 1 r", "c 1:3 q", "c -1:3 r", "c  1:3 r", "a 1:3 r", "a *:* r",
        ] {
            let e = bad.parse::<DeviceRule>().unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }
}
