//! The supervisor: the `unionctl` process that owns one running container. It makes
//! the cgroups, (rootless) the user namespace, the union mount, clones the container's
//! pid 1 into new namespaces, relays signals and the tty, waits, cleans up and records
//! the exit status.
use super::cgroups::{self, Cgroups, Limits};
use super::devices::HostDevice;
use super::linux;
use super::logfile::{self, LogLimits, LogWriter, Stream};
use super::process::{self, ChildPipes, ContainerPlan, ProcessPlan};
use super::rootfs::RootfsPlan;
use super::state::{self, Container, Status};
use super::{idmap, tty, union};
use crate::error::{Context, Error, Result, io};
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Where the container's stdio goes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Stdio {
    /// Foreground: shares our stdin (with -i); its output (pipes or a pty) is relayed to
    /// our stdout and stderr and logged.
    Inherit,
    /// Detached: output logged only, no stdin but through `attach`.
    Log,
}

/// Runs the container to its end and returns its exit code. `ready` (detached start)
/// gets "ok" once the command runs or the error text if it cannot start.
/// With a restart policy (`--restart`) the command is started again after each exit the
/// policy allows, after docker's back-off (100 ms, doubling), until `stop` or `kill`.
pub fn supervise(
    c: &mut Container,
    stdio: Stdio,
    ready: Option<OwnedFd>,
    first_client: Option<std::os::unix::net::UnixStream>,
) -> Result<i32> {
    let mut ready = ready;
    let mut first_client = first_client;
    // Rootless: the user namespace is entered once; later runs reuse it.
    let mut userns: Option<bool> = None;
    loop {
        let started = start(c, stdio, &mut userns);
        let mut running = match started {
            Ok(Some(r)) => r,
            Ok(None) => {
                // A stop landed while this restart started: it ends here, as its last run.
                if let Some(fd) = ready.take() {
                    let _ = linux::write_all_fd(fd.as_raw_fd(), b"ok");
                }
                let code = c.exit_code.unwrap_or(0);
                return finish(c, &Cgroups::default(), code);
            }
            Err(e) => {
                if let Some(fd) = &ready {
                    let _ = linux::write_all_fd(fd.as_raw_fd(), e.chain().as_bytes());
                }
                if ready.is_none() && c.restart_count > 0 {
                    // A restart that cannot start ends the container, as a failed run.
                    eprintln!("unionctl: restart: {}", e.chain());
                    return finish(c, &Cgroups::default(), crate::process::SETUP_FAILED);
                }
                return Err(e);
            }
        };
        if let Some((code, what)) = running.not_run.take() {
            // Ended, as docker's: no restart, and its exit is recorded before `run -d`
            // or `start` hears of it.
            let status = running.wait(c, stdio, first_client.take());
            let ended = finish(c, &running.cgroups, status);
            if let Some(fd) = ready.take() {
                let said = process::not_run_message(code, &what);
                let _ = linux::write_all_fd(fd.as_raw_fd(), said.as_bytes());
            }
            return ended;
        }
        if let Some(fd) = ready.take() {
            let _ = linux::write_all_fd(fd.as_raw_fd(), b"ok");
        }
        // The first run only: a restart's output reaches clients that attach to it.
        let code = running.wait(c, stdio, first_client.take());
        crate::trace::phase("exited");
        let fresh = Container::load(&c.dir)?;
        let stopped = fresh.stopped_by_user || running.terminated.get();
        let again = c
            .config
            .restart
            .should_restart(code, fresh.restart_count, stopped);
        if !again {
            return finish(c, &running.cgroups, code);
        }
        end_run(c, &running.cgroups, code)?;
        if !back_off(c)? || !count_restart(c)? {
            return finish(c, &Cgroups::default(), code);
        }
    }
}

/// Counts the restart about to start, unless a user stopped the container since the
/// back-off last looked: one decision under the record's lock, so a `stop` either lands
/// before it (and nothing starts) or after it (and finds the new run to stop).
fn count_restart(c: &mut Container) -> Result<bool> {
    let mut go = false;
    c.update(|r| {
        go = !r.stopped_by_user;
        if go {
            r.restart_count += 1;
        }
    })?;
    Ok(go)
}

/// Between two runs: the union unmounted, the cgroups gone, the exit recorded; the
/// container stays `running` (docker's "restarting") under this supervisor.
fn end_run(c: &mut Container, cg: &Cgroups, code: i32) -> Result<()> {
    let umount = union::unmount(&c.merged());
    cg.remove();
    c.update(|r| {
        r.exit_code = Some(code);
        r.pid = None;
        r.pid_start = None;
        r.paused = false;
        r.finished_at = Some(crate::timestamp::now_nanos());
    })?;
    umount
}

/// Waits docker's back-off before a restart (100 ms doubling per restart, at most a
/// minute); false when a user stopped the container meanwhile (woken by the record's
/// rewrite, not by a timer).
fn back_off(c: &Container) -> Result<bool> {
    let n = c.restart_count.min(10);
    let delay = std::time::Duration::from_millis((100u64 << n).min(60_000));
    let deadline = std::time::Instant::now() + delay;
    let watch = linux::watch_dir(&c.dir)?;
    loop {
        if Container::load(&c.dir)?.stopped_by_user {
            return Ok(false);
        }
        if !linux::wait_readable(&[watch.as_raw_fd()], Some(deadline)) {
            return Ok(true);
        }
        linux::drain(watch.as_raw_fd());
    }
}

struct Running {
    pid: libc::pid_t,
    cgroups: Cgroups,
    io: Io,
    /// A terminating signal sent to us was passed on (ctrl-c of a foreground run).
    terminated: std::cell::Cell<bool>,
    /// The command could not run (its exit status, why): pid 1 exits with it at once.
    not_run: Option<(i32, String)>,
}

/// The supervisor's ends of the container's stdio.
struct Io {
    pty_master: Option<OwnedFd>,
    signals: nix::sys::signalfd::SignalFd,
    /// Without a tty: the container's stdout and stderr pipes.
    pipes: Vec<(OwnedFd, Stream)>,
    /// Detached with -i and no tty: the container's stdin pipe.
    input: Option<OwnedFd>,
    /// Detached: where `attach` connects.
    attach: Option<std::os::unix::net::UnixListener>,
}

/// Starts the command; None when a user stopped the container before it was recorded
/// running (the process started is killed again, nothing of it is left).
fn start(c: &mut Container, stdio: Stdio, userns: &mut Option<bool>) -> Result<Option<Running>> {
    // SAFETY: getter. A restart runs inside the user namespace the first run entered,
    // where we are uid 0: still rootless.
    let rootless = unsafe { libc::geteuid() } != 0 || userns.is_some();
    let limits = Limits {
        memory: c.config.memory,
        cpus: c.config.cpus,
        pids: c.config.pids_limit,
    };
    let mut devices = super::devices::resolve_all(&c.config)?;
    let privileged = c.config.security.as_ref().is_some_and(|s| s.privileged);
    if privileged && !rootless {
        // docker's privileged /dev: every host device (a --device of the same path wins).
        let host = super::devices::host_devices();
        let given: Vec<String> = devices
            .iter()
            .map(|d| d.path_in_container.clone())
            .collect();
        devices.extend(
            host.into_iter()
                .filter(|d| !given.contains(&d.path_in_container)),
        );
    }
    let rules = super::devices::cgroup_rules(&c.config, &devices);
    let cg = cgroups::create(&c.id, &limits, rules.as_deref(), rootless)?;
    crate::trace::phase("cgroups");
    let result = start_in_cgroups(c, stdio, rootless, userns, &cg, &devices);
    match result {
        Ok(Some((pid, io, not_run))) => Ok(Some(Running {
            pid,
            cgroups: cg,
            io,
            terminated: std::cell::Cell::new(false),
            not_run,
        })),
        Ok(None) => {
            cg.remove();
            Ok(None)
        }
        Err(e) => {
            cg.remove();
            Err(e)
        }
    }
}

/// pid 1, our ends of its stdio, and whether its command could not run; None: stopped
/// before it was recorded running.
type Started = Option<(libc::pid_t, Io, Option<(i32, String)>)>;

fn start_in_cgroups(
    c: &mut Container,
    stdio: Stdio,
    rootless: bool,
    userns: &mut Option<bool>,
    cg: &Cgroups,
    devices: &[HostDevice],
) -> Result<Started> {
    let mut full_idmap = true;
    if let Some(full) = *userns {
        full_idmap = full;
    } else if rootless {
        // The union must be mounted inside the user and mount namespace it is used from.
        full_idmap = idmap::enter_user_namespace(libc::CLONE_NEWNS)?;
        *userns = Some(full_idmap);
        let ns = fs::read_link("/proc/self/ns/mnt")
            .ok()
            .map(|p| p.to_string_lossy().into_owned());
        c.update(|r| r.union_mnt_ns = ns)?;
    }
    for d in [c.upper(), c.work(), c.merged()] {
        fs::create_dir_all(&d).map_err(io("mkdir", &d))?;
    }
    let init = super::initlayer::prepare(c)?;
    let layers: Vec<PathBuf> = std::iter::once(init)
        .chain(c.lowers.iter().cloned())
        .collect();
    // The union mounts while the container's namespaces are made (a network namespace
    // alone takes milliseconds); the container takes its mount namespace afterwards.
    let pending = union::spawn_mount(&layers, &c.upper(), &c.work(), &c.merged())?;
    let mut mounted = false;
    let run = RunPlan {
        stdio,
        full_idmap,
        rootless,
        devices,
    };
    let result = clone_container(c, run, cg, pending, &mut mounted);
    if result.is_err() && mounted {
        let _ = union::unmount(&c.merged());
    }
    result
}

/// Files bind-mounted over /etc in the container, written next to state.json.
fn write_etc_files(c: &Container) -> Result<Vec<(PathBuf, &'static str)>> {
    let host = c.config.network == "host";
    let hostname = &c.config.hostname;
    let hosts = if host {
        fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
        )
    };
    let mut hosts = hosts;
    for h in &c.config.add_hosts {
        hosts.push_str(&format!("{}\t{}\n", h.ip, h.name));
    }
    let resolv = match c.config.dns.is_empty() {
        true => fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        false => c
            .config
            .dns
            .iter()
            .map(|ip| format!("nameserver {ip}\n"))
            .collect(),
    };
    let mut out = Vec::new();
    for (name, data, target) in [
        ("hostname", format!("{hostname}\n"), "/etc/hostname"),
        ("hosts", hosts, "/etc/hosts"),
        ("resolv.conf", resolv, "/etc/resolv.conf"),
    ] {
        let p = c.dir.join(name);
        fs::write(&p, data).map_err(io("write", &p))?;
        out.push((p, target));
    }
    Ok(out)
}

/// How this run is made, beside the record.
#[derive(Clone, Copy)]
struct RunPlan<'a> {
    stdio: Stdio,
    full_idmap: bool,
    rootless: bool,
    /// `--device` nodes, looked up on the host.
    devices: &'a [HostDevice],
}

/// What the cloned process is told to build and run.
fn container_plan<'a>(
    c: &'a Container,
    merged: &'a Path,
    run: RunPlan<'a>,
) -> Result<ContainerPlan<'a>> {
    let full_idmap = run.full_idmap;
    let files = write_etc_files(c)?;
    let mut env = c.config.env.clone();
    super::spec::env_set(&mut env, &format!("HOSTNAME={}", c.config.hostname));
    if c.config.tty && super::spec::env_get(&env, "TERM").is_none() {
        env.push("TERM=xterm".into());
    }
    Ok(ContainerPlan {
        hostname: c.config.hostname.clone(),
        network_none: c.config.network != "host",
        rootfs: RootfsPlan {
            merged,
            volumes: &c.config.volumes,
            files,
            tty_group_mapped: full_idmap,
            privileged: c.config.security.as_ref().is_some_and(|s| s.privileged),
            read_only: c.config.read_only,
            tmpfs: &c.config.tmpfs,
            shm_size: c.config.shm_size,
            devices: run.devices,
            bind_devices: run.rootless,
        },
        process: ProcessPlan {
            argv: c.config.argv(),
            env,
            workdir: c.config.workdir.clone(),
            user: c.config.user.clone(),
            tty: c.config.tty,
            init: c.config.init,
            security: super::security::for_container(c)?,
            ulimits: c.config.ulimits.clone(),
        },
    })
}

/// The supervisor's ends of the channels to the container process.
struct ParentEnds {
    /// One byte once the cgroups are set; closing it unread means give up.
    go: OwnedFd,
    /// Setup errors; EOF alone means the command was exec'd.
    errors: OwnedFd,
    /// With a tty: the socket the pty master comes back over.
    pty: Option<OwnedFd>,
    /// Without a tty: the container's stdout and stderr.
    output: Vec<(OwnedFd, Stream)>,
    /// Detached with -i and no tty: the container's stdin.
    input: Option<OwnedFd>,
    /// Detached: where `attach` connects.
    attach: Option<std::os::unix::net::UnixListener>,
}

/// The container process's ends.
struct ChildEnds {
    pipes: ChildPipes,
    /// Without a tty: its stdout and stderr.
    output: Option<(OwnedFd, OwnedFd)>,
    input: Option<OwnedFd>,
    devnull: fs::File,
}

fn open_channels(c: &Container, detached: bool) -> Result<(ParentEnds, ChildEnds)> {
    let tty = c.config.tty;
    let (go_r, go_w) = linux::pipe()?;
    let (err_r, err_w) = linux::pipe()?;
    let (pty_parent, pty_child) = match tty {
        true => linux::socketpair().map(|(a, b)| (Some(a), Some(b)))?,
        false => (None, None),
    };
    // Output passes through us, for the log (and `attach`), stdout and stderr apart.
    let (output, child_output) = match tty {
        false => {
            let (out_r, out_w) = linux::pipe()?;
            let (err_r, err_w) = linux::pipe()?;
            (
                vec![(out_r, Stream::Stdout), (err_r, Stream::Stderr)],
                Some((out_w, err_w)),
            )
        }
        true => (Vec::new(), None),
    };
    let (in_r, in_w) = match detached && !tty && c.config.interactive {
        true => linux::pipe().map(|(r, w)| (Some(r), Some(w)))?,
        false => (None, None),
    };
    let attach = match detached {
        true => Some(tty::attach_listener(&c.id)?),
        false => None,
    };
    let devnull = fs::File::open("/dev/null").map_err(io("opening", Path::new("/dev/null")))?;
    let parent = ParentEnds {
        go: go_w,
        errors: err_r,
        pty: pty_parent,
        output,
        input: in_w,
        attach,
    };
    let child = ChildEnds {
        pipes: ChildPipes {
            go: go_r,
            errors: err_w,
            pty: pty_child,
        },
        output: child_output,
        input: in_r,
        devnull,
    };
    Ok((parent, child))
}

/// In the cloned child: the container's stdio first, then its setup; never returns.
fn child_main(plan: &ContainerPlan, ends: ChildEnds, interactive: bool, detached: bool) -> ! {
    // Container stdio before anything else can print.
    // SAFETY: dup2 onto our own stdio.
    unsafe {
        match &ends.input {
            Some(r) => libc::dup2(r.as_raw_fd(), 0),
            None if !interactive || detached => libc::dup2(ends.devnull.as_raw_fd(), 0),
            None => 0,
        };
        if let Some((out, err)) = &ends.output {
            libc::dup2(out.as_raw_fd(), 1);
            libc::dup2(err.as_raw_fd(), 2);
        }
    }
    process::container_main(plan, ends.pipes)
}

fn clone_container(
    c: &mut Container,
    run: RunPlan,
    cg: &Cgroups,
    pending: crate::fuse::daemon::PendingMount,
    mounted: &mut bool,
) -> Result<Started> {
    let stdio = run.stdio;
    let merged = c.merged();
    let plan = container_plan(c, &merged, run)?;
    let detached = stdio == Stdio::Log;
    let (ends, child_ends) = open_channels(c, detached)?;

    // Blocked before the clone: the child unblocks them just before exec.
    let signals = tty::forwarded_signals()?;

    // No CLONE_NEWNS: the child unshares its mount namespace once the union is mounted.
    let mut flags = libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
    if c.config.network != "host" {
        flags |= libc::CLONE_NEWNET;
    }
    let child = linux::clone_fork(flags).context("clone the container process")?;
    let Some(pid) = child else {
        drop(ends);
        child_main(&plan, child_ends, c.config.interactive, detached)
    };
    drop(child_ends);
    crate::trace::phase("cloned");
    let master = match start_child(pid, pending, cg, &ends, mounted) {
        Ok(m) => m,
        Err(e) => {
            let _ = linux::kill(pid, libc::SIGKILL);
            let _ = linux::wait_pid(pid);
            return Err(e);
        }
    };
    drop(ends.go);
    let msg = linux::read_to_end_fd(ends.errors.as_raw_fd()).unwrap_or_default();
    crate::trace::phase("execed");
    // A command that cannot run is a run that exits at once (127 or 126), as docker's.
    let not_run = process::not_run(&msg);
    if !msg.is_empty() && not_run.is_none() {
        let _ = linux::wait_pid(pid);
        bail!("container setup: {}", String::from_utf8_lossy(&msg));
    }
    if !record_running(c, pid, cg)? {
        let _ = linux::kill(pid, libc::SIGKILL);
        let _ = linux::wait_pid(pid);
        return Ok(None);
    }
    Ok(Some((
        pid,
        Io {
            pty_master: master,
            signals,
            pipes: ends.output,
            input: ends.input,
            attach: ends.attach,
        },
        not_run,
    )))
}

/// Waits for the union, puts the child in its cgroups, tells it to go and (with a tty)
/// takes its pty master. An error here leaves the child to be killed.
fn start_child(
    pid: libc::pid_t,
    pending: crate::fuse::daemon::PendingMount,
    cg: &Cgroups,
    ends: &ParentEnds,
    mounted: &mut bool,
) -> Result<Option<OwnedFd>> {
    // Joining a v1 cgroup takes milliseconds (every root container joins its device
    // cgroup): done while the union daemon mounts.
    let joined = cg.add(pid);
    crate::trace::phase("cgroup joined");
    // Waited for even when the join failed, so the caller's clean-up unmounts it.
    pending.wait()?;
    *mounted = true;
    crate::trace::phase("mounted");
    joined?;
    linux::write_all_fd(ends.go.as_raw_fd(), b"g").context("start the container")?;
    // Setup errors arrive on the error pipe; EOF alone means the command was exec'd.
    let Some(sock) = &ends.pty else {
        return Ok(None);
    };
    match linux::recv_fd(sock.as_raw_fd()) {
        Ok(fd) => Ok(Some(fd)),
        Err(_) => {
            let msg = linux::read_to_end_fd(ends.errors.as_raw_fd()).unwrap_or_default();
            bail!("container setup: {}", String::from_utf8_lossy(&msg))
        }
    }
}

/// Records that pid 1 runs; false (nothing recorded) when a user stopped the container
/// meanwhile: under the record's lock, so a `stop` either sees this pid or is seen here.
fn record_running(c: &mut Container, pid: libc::pid_t, cg: &Cgroups) -> Result<bool> {
    let dirs = cg.dirs.clone();
    let mut recorded = false;
    c.update(|r| {
        if r.stopped_by_user {
            return;
        }
        recorded = true;
        r.status = Status::Running;
        r.pid = Some(pid);
        r.pid_start = state::proc_start_time(pid);
        r.started_at = Some(crate::timestamp::now_nanos());
        r.exit_code = None;
        r.finished_at = None;
        r.paused = false;
        r.cgroups = dirs;
    })?;
    Ok(recorded)
}

impl Running {
    /// Relays signals and the tty until pid 1 exits; returns its exit code. FIRST_CLIENT:
    /// `start -a`'s connection, made before the command started.
    fn wait(
        &mut self,
        c: &Container,
        stdio: Stdio,
        first_client: Option<std::os::unix::net::UnixStream>,
    ) -> i32 {
        let code = self.relay(c, stdio, first_client);
        match code {
            Ok(code) => code,
            Err(e) => {
                eprintln!("unionctl: {}", e.chain());
                let _ = linux::kill(self.pid, libc::SIGKILL);
                linux::wait_pid(self.pid).unwrap_or(255)
            }
        }
    }

    fn relay(
        &mut self,
        c: &Container,
        stdio: Stdio,
        first_client: Option<std::os::unix::net::UnixStream>,
    ) -> Result<i32> {
        let limits = LogLimits {
            max_size: c.config.log_max_size.unwrap_or(logfile::DEFAULT_MAX_SIZE),
            max_files: c.config.log_max_files.unwrap_or(logfile::DEFAULT_MAX_FILES),
        };
        // Closed (dropped) before the exit is recorded: a `logs -f` that sees the exit
        // has every record. A log that cannot be opened costs the log, not the container.
        let mut log = LogWriter::open(&c.log_path(), limits)
            .inspect_err(|e| log::warn!("container {}: no log: {}", c.name, e.chain()))
            .ok();
        tty::relay(tty::Relay {
            pid: self.pid,
            signals: &self.io.signals,
            master: self.io.pty_master.as_ref().map(|m| m.as_raw_fd()),
            pipes: std::mem::take(&mut self.io.pipes),
            foreground: stdio == Stdio::Inherit,
            interactive: c.config.interactive,
            log: log.as_mut(),
            container_input: self.io.input.as_ref().map(|f| f.as_raw_fd()),
            attach: self.io.attach.as_ref(),
            first_client,
            terminated: Some(&self.terminated),
        })
    }
}

/// After pid 1 exited: unmount, remove cgroups, record the exit, honour --rm.
fn finish(c: &mut Container, cg: &Cgroups, code: i32) -> Result<i32> {
    // Already unmounted when a restart policy's back-off was cut short.
    let umount = match union::is_mounted(&c.merged()) {
        true => union::unmount(&c.merged()),
        false => Ok(()),
    };
    crate::trace::phase("unmounted");
    cg.remove();
    // cgroups made meanwhile (the freezer of a pause) are in the record.
    if let Ok(fresh) = Container::load(&c.dir) {
        cgroups::remove_dirs(&fresh.cgroups);
    }
    crate::trace::phase("cgroups removed");
    c.update(|r| {
        r.status = Status::Exited;
        r.exit_code = Some(code);
        r.pid = None;
        r.pid_start = None;
        r.paused = false;
        r.finished_at = Some(crate::timestamp::now_nanos());
        r.supervisor_pid = None;
        r.supervisor_start = None;
        r.union_mnt_ns = None;
        r.cgroups.clear();
    })?;
    umount?;
    crate::trace::phase("state saved");
    if c.config.auto_remove {
        remove_container_files(c)?;
        crate::trace::phase("removed");
    }
    Ok(code)
}

/// Deletes a container's directory (and its anonymous volumes). Rootless, files the
/// container made belong to sub-ids: delete from inside a user namespace.
pub fn remove_container_files(c: &Container) -> Result<()> {
    let anon: Vec<PathBuf> = c
        .config
        .volumes
        .iter()
        .filter(|v| v.anonymous)
        .map(|v| v.host.clone())
        .collect();
    let mut dirs = anon;
    dirs.push(c.dir.clone());
    remove_trees(&dirs)
}

/// Removes the trees: each is renamed to a hidden name beside it first (gone from every
/// listing at once), then a detached child deletes them, so that `run --rm` and `rm`
/// need not wait for the disk.
pub fn remove_trees(dirs: &[PathBuf]) -> Result<()> {
    let mut trash = Vec::new();
    for d in dirs {
        let (Some(parent), Some(name)) = (d.parent(), d.file_name()) else {
            continue;
        };
        let hidden = parent.join(format!(
            ".trash-{}-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        match fs::rename(d, &hidden) {
            Ok(()) => trash.push(hidden),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).map_err(io("remove", d)),
        }
    }
    if trash.is_empty() {
        return Ok(());
    }
    match linux::clone_fork(0) {
        Ok(None) => {
            // Nothing of ours may stay open here (a caller may wait for EOF on a pipe).
            if let Ok(null) = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
            {
                // SAFETY: dup2/close_range on our own fd table.
                unsafe {
                    for fd in 0..3 {
                        libc::dup2(null.as_raw_fd(), fd);
                    }
                    libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
                    libc::setsid();
                }
            }
            linux::exit_now(if delete_now(&trash).is_ok() { 0 } else { 1 })
        }
        Ok(Some(_)) => Ok(()),
        Err(_) => delete_now(&trash),
    }
}

fn delete_now(dirs: &[PathBuf]) -> Result<()> {
    let try_plain = || -> Result<()> {
        for d in dirs {
            match fs::remove_dir_all(d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).map_err(io("remove", d)),
            }
        }
        Ok(())
    };
    // SAFETY: getter.
    let rootless = unsafe { libc::geteuid() } != 0;
    if !rootless {
        return try_plain();
    }
    if try_plain().is_ok() {
        return Ok(());
    }
    let child = linux::clone_fork(0).context("fork")?;
    match child {
        None => {
            let ok = idmap::enter_user_namespace(0).is_ok() && try_plain().is_ok();
            linux::exit_now(if ok { 0 } else { 1 })
        }
        Some(pid) => {
            if linux::wait_pid(pid)? != 0 {
                try_plain()?;
            }
            Ok(())
        }
    }
}

/// Start a detached supervisor for `c` (run -d, start): fork, new session, output to the
/// log; returns once the command runs, or with the error that stopped it.
/// `start -a`'s two connections, made before the command starts: the output (the first
/// attach client) and the exit status, written once the container's run is over (its
/// record may be gone by then, with `--rm`).
pub struct Attached {
    pub output: std::os::unix::net::UnixStream,
    pub status: std::os::unix::net::UnixStream,
}

pub fn spawn_detached(c: &Container, attached: Option<Attached>) -> Result<()> {
    let (ready_r, ready_w) = linux::pipe()?;
    let child = linux::clone_fork(0).context("fork the supervisor")?;
    match child {
        None => {
            drop(ready_r);
            // SAFETY: new session, stdio to /dev/null and the log.
            unsafe { libc::setsid() };
            // A long-lived process must not keep the caller's working directory busy.
            let _ = std::env::set_current_dir("/");
            // The supervisor's own complaints; the container's output is in ctr.log.
            let log = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(c.supervisor_log_path());
            let devnull = fs::File::open("/dev/null");
            if let (Ok(log), Ok(null)) = (&log, &devnull) {
                // SAFETY: dup2 onto our stdio.
                unsafe {
                    libc::dup2(null.as_raw_fd(), 0);
                    libc::dup2(null.as_raw_fd(), 1);
                    libc::dup2(log.as_raw_fd(), 2);
                }
            }
            let mut c = c.clone();
            let me = std::process::id() as i32;
            let ok = c.update(|r| {
                r.supervisor_pid = Some(me);
                r.supervisor_start = state::proc_start_time(me);
            });
            let (first_client, status) = match attached {
                Some(a) => (Some(a.output), Some(a.status)),
                None => (None, None),
            };
            let code =
                match ok.and_then(|_| supervise(&mut c, Stdio::Log, Some(ready_w), first_client)) {
                    Ok(exit) => {
                        if let Some(mut s) = status {
                            let _ = std::io::Write::write_all(&mut s, exit.to_string().as_bytes());
                        }
                        0
                    }
                    Err(e) => {
                        eprintln!("unionctl: {}", e.chain());
                        1
                    }
                };
            linux::exit_now(code)
        }
        Some(pid) => {
            drop(ready_w);
            let msg = linux::read_to_end_fd(ready_r.as_raw_fd()).unwrap_or_default();
            if msg == b"ok" {
                return Ok(());
            }
            // It ran and exited at once; the supervisor records its exit.
            if let Some((code, what)) = process::not_run(&msg) {
                return Err(Error::NotRun(code, what));
            }
            let _ = linux::wait_pid(pid);
            if msg.is_empty() {
                bail!("the container's supervisor died before the container started");
            }
            bail!("{}", String::from_utf8_lossy(&msg))
        }
    }
}

/// Claims `c` for a foreground supervisor (this process).
pub fn claim_foreground(c: &mut Container) -> Result<()> {
    let me = std::process::id() as i32;
    c.update(|r| {
        r.supervisor_pid = Some(me);
        r.supervisor_start = state::proc_start_time(me);
    })
}

/// Best-effort cleanup of a container whose supervisor is gone (killed): kill what
/// is left, unmount, remove cgroups, record it as exited.
pub fn recover(c: &mut Container) -> Result<()> {
    // Not our child (its supervisor was): wait for its exit on a pidfd, opened before
    // the check that the pid is still the container's.
    if let Some(pid) = c.pid
        && let Some(pidfd) = linux::pidfd_open(pid).filter(|_| c.pid_alive())
    {
        let _ = linux::kill(pid, libc::SIGKILL);
        let until = std::time::Instant::now() + std::time::Duration::from_secs(1);
        linux::wait_readable(&[pidfd.as_raw_fd()], Some(until));
    }
    if union::is_mounted(&c.merged()) {
        let _ = union::unmount(&c.merged());
    }
    if let Some(ns) = &c.union_mnt_ns {
        // Rootless: the union daemon serves a mount only its own namespace sees.
        kill_mount_namespace(ns);
    }
    cgroups::remove_dirs(&c.cgroups);
    c.update(|r| {
        if r.status == Status::Running {
            r.status = Status::Exited;
            r.exit_code = r.exit_code.or(Some(137));
            r.finished_at = Some(crate::timestamp::now_nanos());
        }
        r.pid = None;
        r.pid_start = None;
        r.supervisor_pid = None;
        r.supervisor_start = None;
        r.union_mnt_ns = None;
        r.paused = false;
    })
}

/// Kills every process (of ours) in the mount namespace `ns` (`mnt:[N]`).
fn kill_mount_namespace(ns: &str) {
    let ours = fs::read_link("/proc/self/ns/mnt").map(|p| p.to_string_lossy().into_owned());
    if ours.as_deref().ok() == Some(ns) {
        return;
    }
    let Ok(entries) = fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if fs::read_link(format!("/proc/{pid}/ns/mnt"))
            .map(|p| p.to_string_lossy() == ns)
            .unwrap_or(false)
        {
            let _ = linux::kill(pid, libc::SIGKILL);
        }
    }
}
