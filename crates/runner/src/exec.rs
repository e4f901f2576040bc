//! `exec`: a new process inside a running container, joining its namespaces, cgroups
//! and root, with the container's environment and privileges.
use super::linux;
use super::options::ExecOptions;
use super::process::{self, ProcessPlan};
use super::spec;
use super::state::{self, Container, Status};
use super::tty;
use crate::error::{Context, Error, Result, io};
use std::fs;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Namespaces joined, in order: the user namespace first (it grants the rights for the
/// others), the mount namespace last (the /proc paths above are the host's).
const NAMESPACES: [(&str, libc::c_int); 7] = [
    ("user", libc::CLONE_NEWUSER),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("pid", libc::CLONE_NEWPID),
    ("mnt", libc::CLONE_NEWNS),
];

pub fn exec(root: &Path, a: ExecOptions) -> Result<i32> {
    let c = state::find_container(root, &a.container)?;
    if c.live_status() != Status::Running || !c.pid_alive() {
        return Err(Error::NotRunning(c.name));
    }
    // A frozen cgroup would freeze the new process too, inside setns, for good.
    if c.paused {
        bail!("container {} is paused: unpause it before exec", c.name);
    }
    let pid = c.pid.context("no pid")?;
    let mut env = c.config.env.clone();
    spec::env_set(&mut env, &format!("HOSTNAME={}", c.config.hostname));
    if a.tty && spec::env_get(&env, "TERM").is_none() {
        env.push("TERM=xterm".into());
    }
    for e in &a.env {
        if let Some(entry) = spec::parse_env(e, |k| std::env::var(k).ok())? {
            spec::env_set(&mut env, &entry);
        }
    }
    if let Some(w) = &a.workdir
        && !w.starts_with('/')
    {
        bail!("-w {w:?}: the working directory must be an absolute path");
    }
    let plan = ProcessPlan {
        argv: a.cmd.clone(),
        env,
        workdir: a
            .workdir
            .clone()
            .unwrap_or_else(|| c.config.workdir.clone()),
        user: a.user.clone().or_else(|| c.config.user.clone()),
        tty: a.tty,
        init: false,
        // The container's capabilities and filter, read before leaving the host's view.
        security: super::security::for_container(&c)?,
        ulimits: c.config.ulimits.clone(),
    };
    // Open everything while /proc is still ours.
    let mut ns_fds: Vec<(OwnedFd, libc::c_int)> = Vec::new();
    for (name, flag) in NAMESPACES {
        let theirs = format!("/proc/{pid}/ns/{name}");
        let ours = format!("/proc/self/ns/{name}");
        // Joining the namespace we are already in fails for user namespaces: skip equal ones.
        if fs::read_link(&theirs).ok() == fs::read_link(&ours).ok() {
            continue;
        }
        let f = fs::File::open(&theirs).map_err(io("opening", Path::new(&theirs)))?;
        ns_fds.push((f.into(), flag));
    }
    let signals = tty::forwarded_signals()?;
    let (err_r, err_w) = linux::pipe()?;
    let (pty_parent, pty_child) = if a.tty {
        let (p, c) = linux::socketpair()?;
        (Some(p), Some(c))
    } else {
        (None, None)
    };
    let child = linux::clone_fork(0).context("fork")?;
    let Some(child) = child else {
        drop((err_r, pty_parent));
        if !a.interactive
            && !a.tty
            && let Ok(null) = fs::File::open("/dev/null")
        {
            // Without -i the command gets no input, as with run.
            // SAFETY: dup2 onto our own stdin.
            unsafe { libc::dup2(null.as_raw_fd(), 0) };
        }
        let r = enter(&c, pid, &ns_fds, &plan, &err_w, pty_child);
        let msg = match r {
            Ok(code) => linux::exit_now(code),
            Err(e) => e.chain(),
        };
        let _ = linux::write_all_fd(err_w.as_raw_fd(), msg.as_bytes());
        linux::exit_now(process::SETUP_FAILED)
    };
    drop((err_w, pty_child, ns_fds));
    let mut master = None;
    if let Some(sock) = &pty_parent {
        master = linux::recv_fd(sock.as_raw_fd()).ok();
    }
    let code = tty::relay(tty::Relay {
        pid: child,
        signals: &signals,
        master: master.as_ref().map(|m| m.as_fd().as_raw_fd()),
        pipes: Vec::new(),
        foreground: true,
        interactive: a.interactive,
        log: None,
        container_input: None,
        attach: None,
        terminated: None,
        first_client: None,
    })?;
    let msg = linux::read_to_end_fd(err_r.as_raw_fd()).unwrap_or_default();
    // A command that cannot run said so on its stderr already; its status is ours.
    if let Some((code, _)) = process::not_run(&msg) {
        return Ok(code);
    }
    if !msg.is_empty() {
        eprintln!(
            "unionctl: exec in {}: {}",
            c.name,
            String::from_utf8_lossy(&msg)
        );
        return Ok(process::SETUP_FAILED);
    }
    Ok(code)
}

fn open_root(pid: libc::pid_t) -> Result<OwnedFd> {
    let path = PathBuf::from(format!("/proc/{pid}/root"));
    Ok(fs::File::open(&path).map_err(io("opening", &path))?.into())
}

/// In the forked child: join cgroups and namespaces, fork into the pid namespace, exec.
/// Returns the exit code of the command.
fn enter(
    c: &Container,
    pid: libc::pid_t,
    ns_fds: &[(OwnedFd, libc::c_int)],
    plan: &ProcessPlan,
    err: &OwnedFd,
    pty: Option<OwnedFd>,
) -> Result<i32> {
    let me = std::process::id();
    for d in &c.cgroups {
        // Rootless containers have no cgroups; as root a failure here is not fatal (the
        // process is still confined by the namespaces), but for the device cgroup: only it
        // keeps the process from the host's devices.
        let joined = fs::write(d.join("cgroup.procs"), me.to_string());
        if d.join("devices.list").exists() {
            joined.with_context(|| format!("join the device cgroup {}", d.display()))?;
        }
    }
    let mut root_fd: Option<OwnedFd> = None;
    for (fd, flag) in ns_fds {
        if *flag == libc::CLONE_NEWNS {
            // Rootless, the union (FUSE) only admits processes of its user namespace:
            // open the container's root once inside it, before leaving our mount ns.
            root_fd = Some(open_root(pid)?);
        }
        nix::sched::setns(fd, nix::sched::CloneFlags::from_bits_retain(*flag))
            .with_context(|| format!("join namespace {flag:#x} of the container"))?;
    }
    let root_fd = match root_fd {
        Some(fd) => fd,
        None => open_root(pid)?,
    };
    nix::unistd::fchdir(&root_fd).context("enter the container's root")?;
    nix::unistd::chroot(".").context("chroot into the container's root")?;
    let child = linux::clone_fork(0).context("fork into the container")?;
    let Some(child) = child else {
        if plan.tty {
            let (master, slave) = linux::open_pty()?;
            let sock = pty.ok_or_else(|| invalid!("no pty channel"))?;
            linux::send_fd(sock.as_raw_fd(), master.as_raw_fd()).context("send pty master")?;
            drop(master);
            linux::become_tty_session(slave.as_raw_fd())?;
        }
        match process::exec_process(plan, err, true) {
            Ok(never) => match never {},
            Err(e) => return Err(e),
        }
    };
    drop(pty);
    linux::wait_pid(child)
}
