//! Rootless user namespace: the current user becomes root inside; with `newuidmap` /
//! `newgidmap` and an /etc/subuid (/etc/subgid) range, the range maps to ids 1..N.
use super::linux;
use crate::error::{Context, Result};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;

/// A subordinate id range from /etc/subuid or /etc/subgid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubRange {
    pub start: u32,
    pub count: u32,
}

/// First range for `name` or `id` in a subuid/subgid file's text.
pub fn parse_subid(text: &str, name: &str, id: u32) -> Option<SubRange> {
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.trim().split(':').collect();
        if f.len() != 3 || (f[0] != name && f[0].parse::<u32>().ok() != Some(id)) {
            return None;
        }
        let start = f[1].parse().ok()?;
        let count: u32 = f[2].parse().ok()?;
        (count > 0).then_some(SubRange { start, count })
    })
}

/// The map lines written for a process: `0 -> outer`, then the range at 1.
pub fn map_lines(outer: u32, range: Option<SubRange>) -> Vec<(u32, u32, u32)> {
    let mut lines = vec![(0, outer, 1)];
    if let Some(r) = range {
        lines.push((1, r.start, r.count));
    }
    lines
}

fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 2 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[0].to_string())
    })
}

fn find_tool(name: &str) -> Option<std::path::PathBuf> {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
}

/// The ranges to use: both subuid and subgid ranges plus the helper tools, or none.
fn sub_ranges(uid: u32) -> Option<(SubRange, SubRange)> {
    find_tool("newuidmap")?;
    find_tool("newgidmap")?;
    let name = user_name(uid).unwrap_or_default();
    let u = parse_subid(&std::fs::read_to_string("/etc/subuid").ok()?, &name, uid)?;
    let g = parse_subid(&std::fs::read_to_string("/etc/subgid").ok()?, &name, uid)?;
    Some((u, g))
}

/// Moves the calling (single-threaded) process into a new user namespace, plus any
/// `extra` namespaces, and maps ids. Returns whether a full sub-id range is mapped.
pub fn enter_user_namespace(extra: libc::c_int) -> Result<bool> {
    // SAFETY: getters without side effects.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    match sub_ranges(uid) {
        Some((ur, gr)) => {
            map_with_helpers(uid, gid, ur, gr, extra)?;
            Ok(true)
        }
        None => {
            nix::sched::unshare(nix::sched::CloneFlags::from_bits_retain(
                libc::CLONE_NEWUSER | extra,
            ))
            .context("unshare user namespace (are unprivileged user namespaces enabled?)")?;
            std::fs::write("/proc/self/setgroups", "deny").context("/proc/self/setgroups")?;
            std::fs::write("/proc/self/uid_map", format!("0 {uid} 1\n"))
                .context("/proc/self/uid_map")?;
            std::fs::write("/proc/self/gid_map", format!("0 {gid} 1\n"))
                .context("/proc/self/gid_map")?;
            Ok(false)
        }
    }
}

/// newuidmap/newgidmap must run outside the new namespace: a helper forked before the
/// unshare writes the maps once told to.
fn map_with_helpers(uid: u32, gid: u32, ur: SubRange, gr: SubRange, extra: i32) -> Result<()> {
    let (go_r, go_w) = linux::pipe()?;
    // SAFETY: getpid has no side effects.
    let me = unsafe { libc::getpid() };
    let helper = linux::clone_fork(0).context("fork id-map helper")?;
    let Some(helper) = helper else {
        drop(go_w);
        let mut b = [0u8; 1];
        // SAFETY: read into a one-byte buffer.
        let n = unsafe { libc::read(go_r.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
        if n != 1 {
            linux::exit_now(1);
        }
        let ok = run_map_tool("newuidmap", me, &map_lines(uid, Some(ur)))
            && run_map_tool("newgidmap", me, &map_lines(gid, Some(gr)));
        linux::exit_now(if ok { 0 } else { 1 });
    };
    drop(go_r);
    let unshared = nix::sched::unshare(nix::sched::CloneFlags::from_bits_retain(
        libc::CLONE_NEWUSER | extra,
    ));
    if let Err(e) = unshared {
        drop(go_w);
        let _ = linux::wait_pid(helper);
        return Err(e).context("unshare user namespace");
    }
    linux::write_all_fd(go_w.as_raw_fd(), b"g").context("signal id-map helper")?;
    drop(go_w);
    if linux::wait_pid(helper)? != 0 {
        bail!("newuidmap/newgidmap failed to map the ids of /etc/subuid and /etc/subgid");
    }
    Ok(())
}

fn run_map_tool(tool: &str, pid: i32, lines: &[(u32, u32, u32)]) -> bool {
    let mut cmd = Command::new(find_tool(tool).unwrap_or_else(|| tool.into()));
    cmd.arg(pid.to_string());
    for (inner, outer, count) in lines {
        cmd.args([inner.to_string(), outer.to_string(), count.to_string()]);
    }
    match cmd.status() {
        Ok(s) if s.success() => true,
        Ok(s) => {
            eprintln!("unionctl: {tool} {pid} failed ({s})");
            false
        }
        Err(e) => {
            eprintln!("unionctl: {tool}: {e}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subid_lines() {
        let text = "alice:100000:65536\n1001:200000:1000\nbad:line\nzero:5:0\n";
        assert_eq!(
            parse_subid(text, "alice", 1000),
            Some(SubRange {
                start: 100000,
                count: 65536
            })
        );
        assert_eq!(
            parse_subid(text, "bob", 1001),
            Some(SubRange {
                start: 200000,
                count: 1000
            })
        );
        assert_eq!(parse_subid(text, "zero", 7), None);
        assert_eq!(parse_subid(text, "carol", 1002), None);
    }

    #[test]
    fn maps_put_the_user_at_root() {
        assert_eq!(map_lines(1000, None), vec![(0, 1000, 1)]);
        let r = SubRange {
            start: 100000,
            count: 65536,
        };
        assert_eq!(
            map_lines(1000, Some(r)),
            vec![(0, 1000, 1), (1, 100000, 65536)]
        );
    }
}
