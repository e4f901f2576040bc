//! What runs in a container and what it uses: `top` (its processes, from /proc) and
//! `stats` (CPU, memory, pids: from its cgroups where it has them, else summed over the
//! processes of its pid namespace, since a container without limits joins no cgroup).
use crate::error::Result;
use crate::lifecycle::ns_pids;
use crate::state::{self, Container, Status};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

/// One process of a container, as /proc shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProcessRow {
    pub pid: i32,
    pub ppid: i32,
    /// Real uid on the host.
    pub uid: u32,
    /// Start time in clock ticks since boot.
    pub start_ticks: u64,
    /// User + system CPU time in clock ticks.
    pub cpu_ticks: u64,
    pub rss_bytes: u64,
    /// The command line, or `[comm]` for a process without one.
    pub cmd: String,
}

/// The processes of a running container, by pid.
pub fn top(root: &Path, name: &str) -> Result<Vec<ProcessRow>> {
    let c = running(root, name)?;
    let mut rows: Vec<ProcessRow> = ns_pids(&c)?.into_iter().filter_map(process_row).collect();
    rows.sort_by_key(|r| r.pid);
    Ok(rows)
}

fn running(root: &Path, name: &str) -> Result<Container> {
    let c = state::find_container(root, name)?;
    if c.live_status() != Status::Running || !c.pid_alive() {
        return Err(crate::Error::NotRunning(c.name));
    }
    Ok(c)
}

/// Clock ticks per second (USER_HZ).
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf getter.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

fn page_size() -> u64 {
    // SAFETY: sysconf getter.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as u64 } else { 4096 }
}

/// /proc/PID/stat and friends; None for a process that is gone.
fn process_row(pid: i32) -> Option<ProcessRow> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let comm = &stat[stat.find('(')? + 1..stat.rfind(')')?];
    let f: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|u| u.parse().ok())
        .unwrap_or(0);
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmd = if cmdline.is_empty() {
        format!("[{comm}]")
    } else {
        cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    };
    // Fields counted from the state (field 3): ppid 4, utime 14, stime 15, start 22, rss 24.
    Some(ProcessRow {
        pid,
        ppid: num(1) as i32,
        uid,
        start_ticks: num(19),
        cpu_ticks: num(11) + num(12),
        rss_bytes: num(21) * page_size(),
        cmd,
    })
}

/// One line of `stats`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ContainerStats {
    pub id: String,
    pub name: String,
    /// CPU time over wall time in the interval, in percent of one CPU.
    pub cpu_percent: f64,
    pub mem_usage: u64,
    pub mem_limit: u64,
    pub pids: u64,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    cpu_ns: u64,
    at: Instant,
}

/// CPU time used so far: the cgroup's cpuacct counter, else the processes' ticks.
fn cpu_ns(c: &Container, pids: &[i32]) -> u64 {
    for d in &c.cgroups {
        if let Some(ns) = read_u64(&d.join("cpuacct.usage")) {
            return ns;
        }
        if let Ok(s) = fs::read_to_string(d.join("cpu.stat"))
            && let Some(us) = s
                .lines()
                .find_map(|l| l.strip_prefix("usage_usec "))
                .and_then(|v| v.trim().parse::<u64>().ok())
        {
            return us * 1000;
        }
    }
    let ticks: u64 = pids
        .iter()
        .filter_map(|p| process_row(*p))
        .map(|r| r.cpu_ticks)
        .sum();
    ticks * (1_000_000_000 / clock_ticks())
}

fn read_u64(p: &Path) -> Option<u64> {
    fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// Host memory (MemTotal) in bytes.
pub fn host_memory() -> u64 {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Memory use and limit: the cgroup's (v1 usage less page cache, as docker; v2
/// memory.current) where there is a memory cgroup, else the processes' RSS and the
/// host's memory.
fn memory(c: &Container, pids: &[i32]) -> (u64, u64) {
    let host = host_memory();
    for d in &c.cgroups {
        if let Some(usage) = read_u64(&d.join("memory.usage_in_bytes")) {
            let stat = fs::read_to_string(d.join("memory.stat")).unwrap_or_default();
            let cache = stat
                .lines()
                .find_map(|l| l.strip_prefix("total_inactive_file "))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
            let limit = read_u64(&d.join("memory.limit_in_bytes")).unwrap_or(host);
            return (usage.saturating_sub(cache), limit.min(host));
        }
        if let Some(usage) = read_u64(&d.join("memory.current")) {
            let limit = read_u64(&d.join("memory.max")).unwrap_or(host);
            return (usage, limit.min(host));
        }
    }
    let rss = pids
        .iter()
        .filter_map(|p| process_row(*p))
        .map(|r| r.rss_bytes)
        .sum();
    (rss, host)
}

/// CPU, memory and pids of the named containers (every running one when `names` is
/// empty), CPU measured over `interval`. A container that is not running shows zeros.
pub fn stats(root: &Path, names: &[String], interval: Duration) -> Result<Vec<ContainerStats>> {
    let all: Vec<Container> = if names.is_empty() {
        crate::lifecycle::list(root, false)?
    } else {
        names
            .iter()
            .map(|n| state::find_container(root, n))
            .collect::<Result<_>>()?
    };
    let first: Vec<Option<Sample>> = all.iter().map(sample).collect();
    std::thread::sleep(interval);
    let mut out = Vec::new();
    for (c, before) in all.iter().zip(first) {
        let mut s = ContainerStats {
            id: c.id.clone(),
            name: c.name.clone(),
            cpu_percent: 0.0,
            mem_usage: 0,
            mem_limit: 0,
            pids: 0,
        };
        if let (Some(before), Some(after)) = (before, sample(c)) {
            let wall = after.at.duration_since(before.at).as_nanos().max(1) as f64;
            s.cpu_percent = after.cpu_ns.saturating_sub(before.cpu_ns) as f64 / wall * 100.0;
            let pids = ns_pids(c).unwrap_or_default();
            (s.mem_usage, s.mem_limit) = memory(c, &pids);
            s.pids = pids.len() as u64;
        }
        out.push(s);
    }
    Ok(out)
}

fn sample(c: &Container) -> Option<Sample> {
    if c.live_status() != Status::Running || !c.pid_alive() {
        return None;
    }
    let pids = ns_pids(c).ok()?;
    Some(Sample {
        cpu_ns: cpu_ns(c, &pids),
        at: Instant::now(),
    })
}
