//! Capability names and the set a container gets: docker's default set, changed by
//! `--cap-add`/`--cap-drop` (names with or without `CAP_`, any case, or `ALL`) and
//! `--privileged` (every capability the kernel knows).
use crate::error::Result;
use crate::linux;

/// linux/capability.h, by number.
const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// `CAP_SYS_ADMIN` for capability 21.
pub fn name(cap: u32) -> Option<&'static str> {
    NAMES.get(cap as usize).copied()
}

/// The number of `name` (`SYS_ADMIN`, `cap_sys_admin`, `CAP_SYS_ADMIN`).
pub fn number(name: &str) -> Option<u32> {
    let full = full_name(name);
    NAMES.iter().position(|n| *n == full).map(|i| i as u32)
}

/// A capability's name as the kernel's table spells it, however it was written:
/// `sys_admin`, `SYS_ADMIN`, `cap_sys_admin` are all `CAP_SYS_ADMIN`.
pub fn full_name(name: &str) -> String {
    let upper = name.to_ascii_uppercase();
    match upper.starts_with("CAP_") {
        true => upper,
        false => format!("CAP_{upper}"),
    }
}

/// Every capability this kernel and this table know and that we can hand on (a machine
/// that runs us in a container may lack some).
pub fn all() -> Vec<u32> {
    (0..=linux::last_cap().min(NAMES.len() as u32 - 1))
        .filter(|&c| linux::in_bounding_set(c))
        .collect()
}

/// A root container on a host that cannot restrict its device access (no device
/// cgroup) gets no CAP_MKNOD unless asked for by name: with it, it could make and open a
/// node of the host's disk. (docker keeps CAP_MKNOD because its device cgroup denies that.)
pub fn without_mknod_when_unrestricted(
    caps: &mut Vec<u32>,
    add: &[String],
    privileged: bool,
    devices_unrestricted: bool,
) {
    let asked = add.iter().any(|n| number(n) == Some(linux::cap::MKNOD));
    if devices_unrestricted && !privileged && !asked {
        caps.retain(|&c| c != linux::cap::MKNOD);
    }
}

/// The container's capability set, sorted: docker's default (or all, privileged), then
/// the drops, then the adds, as docker applies them (`--cap-drop ALL --cap-add X` = X).
pub fn effective_set(add: &[String], drop: &[String], privileged: bool) -> Result<Vec<u32>> {
    let mut set: Vec<u32> = match privileged {
        true => all(),
        false => linux::DEFAULT_CAPS.to_vec(),
    };
    let parse = |flag: &str, n: &String| -> Result<Option<u32>> {
        if n.eq_ignore_ascii_case("ALL") {
            return Ok(None);
        }
        number(n)
            .map(Some)
            .ok_or_else(|| invalid!("{flag} {n:?}: unknown capability (names as in capabilities(7), with or without CAP_)"))
    };
    for n in drop {
        match parse("--cap-drop", n)? {
            None => set.clear(),
            Some(c) => set.retain(|&x| x != c),
        }
    }
    for n in add {
        match parse("--cap-add", n)? {
            None => set = all(),
            Some(c) if !set.contains(&c) => set.push(c),
            Some(_) => {}
        }
    }
    set.sort_unstable();
    Ok(set)
}

/// The names of `caps`, as `inspect` shows them.
pub fn names(caps: &[u32]) -> Vec<String> {
    caps.iter()
        .map(|&c| name(c).map_or_else(|| format!("CAP_{c}"), str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_take_any_spelling() {
        assert_eq!(number("SYS_ADMIN"), Some(21));
        assert_eq!(number("cap_sys_admin"), Some(21));
        assert_eq!(number("CAP_BPF"), Some(39));
        assert_eq!(number("NOPE"), None);
        assert_eq!(full_name("sys_admin"), "CAP_SYS_ADMIN");
        assert_eq!(full_name("Cap_Bpf"), "CAP_BPF");
        for (i, n) in NAMES.iter().enumerate() {
            assert_eq!(number(n), Some(i as u32));
        }
    }

    #[test]
    fn add_and_drop_follow_docker() {
        let s = |a: &[&str], d: &[&str], p| {
            let a: Vec<String> = a.iter().map(|x| x.to_string()).collect();
            let d: Vec<String> = d.iter().map(|x| x.to_string()).collect();
            effective_set(&a, &d, p).unwrap()
        };
        let default = s(&[], &[], false);
        assert_eq!(default.len(), linux::DEFAULT_CAPS.len());
        assert!(!default.contains(&21));
        assert!(s(&["SYS_ADMIN"], &[], false).contains(&21));
        assert!(!s(&[], &["chown"], false).contains(&0));
        assert_eq!(s(&["NET_ADMIN"], &["ALL"], false), vec![12]);
        assert_eq!(s(&["ALL"], &[], false), all());
        assert_eq!(s(&[], &[], true), all());
        let mknod = linux::cap::MKNOD;
        let mut caps = effective_set(&[], &[], false).unwrap();
        without_mknod_when_unrestricted(&mut caps, &[], false, false);
        assert!(
            caps.contains(&mknod),
            "kept where a device cgroup restricts devices"
        );
        without_mknod_when_unrestricted(&mut caps, &[], false, true);
        assert!(!caps.contains(&mknod));
        let mut caps = effective_set(&["MKNOD".into()], &[], false).unwrap();
        without_mknod_when_unrestricted(&mut caps, &["MKNOD".into()], false, true);
        assert!(caps.contains(&mknod), "asked for by name");
        assert!(effective_set(&["BOGUS".into()], &[], false).is_err());
    }
}
