//! The supervisor's (and exec's) loop: forwards signals to the container process,
//! relays a pty or the output pipe to our terminal or the log and to `attach` clients,
//! resizes the pty on SIGWINCH, reaps the child.
use super::linux;
use super::logfile::{LogWriter, Stream};
use crate::error::{Context, Result};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};

/// Signals passed on to the container process.
const FORWARDED: [libc::c_int; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// Blocks the forwarded signals, SIGCHLD and SIGWINCH, and returns a signalfd for them.
pub fn forwarded_signals() -> Result<SignalFd> {
    let mut set = nix::sys::signal::SigSet::empty();
    for s in FORWARDED
        .iter()
        .chain([libc::SIGCHLD, libc::SIGWINCH].iter())
    {
        if let Ok(sig) = nix::sys::signal::Signal::try_from(*s) {
            set.add(sig);
        }
    }
    set.thread_block().context("block signals")?;
    SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).context("signalfd")
}

/// Abstract socket name of a container's attach endpoint (no path length limits, gone
/// with the supervisor).
fn attach_name(id: &str) -> String {
    format!("unionctl-attach-{id}")
}

pub fn attach_listener(id: &str) -> Result<UnixListener> {
    let addr = SocketAddr::from_abstract_name(attach_name(id).as_bytes())?;
    let l = UnixListener::bind_addr(&addr).context("attach socket")?;
    l.set_nonblocking(true)?;
    Ok(l)
}

pub fn attach_connect(id: &str) -> Result<UnixStream> {
    let addr = SocketAddr::from_abstract_name(attach_name(id).as_bytes())?;
    UnixStream::connect_addr(&addr).context("connect to the container's supervisor")
}

/// Only the container's owner (or root) may attach.
fn peer_allowed(s: &UnixStream) -> bool {
    // SAFETY: getsockopt fills a ucred of the given size.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::ucred>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    // SAFETY: getter.
    let me = unsafe { libc::geteuid() };
    rc == 0 && (cred.uid == me || cred.uid == 0)
}

pub struct Relay<'a> {
    /// Our child to forward to and wait for.
    pub pid: libc::pid_t,
    pub signals: &'a SignalFd,
    /// pty master of the container process, if it has a tty: its one output stream.
    pub master: Option<RawFd>,
    /// Without a tty: the read ends of the container's stdout and stderr pipes. A pipe
    /// whose copy to our stdout or stderr fails (the reader went away) is closed, so the
    /// container's next write there fails as it would have on our own output.
    pub pipes: Vec<(OwnedFd, Stream)>,
    /// Our stdin and terminal belong to the container (not detached): its output is
    /// copied to our stdout and stderr.
    pub foreground: bool,
    /// Pass our stdin to the pty.
    pub interactive: bool,
    /// Where every byte of output is logged too.
    pub log: Option<&'a mut LogWriter>,
    /// Detached with -i and no tty: the container's input pipe.
    pub container_input: Option<RawFd>,
    /// Detached: attach clients connect here.
    pub attach: Option<&'a UnixListener>,
    /// An attach client connected before the command started (`start -a`): it sees
    /// all of the output.
    pub first_client: Option<UnixStream>,
    /// Set when a terminating signal (INT, TERM, QUIT, HUP) reached us and was passed
    /// on: the user ends the container, so a restart policy no longer applies.
    pub terminated: Option<&'a std::cell::Cell<bool>>,
}

/// One output of the container being relayed.
struct Source {
    fd: RawFd,
    /// A pipe is ours to close; the pty master is not.
    pipe: Option<OwnedFd>,
    stream: Stream,
    /// Still copied to our stdout or stderr.
    to_terminal: bool,
}

/// Runs until `pid` exits and its output is drained; returns the exit code.
pub fn relay(r: Relay) -> Result<i32> {
    let stdin_tty = r.foreground && linux::is_tty(0);
    let saved_term = match (r.master, stdin_tty) {
        (Some(m), true) => {
            if let Some(ws) = linux::get_winsize(0) {
                linux::set_winsize(m, &ws);
            }
            linux::make_raw(0)
        }
        _ => None,
    };
    let foreground = r.foreground;
    let mut r = r;
    let first_client = r.first_client.take();
    let mut sources: Vec<Source> = r
        .master
        .map(|m| Source {
            fd: m,
            pipe: None,
            stream: Stream::Stdout,
            to_terminal: foreground,
        })
        .into_iter()
        .collect();
    sources.extend(r.pipes.drain(..).map(|(fd, stream)| Source {
        fd: fd.as_raw_fd(),
        pipe: Some(fd),
        stream,
        to_terminal: foreground,
    }));
    let mut state = RelayState {
        stdin_open: r.master.is_some() && r.foreground && r.interactive,
        sink: r.master.or(r.container_input),
        r,
        stdin_tty,
        sources,
        clients: first_client.into_iter().collect(),
        exit: None,
        log_failed: false,
        buf: vec![0u8; 64 << 10],
    };
    let result = state.run();
    if let Some(t) = saved_term {
        linux::restore_term(0, &t);
    }
    result
}

/// The relay loop's state.
struct RelayState<'a> {
    r: Relay<'a>,
    stdin_tty: bool,
    /// Our stdin still goes to the pty.
    stdin_open: bool,
    /// Where container output comes from: the pty, or the pipes; each leaves at its EOF.
    sources: Vec<Source>,
    /// Where attach input goes.
    sink: Option<RawFd>,
    clients: Vec<UnixStream>,
    /// The exit code, once the process was reaped.
    exit: Option<i32>,
    /// A log write failed (warned once; the output still reaches the terminal).
    log_failed: bool,
    buf: Vec<u8>,
}

fn pollin(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

impl RelayState<'_> {
    fn run(&mut self) -> Result<i32> {
        loop {
            if let Some(code) = self.exit
                && self.sources.is_empty()
            {
                return Ok(code);
            }
            let mut fds = self.poll_set();
            // Once the process is gone, only drain what the pty or pipes still hold: a
            // pty gives no EOF while another process keeps its slave open, so the drain
            // ends when nothing came for 100 ms.
            let timeout = if self.exit.is_some() { 100 } else { -1 };
            // SAFETY: poll on our own array.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e).context("poll");
            }
            if n == 0 {
                self.sources.clear();
                continue;
            }
            self.dispatch(&fds);
        }
    }

    fn poll_set(&self) -> Vec<libc::pollfd> {
        let mut fds = vec![pollin(self.r.signals.as_raw_fd())];
        fds.extend(self.sources.iter().map(|s| pollin(s.fd)));
        if self.stdin_open && self.exit.is_none() {
            fds.push(pollin(0));
        }
        if let Some(l) = self.r.attach {
            fds.push(pollin(l.as_raw_fd()));
        }
        fds.extend(self.clients.iter().map(|c| pollin(c.as_raw_fd())));
        fds
    }

    fn dispatch(&mut self, fds: &[libc::pollfd]) {
        let mut dead_clients: Vec<RawFd> = Vec::new();
        for p in fds.iter().filter(|p| p.revents != 0) {
            if p.fd == self.r.signals.as_raw_fd() {
                self.on_signals();
            } else if let Some(i) = self.sources.iter().position(|s| s.fd == p.fd) {
                self.on_output(i, &mut dead_clients);
            } else if p.fd == 0 {
                self.on_stdin();
            } else if Some(p.fd) == self.r.attach.map(|l| l.as_raw_fd()) {
                self.on_attach();
            } else {
                self.on_client(p.fd, &mut dead_clients);
            }
        }
        self.clients
            .retain(|c| !dead_clients.contains(&c.as_raw_fd()));
    }

    /// SIGCHLD reaps, SIGWINCH resizes the pty, the rest go to the process.
    fn on_signals(&mut self) {
        let r = &self.r;
        while let Ok(Some(info)) = r.signals.read_signal() {
            let sig = info.ssi_signo as libc::c_int;
            if sig == libc::SIGCHLD {
                let mut status = 0;
                // SAFETY: reaping our own child without blocking.
                let got = unsafe { libc::waitpid(r.pid, &mut status, libc::WNOHANG) };
                if got == r.pid {
                    self.exit = Some(linux::wait_status_code(status));
                }
            } else if sig == libc::SIGWINCH {
                if let (Some(m), Some(ws)) = (r.master, linux::get_winsize(0)) {
                    linux::set_winsize(m, &ws);
                }
            } else {
                if let Some(t) = r.terminated
                    && [libc::SIGINT, libc::SIGTERM, libc::SIGQUIT, libc::SIGHUP].contains(&sig)
                {
                    t.set(true);
                }
                let _ = linux::kill(r.pid, sig);
            }
        }
    }

    /// Container output: to our stdout or stderr (foreground), the log and every attach
    /// client.
    fn on_output(&mut self, i: usize, dead_clients: &mut Vec<RawFd>) {
        let src = &mut self.sources[i];
        // SAFETY: read into our buffer.
        let n = unsafe { libc::read(src.fd, self.buf.as_mut_ptr().cast(), self.buf.len()) };
        if n <= 0 {
            self.sources.remove(i);
            return;
        }
        let data = &self.buf[..n as usize];
        let mut reader_gone = false;
        if src.to_terminal {
            let ours = match src.stream {
                Stream::Stdout => 1,
                Stream::Stderr => 2,
            };
            if linux::write_all_fd(ours, data).is_err() {
                src.to_terminal = false;
                reader_gone = src.pipe.is_some();
            }
        }
        let stream = src.stream;
        if let Some(log) = self.r.log.as_deref_mut()
            && let Err(e) = log.write(stream, data)
            && !std::mem::replace(&mut self.log_failed, true)
        {
            log::warn!("container log: {}", e.chain());
        }
        for c in &mut self.clients {
            if c.write_all(data).is_err() {
                dead_clients.push(c.as_raw_fd());
            }
        }
        if reader_gone {
            self.sources.remove(i);
        }
    }

    /// Our stdin: to the pty.
    fn on_stdin(&mut self) {
        // SAFETY: read into our buffer.
        let n = unsafe { libc::read(0, self.buf.as_mut_ptr().cast(), self.buf.len()) };
        if n <= 0 {
            self.stdin_open = false;
            if !self.stdin_tty
                && let Some(m) = self.r.master
            {
                // Piped input ended: the terminal's EOF character (VEOF).
                let _ = linux::write_all_fd(m, &[4]);
            }
        } else if let Some(m) = self.r.master {
            let _ = linux::write_all_fd(m, &self.buf[..n as usize]);
        }
    }

    fn on_attach(&mut self) {
        if let Some(l) = self.r.attach {
            while let Ok((s, _)) = l.accept() {
                if peer_allowed(&s) {
                    self.clients.push(s);
                }
            }
        }
    }

    /// Input of an attach client: to the container's stdin.
    fn on_client(&mut self, fd: RawFd, dead_clients: &mut Vec<RawFd>) {
        let Some(c) = self.clients.iter_mut().find(|c| c.as_raw_fd() == fd) else {
            return;
        };
        match c.read(&mut self.buf) {
            Ok(0) | Err(_) => dead_clients.push(fd),
            Ok(n) => {
                if let Some(s) = self.sink {
                    let _ = linux::write_all_fd(s, &self.buf[..n]);
                }
            }
        }
    }
}

/// `attach`: our stdin to the container, its output to our stdout, until it exits.
/// Returns whether the user detached (typed KEYS) rather than the output ending.
pub fn attach_client(id: &str, keys: &[u8]) -> Result<bool> {
    attach_over(attach_connect(id)?, keys)
}

/// `attach` over a connection made already (`start -a`).
pub fn attach_over(sock: UnixStream, keys: &[u8]) -> Result<bool> {
    let mut sock = sock;
    let stdin_tty = linux::is_tty(0);
    let saved = if stdin_tty { linux::make_raw(0) } else { None };
    let mut writer = sock.try_clone()?;
    let detached = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = detached.clone();
    let keys = keys.to_vec();
    // Input in a thread: the process ends when the container's output ends, or when the
    // detach keys close the connection.
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut stdin = std::io::stdin();
        let mut keys_seen = 0;
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 {
                break;
            }
            let (out, done) = filter_detach_keys(&buf[..n], &keys, &mut keys_seen);
            if writer.write_all(&out).is_err() {
                break;
            }
            if done {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                let _ = writer.shutdown(std::net::Shutdown::Both);
                break;
            }
        }
    });
    let mut out = std::io::stdout();
    let mut buf = [0u8; 16384];
    loop {
        match sock.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                out.write_all(&buf[..n])?;
                out.flush()?;
            }
        }
    }
    if let Some(t) = saved {
        linux::restore_term(0, &t);
    }
    Ok(detached.load(std::sync::atomic::Ordering::SeqCst))
}

/// Parses docker's `--detach-keys`: comma-separated `ctrl-X` (X a letter or one of
/// `@[\]^_`) or single characters.
pub fn parse_detach_keys(spec: &str) -> Result<Vec<u8>> {
    let mut keys = Vec::new();
    for k in spec.split(',').filter(|k| !k.is_empty()) {
        let b = k.as_bytes();
        let key = match b {
            [c] => *c,
            [b'c', b't', b'r', b'l', b'-', c]
                if c.is_ascii_alphabetic() || b"@[\\]^_".contains(c) =>
            {
                c.to_ascii_uppercase() & 0x1f
            }
            _ => bail!("--detach-keys {spec:?}: {k:?} is not ctrl-X or one character"),
        };
        keys.push(key);
    }
    Ok(keys)
}

/// Passes input through, holding back a partial match of the detach KEYS (`seen` bytes
/// of it so far, across calls). Returns what to send and whether all keys were typed.
fn filter_detach_keys(input: &[u8], keys: &[u8], seen: &mut usize) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(input.len());
    if keys.is_empty() {
        out.extend_from_slice(input);
        return (out, false);
    }
    for &b in input {
        if b == keys[*seen] {
            *seen += 1;
            if *seen == keys.len() {
                return (out, true);
            }
            continue;
        }
        // Not the sequence after all: what was held back is input.
        out.extend_from_slice(&keys[..*seen]);
        *seen = usize::from(b == keys[0]);
        if *seen == 0 {
            out.push(b);
        }
    }
    (out, false)
}

#[cfg(test)]
mod detach_tests {
    use super::*;

    #[test]
    fn parses_docker_key_specs() {
        assert_eq!(
            parse_detach_keys("ctrl-p,ctrl-q").unwrap(),
            vec![0x10, 0x11]
        );
        assert_eq!(parse_detach_keys("ctrl-@,a").unwrap(), vec![0, b'a']);
        assert_eq!(parse_detach_keys("").unwrap(), Vec::<u8>::new());
        let e = parse_detach_keys("ctrl-pq").unwrap_err().to_string();
        assert!(e.contains("ctrl-pq"), "{e}");
    }

    #[test]
    fn holds_back_partial_sequences_only() {
        let keys = [0x10, 0x11];
        let mut seen = 0;
        assert_eq!(
            filter_detach_keys(b"ab\x10", &keys, &mut seen),
            (b"ab".to_vec(), false)
        );
        assert_eq!(seen, 1);
        let mut seen = 0;
        let (out, done) = filter_detach_keys(&[b'a', 0x10], &keys, &mut seen);
        assert_eq!((out, done, seen), (vec![b'a'], false, 1));
        let (out, done) = filter_detach_keys(b"x", &keys, &mut seen);
        assert_eq!((out, done, seen), (vec![0x10, b'x'], false, 0));
        let (out, done) = filter_detach_keys(&[0x10, 0x10, 0x11, b'z'], &keys, &mut seen);
        assert_eq!((out, done), (vec![0x10], true));
        let mut seen = 0;
        assert_eq!(
            filter_detach_keys(b"plain", &[], &mut seen),
            (b"plain".to_vec(), false)
        );
    }
}
