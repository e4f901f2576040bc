//! Concurrency on one unionctl mount: a copy-up must not stall its neighbours, and many
//! processes changing one small tree at once must never see an error that kernel
//! overlayfs would not give (EIO, ESTALE, EXDEV, ENOTCONN, EBADF), nor hang; the upper
//! dir they leave must read the same through unionctl and through the kernel.
mod common;

use common::Scratch;
use common::mounts::{UnionDirs, Watchdog, mount_kernel, mount_unionctl};
use common::tree;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Big enough that a copy-up takes far longer than a stat and one listing.
const BIG: u64 = 2 << 30;

fn union_dirs(s: &Scratch, lower: PathBuf) -> UnionDirs {
    UnionDirs {
        lowers: vec![lower],
        upper: Some(s.mkdir("upper")),
        work: Some(s.mkdir("work")),
    }
}

/// Writes a lower file of BIG bytes of real data (no holes: a copy-up must copy it).
fn write_big(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let block: Vec<u8> = (0..1 << 20).map(|i| (i * 7 + 3) as u8).collect();
    for _ in 0..BIG >> 20 {
        f.write_all(&block).unwrap();
    }
    f.sync_all().unwrap();
}

/// stat that the kernel must ask the daemon for (no cached attributes).
fn statx_sync(path: &Path) -> std::io::Result<u64> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let flags = libc::AT_SYMLINK_NOFOLLOW | libc::AT_STATX_FORCE_SYNC;
    // SAFETY: valid path and buffer.
    let r = unsafe { libc::statx(libc::AT_FDCWD, c.as_ptr(), flags, libc::STATX_ALL, &mut stx) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stx.stx_size)
}

/// An inotify watch for names created in DIR.
fn watch_creates(dir: &Path) -> std::fs::File {
    use std::os::fd::FromRawFd;
    // SAFETY: plain syscalls; the new descriptor is owned by the File.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    assert!(
        fd >= 0,
        "inotify_init1: {}",
        std::io::Error::last_os_error()
    );
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    let w = unsafe { libc::inotify_add_watch(fd, c.as_ptr(), libc::IN_CREATE) };
    assert!(
        w >= 0,
        "inotify_add_watch: {}",
        std::io::Error::last_os_error()
    );
    unsafe { std::fs::File::from_raw_fd(fd) }
}

/// Blocks until the watch reports a created file (not a dir: the copy-up of the parent
/// dir passes through the work dir first), returning its name.
fn wait_for_create(f: &mut std::fs::File) -> String {
    let mut buf = [0u8; 4096];
    let head = std::mem::size_of::<libc::inotify_event>();
    loop {
        let n = f.read(&mut buf).expect("inotify read");
        let mut at = 0;
        while at + head <= n {
            let mask = u32::from_ne_bytes(buf[at + 4..at + 8].try_into().unwrap());
            let len = u32::from_ne_bytes(buf[at + 12..at + 16].try_into().unwrap()) as usize;
            let name = &buf[at + head..at + head + len];
            let end = name.iter().position(|&b| b == 0).unwrap_or(len);
            if mask & libc::IN_ISDIR == 0 {
                return String::from_utf8_lossy(&name[..end]).into_owned();
            }
            at += head + len;
        }
    }
}

#[test]
fn stat_and_listing_answer_during_a_copy_up() {
    assert!(common::is_root(), "mounts FUSE: run as root");
    let s = Scratch::new("conc-copyup");
    let _watchdog = Watchdog::new("copy-up test", s.path(), 600);
    let lower = s.mkdir("lower");
    std::fs::create_dir(lower.join("d")).unwrap();
    write_big(&lower.join("d/big"));
    for i in 0..20 {
        std::fs::write(lower.join(format!("d/small{i}")), b"x").unwrap();
    }
    let dirs = union_dirs(&s, lower);
    let merged = s.mkdir("merged");
    let mut m = mount_unionctl(&dirs, &merged, &[]).expect("mount");
    // The copy goes to a temp file in WORK/work before it is renamed into place.
    let work = dirs.work.as_ref().unwrap().join("work");
    let mut ino = watch_creates(&work);
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("echo x >> \"$1\"")
        .arg("sh")
        .arg(merged.join("d/big"))
        .spawn()
        .unwrap();
    let tmp = work.join(wait_for_create(&mut ino));
    // The copy-up has begun. Neither answer may wait for it.
    let size = statx_sync(&merged.join("d/big")).expect("stat during copy-up");
    assert_eq!(
        size, BIG,
        "the file shows its lower size until the copy is in place"
    );
    let mut listed = BTreeMap::new();
    for e in std::fs::read_dir(merged.join("d")).unwrap() {
        let e = e.unwrap();
        listed.insert(e.file_name(), e.metadata().unwrap().len());
    }
    assert_eq!(listed.len(), 21);
    let still_copying = tmp.exists();
    let running = child.try_wait().unwrap().is_none();
    assert!(
        still_copying && running,
        "stat and listing returned only after the copy-up (temp file there: \
         {still_copying}, writer running: {running})"
    );
    assert!(child.wait().unwrap().success());
    assert_eq!(statx_sync(&merged.join("d/big")).unwrap(), BIG + 2);
    m.unmount().unwrap();
}

// ---- stress ----

const WORKERS: usize = 6;
const STRESS_SECS: u64 = 35;
/// Errnos the kernel never gives for these operations on overlayfs.
const BAD: [i32; 5] = [
    libc::EIO,
    libc::ESTALE,
    libc::EXDEV,
    libc::ENOTCONN,
    libc::EBADF,
];

fn stress_lower(root: &Path) {
    for d in ["a", "a/s", "b", "b/s", "c", "c/s/t"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    for (i, d) in ["a", "a/s", "b", "b/s", "c", "c/s", "c/s/t"]
        .iter()
        .enumerate()
    {
        for f in 0..3 {
            let p = root.join(format!("{d}/f{f}"));
            std::fs::write(&p, format!("lower {d} {f} {}\n", "z".repeat(i * 100))).unwrap();
        }
    }
    std::fs::hard_link(root.join("a/f0"), root.join("b/h0")).unwrap();
    std::os::unix::fs::symlink("../a/f1", root.join("b/l1")).unwrap();
}

/// xorshift64*: deterministic per worker, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[(self.next() % v.len() as u64) as usize]
    }
}

const DIRS: [&str; 9] = ["", "a", "a/s", "b", "b/s", "c", "c/s", "c/s/t", "a/n"];
const NAMES: [&str; 10] = ["f0", "f1", "f2", "h0", "l1", "s", "t", "n", "g0", "g1"];

fn rand_path(rng: &mut Rng, root: &Path) -> PathBuf {
    let d = rng.pick(&DIRS);
    root.join(d).join(rng.pick(&NAMES))
}

/// One random operation; returns its name and result.
fn one_op(rng: &mut Rng, root: &Path) -> (&'static str, PathBuf, std::io::Result<()>) {
    let p = rand_path(rng, root);
    let q = rand_path(rng, root);
    let r: (&str, std::io::Result<()>) = match rng.next() % 14 {
        0 | 1 => ("rename", std::fs::rename(&p, &q)),
        2 => ("create", std::fs::write(&p, b"new\n")),
        3 => ("unlink", std::fs::remove_file(&p)),
        4 => ("link", std::fs::hard_link(&p, &q)),
        5 => ("append", append_fsync(&p)),
        6 => ("truncate", truncate(&p, rng.next() % 300)),
        7 => (
            "chmod",
            std::fs::set_permissions(
                &p,
                std::fs::Permissions::from_mode(0o600 + (rng.next() % 64) as u32),
            ),
        ),
        8 => ("stat", std::fs::symlink_metadata(&p).map(drop)),
        9 => ("listing", list(p.parent().unwrap())),
        10 => ("mkdir", std::fs::create_dir(&p)),
        11 => ("rmdir", std::fs::remove_dir(&p)),
        12 => ("read", read_all(&p)),
        _ => ("statfs-walk", list(root)),
    };
    (r.0, p, r.1)
}

fn append_fsync(p: &Path) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().append(true).open(p)?;
    f.write_all(b"appended line\n")?;
    f.sync_all()
}

fn truncate(p: &Path, n: u64) -> std::io::Result<()> {
    std::fs::OpenOptions::new().write(true).open(p)?.set_len(n)
}

fn read_all(p: &Path) -> std::io::Result<()> {
    let mut v = Vec::new();
    std::fs::File::open(p)?.read_to_end(&mut v).map(drop)
}

/// A listing with attributes, as `ls -l`.
fn list(d: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(d)? {
        let e = e?;
        match std::fs::symlink_metadata(e.path()) {
            // Gone meanwhile: another worker's doing.
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {}
            r => {
                r?;
            }
        }
    }
    Ok(())
}

/// The worker process: runs random operations on CONC_ROOT until CONC_SECS pass, then
/// writes "ops N" and every bad result to CONC_OUT.
#[test]
#[ignore = "run by stress_processes_see_no_bad_errno in its own process"]
fn stress_worker() {
    let Some(root) = std::env::var_os("CONC_ROOT") else {
        return;
    };
    let root = PathBuf::from(root);
    let seed: u64 = std::env::var("CONC_SEED").unwrap().parse().unwrap();
    let secs: u64 = std::env::var("CONC_SECS").unwrap().parse().unwrap();
    let mut out = std::fs::File::create(std::env::var_os("CONC_OUT").unwrap()).unwrap();
    let mut rng = Rng(seed | 1);
    let end = Instant::now() + Duration::from_secs(secs);
    let mut ops = 0u64;
    let mut errs: BTreeMap<String, u64> = BTreeMap::new();
    while Instant::now() < end {
        for _ in 0..64 {
            let (op, p, r) = one_op(&mut rng, &root);
            ops += 1;
            if let Err(e) = r {
                let n = e.raw_os_error().unwrap_or(0);
                *errs
                    .entry(format!("{op} {}", common::errno_name(n)))
                    .or_default() += 1;
                if BAD.contains(&n) {
                    writeln!(out, "bad {op} {}: {e}", p.display()).unwrap();
                }
            }
        }
    }
    for (k, v) in errs {
        writeln!(out, "errno {k} {v}").unwrap();
    }
    writeln!(out, "ops {ops}").unwrap();
}

fn run_workers(root: &Path, outs: &Path, n: usize, secs: u64) -> (u64, Vec<String>) {
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..n)
        .map(|i| {
            Command::new(&exe)
                .args([
                    "stress_worker",
                    "--exact",
                    "--include-ignored",
                    "--test-threads=1",
                ])
                .env("CONC_ROOT", root)
                .env("CONC_SEED", format!("{}", 0x9E37_79B9 * (i as u64 + 1)))
                .env("CONC_SECS", secs.to_string())
                .env("CONC_OUT", outs.join(format!("w{i}")))
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ops = 0;
    let mut bad = Vec::new();
    for (i, mut c) in children.into_iter().enumerate() {
        let st = c.wait().unwrap();
        assert!(st.success(), "worker {i} failed: {st}");
        let txt = std::fs::read_to_string(outs.join(format!("w{i}"))).unwrap();
        for l in txt.lines() {
            if let Some(n) = l.strip_prefix("ops ") {
                ops += n.parse::<u64>().unwrap();
            } else if l.starts_with("bad ") {
                bad.push(format!("worker {i}: {l}"));
            } else {
                common::report(&format!("worker {i}: {l}"));
            }
        }
    }
    (ops, bad)
}

#[test]
fn stress_processes_see_no_bad_errno() {
    assert!(common::is_root(), "mounts FUSE and overlayfs: run as root");
    common::mounts::ensure_fusectl();
    let secs: u64 = std::env::var("CONC_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(STRESS_SECS);
    let workers: usize = std::env::var("CONC_WORKERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(WORKERS);
    let s = Scratch::new("conc-stress");
    // A hung request aborts the connection: the workers then fail with ENOTCONN.
    let _watchdog = Watchdog::new("stress test", s.path(), secs * 4 + 120);
    let lower = s.mkdir("lower");
    stress_lower(&lower);
    let dirs = union_dirs(&s, lower);
    let merged = s.mkdir("merged");
    let outs = s.mkdir("outs");
    let mut m = mount_unionctl(&dirs, &merged, &[]).expect("mount");
    let (ops, bad) = run_workers(&merged, &outs, workers, secs);
    common::report(&format!(
        "{workers} workers, {ops} operations, {} bad",
        bad.len()
    ));
    m.unmount().unwrap();
    // The daemon logs every unexpected error with its operation and path.
    let log = std::fs::read_to_string(s.path().join("work.log")).unwrap_or_default();
    assert!(
        bad.is_empty(),
        "errnos overlayfs never gives:\n{}\ndaemon log:\n{log}",
        bad.join("\n")
    );
    assert!(ops > 1000, "only {ops} operations ran");

    let mut m = mount_unionctl(&dirs, &merged, &[]).expect("remount");
    let ours = tree::snapshot(&merged).unwrap();
    m.unmount().unwrap();
    let mut k = mount_kernel(&dirs, &merged).expect("kernel mount");
    let kernel = tree::snapshot(&merged).unwrap();
    k.unmount().unwrap();
    let d = tree::diff("kernel", &kernel, "unionctl", &ours, 20);
    assert!(
        d.is_empty(),
        "remount differs from the kernel's view:\n{}",
        d.join("\n")
    );
}

// ---- which thread serves, and where ----

/// Field N (1-based) of /proc/PID/task/TID/stat.
fn stat_field(task: &Path, n: usize) -> String {
    let stat = std::fs::read_to_string(task.join("stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    rest.split_whitespace().nth(n - 3).unwrap().to_string()
}

/// The pid of the daemon serving MERGED (its root's `user.unionctl.pid`).
fn daemon_pid(merged: &Path) -> u32 {
    let v = xattr::get(merged, "user.unionctl.pid").unwrap().unwrap();
    String::from_utf8(v).unwrap().parse().unwrap()
}

/// The daemon's threads at SCHED_IDLE, each with the CPUs it may run on.
fn idle_threads(pid: u32) -> Vec<String> {
    let mut found = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = t.unwrap().path();
        if stat_field(&task, 41) == libc::SCHED_IDLE.to_string() {
            let status = std::fs::read_to_string(task.join("status")).unwrap();
            let cpus = status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"));
            found.push(cpus.unwrap().trim().to_string());
        }
    }
    found
}

/// One daemon thread takes the requests; it runs at SCHED_IDLE on the CPU of its caller
/// (a wake-up across CPUs costs a FUSE round trip most of its time): a new caller on
/// another CPU takes it there. On a loaded machine the starved primary is let go and
/// parked threads serve instead, so this test runs alone (.config/nextest.toml).
#[test]
fn the_serving_thread_moves_to_its_callers_cpu() {
    assert!(common::is_root(), "mounts FUSE: run as root");
    // SAFETY: reads this process's allowed CPUs into a zeroed set.
    let cpus: Vec<usize> = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        assert_eq!(
            libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set),
            0
        );
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    };
    if cpus.len() < 2 {
        eprintln!("skipped: one CPU, nowhere to move");
        return;
    }
    let s = Scratch::new("conc-follow");
    let lower = s.mkdir("lower");
    for i in 0..10 {
        std::fs::write(lower.join(format!("f{i}")), b"x").unwrap();
    }
    let dirs = union_dirs(&s, lower);
    let merged = s.mkdir("merged");
    let mut m = mount_unionctl(&dirs, &merged, &[]).expect("mount");
    let pid = daemon_pid(&merged);
    // A caller on CPU CPU asking N times, from a thread of its own (a new caller).
    let ask = |cpu: usize, n: usize| {
        let merged = merged.clone();
        std::thread::spawn(move || {
            // SAFETY: pins this new thread to one CPU of ours.
            unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu, &mut set);
                assert_eq!(
                    libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set),
                    0
                );
            }
            for i in 0..n {
                statx_sync(&merged.join(format!("f{}", i % 10))).unwrap();
            }
        })
        .join()
        .unwrap();
    };
    for &cpu in cpus.iter().rev().take(2) {
        // Many requests (the daemon looks up a new caller's CPU at most once per 64),
        // then one from a new caller: the last thing the daemon did was to follow it (a
        // parked thread may unpin the primary while requests wait, as on a loaded
        // machine; with none waiting, nothing does).
        ask(cpu, 100);
        ask(cpu, 1);
        assert_eq!(
            idle_threads(pid),
            vec![cpu.to_string()],
            "one serving thread, at SCHED_IDLE, on the CPU of the caller (CPU {cpu})"
        );
    }
    m.unmount().unwrap();
}

/// A big copy-up runs on a copier thread at the daemon's normal priority, not in the
/// SCHED_IDLE serving thread (which an unprivileged daemon could not raise for it).
#[test]
fn big_copy_ups_run_on_a_copier_thread_of_normal_priority() {
    assert!(common::is_root(), "mounts FUSE: run as root");
    let s = Scratch::new("conc-copier");
    let lower = s.mkdir("lower");
    let data: Vec<u8> = (0..(4 << 20)).map(|i: u32| (i % 253) as u8).collect();
    std::fs::write(lower.join("big"), &data).unwrap();
    let dirs = union_dirs(&s, lower);
    let merged = s.mkdir("merged");
    let mut m = mount_unionctl(&dirs, &merged, &[]).expect("mount");
    let pid = daemon_pid(&merged);
    // Each copier thread: (task dir, CPU time so far in ns).
    let copiers = || -> Vec<(PathBuf, u64)> {
        let mut found = Vec::new();
        for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
            let task = t.unwrap().path();
            let comm = std::fs::read_to_string(task.join("comm")).unwrap();
            if comm.starts_with("copier-") {
                let ran = std::fs::read_to_string(task.join("schedstat")).unwrap();
                let ns = ran.split_whitespace().next().unwrap().parse().unwrap();
                found.push((task, ns));
            }
        }
        found.sort();
        found
    };
    let before = copiers();
    assert!(!before.is_empty(), "no copier thread in the daemon");
    for (task, _) in &before {
        assert_eq!(
            stat_field(task, 41),
            libc::SCHED_OTHER.to_string(),
            "{}: policy",
            task.display()
        );
    }
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(merged.join("big"))
        .unwrap();
    f.write_all(b"!").unwrap();
    drop(f);
    let after = copiers();
    assert!(
        before.iter().zip(&after).any(|(b, a)| a.1 > b.1),
        "no copier thread ran during the copy-up: {before:?} then {after:?}"
    );
    let got = std::fs::read(dirs.upper.as_ref().unwrap().join("big")).unwrap();
    assert!(got.len() == data.len() + 1 && got[..data.len()] == data[..]);
    m.unmount().unwrap();
}
