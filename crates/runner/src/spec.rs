//! Pure parsing and checking of what users type: volumes, env, sizes, users.
use super::state::Volume;
use crate::error::Result;
use std::path::PathBuf;

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `HOST:CTR[:ro|rw]`, or `/CTR` alone for an anonymous volume (host dir made later).
pub fn parse_volume(spec: &str) -> Result<Volume> {
    let parts: Vec<&str> = spec.split(':').collect();
    let what = format!("bad volume spec {spec:?}");
    let (host, ctr, mode) = match parts.as_slice() {
        [ctr] => (None, *ctr, ""),
        [host, ctr] => (Some(*host), *ctr, ""),
        [host, ctr, mode] => (Some(*host), *ctr, *mode),
        _ => bail!("{what}: expected HOST:CONTAINER[:ro]"),
    };
    let readonly = match mode {
        "" | "rw" => false,
        "ro" => true,
        other => bail!("{what}: unknown mode {other:?} (use ro or rw)"),
    };
    volume(host, ctr, readonly, &what)
}

/// The one mount of `-v` and `--mount type=bind|volume`: `source` an absolute host path
/// (a bind mount), another word (a named volume), or None (an anonymous volume), mounted
/// at `target` in the container. `what` names the flag in errors.
pub fn volume(source: Option<&str>, target: &str, readonly: bool, what: &str) -> Result<Volume> {
    check_container_path(target, what)?;
    let mut v = Volume {
        host: PathBuf::new(),
        container: target.to_string(),
        readonly,
        anonymous: false,
        name: None,
    };
    match source {
        None => v.anonymous = true,
        Some(host) if host.starts_with('/') => v.host = PathBuf::from(host),
        Some(name) => {
            // Not a path: the name of a volume, as docker reads `-v NAME:/path`.
            crate::volumes::validate_volume_name(name).map_err(|_| {
                invalid!("{what}: the host path must be absolute (or a volume name)")
            })?;
            v.name = Some(name.to_string());
        }
    }
    Ok(v)
}

/// Where a volume or tmpfs goes in the container: an absolute path, no `..`, not `/`.
pub fn check_container_path(p: &str, what: &str) -> Result<()> {
    if !p.starts_with('/') {
        bail!("{what}: the container path must be absolute");
    }
    if p.split('/').any(|c| c == "..") {
        bail!("{what}: the container path may not contain '..'");
    }
    if p.split('/').all(|c| c.is_empty() || c == ".") {
        bail!("{what}: cannot mount over the container's root");
    }
    Ok(())
}

/// docker's characters of a container or volume name: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn is_docker_name(name: &str) -> bool {
    let mut b = name.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && b.all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c))
}

/// `K=V`; a bare `K` takes the value from `lookup` (the host environment) or is dropped.
pub fn parse_env(spec: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<Option<String>> {
    let (key, value) = match spec.split_once('=') {
        Some((k, v)) => (k, Some(v.to_string())),
        None => (spec, None),
    };
    if key.is_empty() || key.contains('\0') {
        bail!("bad environment variable {spec:?}: expected KEY=VALUE");
    }
    Ok(value.or_else(|| lookup(key)).map(|v| format!("{key}={v}")))
}

/// Sets or replaces `KEY=...` in `env`.
pub fn env_set(env: &mut Vec<String>, entry: &str) {
    let key = entry.split('=').next().unwrap_or("");
    env.retain(|e| e.split('=').next() != Some(key));
    env.push(entry.to_string());
}

pub fn env_get<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter()
        .filter_map(|e| e.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// Sizes such as `512m`, `1g`, `1048576`, `64k` (binary units) in bytes.
pub fn parse_bytes(s: &str) -> Result<u64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let value: f64 = num
        .parse()
        .map_err(|_| invalid!("bad size {s:?}: expected a number with k, m or g"))?;
    if !value.is_finite() || value <= 0.0 {
        bail!("bad size {s:?}: must be positive");
    }
    let bytes = value * mult as f64;
    if bytes > u64::MAX as f64 / 2.0 {
        bail!("bad size {s:?}: too large");
    }
    Ok(bytes as u64)
}

/// `--cpus 1.5`: a positive number of CPUs, at most `available`.
pub fn parse_cpus(s: &str, available: usize) -> Result<f64> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| invalid!("bad --cpus {s:?}: expected a number such as 0.5"))?;
    if !v.is_finite() || v <= 0.0 {
        bail!("bad --cpus {s:?}: must be positive");
    }
    if v > available as f64 {
        bail!("bad --cpus {s:?}: this machine has {available} CPUs");
    }
    Ok(v)
}

/// A user resolved inside the container's rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    /// Supplementary groups from /etc/group when the user was named.
    pub groups: Vec<u32>,
}

/// Resolves `UID[:GID]` / `NAME[:GROUP]` against the rootfs' /etc/passwd and /etc/group
/// (their contents, empty when missing).
pub fn resolve_user(spec: &str, passwd: &str, group: &str) -> Result<User> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if u.is_empty() {
        bail!("unknown user {spec:?}: empty user");
    }
    let pw: Vec<Vec<&str>> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 7)
        .collect();
    let by_name = pw.iter().find(|f| f[0] == u);
    let (uid, mut gid, home, name) = if let Ok(uid) = u.parse::<u32>() {
        let entry = pw.iter().find(|f| f[2].parse::<u32>().ok() == Some(uid));
        match entry {
            Some(f) => (uid, f[3].parse().unwrap_or(0), f[5].to_string(), Some(f[0])),
            None => (uid, 0, "/".to_string(), None),
        }
    } else {
        match by_name {
            Some(f) => {
                let uid = f[2]
                    .parse()
                    .map_err(|_| invalid!("unknown user {u:?}: bad /etc/passwd entry"))?;
                (uid, f[3].parse().unwrap_or(0), f[5].to_string(), Some(f[0]))
            }
            None => bail!("unknown user {u:?}: no such user in the container's /etc/passwd"),
        }
    };
    let grp: Vec<Vec<&str>> = group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
        .collect();
    if let Some(g) = g {
        gid = if let Ok(n) = g.parse::<u32>() {
            n
        } else {
            match grp.iter().find(|f| f[0] == g) {
                Some(f) => f[2]
                    .parse()
                    .map_err(|_| invalid!("unknown group {g:?}: bad /etc/group entry"))?,
                None => bail!("unknown group {g:?}: no such group in the container's /etc/group"),
            }
        };
    }
    let mut groups = Vec::new();
    if let Some(name) = name {
        for f in &grp {
            if f[3].split(',').any(|m| m == name)
                && let Ok(n) = f[2].parse::<u32>()
                && n != gid
            {
                groups.push(n);
            }
        }
    }
    Ok(User {
        uid,
        gid,
        home,
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes() {
        let v = parse_volume("/srv/data:/data:ro").unwrap();
        assert_eq!(v.host, PathBuf::from("/srv/data"));
        assert_eq!(v.container, "/data");
        assert!(v.readonly && !v.anonymous);
        assert!(!parse_volume("/a:/b").unwrap().readonly);
        assert!(parse_volume("/cache").unwrap().anonymous);
        let v = parse_volume("data:/v").unwrap();
        assert_eq!(v.name.as_deref(), Some("data"));
        for bad in [
            "-rel:/b",
            "/a:rel",
            "/a:/b:xx",
            "/a:/b:ro:z",
            "/a:/../etc",
            "/a:/",
            "",
        ] {
            let e = parse_volume(bad).unwrap_err().to_string();
            assert!(e.starts_with("bad volume spec"), "{bad}: {e}");
        }
    }

    #[test]
    fn env() {
        let host = |k: &str| (k == "HOME").then(|| "/root".to_string());
        assert_eq!(parse_env("A=1=2", host).unwrap().unwrap(), "A=1=2");
        assert_eq!(parse_env("HOME", host).unwrap().unwrap(), "HOME=/root");
        assert_eq!(parse_env("NOPE", host).unwrap(), None);
        assert!(parse_env("=x", host).is_err());
        let mut e = vec!["PATH=/bin".to_string(), "A=1".to_string()];
        env_set(&mut e, "PATH=/x");
        assert_eq!(env_get(&e, "PATH"), Some("/x"));
        assert_eq!(e.len(), 2);
    }

    #[test]
    fn sizes_and_cpus() {
        assert_eq!(parse_bytes("512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1G").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert_eq!(parse_bytes("64kb").unwrap(), 64 << 10);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("-1m").is_err());
        assert_eq!(parse_cpus("0.5", 2).unwrap(), 0.5);
        assert!(parse_cpus("3", 2).is_err());
        assert!(parse_cpus("0", 2).is_err());
    }

    #[test]
    fn users() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:n:/nonexistent:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n";
        let group = "root:x:0:\nstaff:x:50:app\napp:x:1000:\n";
        let u = resolve_user("app", passwd, group).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (1000, 1000, "/home/app"));
        assert_eq!(u.groups, vec![50]);
        let u = resolve_user("1000:50", passwd, group).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 50));
        let u = resolve_user("4242", passwd, group).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (4242, 0, "/"));
        let u = resolve_user("nobody:staff", passwd, group).unwrap();
        assert_eq!((u.uid, u.gid), (65534, 50));
        let e = resolve_user("ghost", passwd, group)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown user \"ghost\""), "{e}");
        assert!(resolve_user("app:nogroup", passwd, group).is_err());
    }
}
