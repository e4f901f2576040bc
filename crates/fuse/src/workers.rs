//! Which serving thread takes the next request, and on which CPU it runs.
//!
//! A FUSE request costs two wake-ups: the caller's wakes a daemon thread, the reply
//! wakes the caller. On the same CPU a wake-up is a context switch; across CPUs of a
//! virtual machine it is an interrupt between vCPUs, often to one that halted: a
//! round trip costs 2 us on one CPU and 30-60 us across two (measured with a pipe,
//! benches/README.md). The kernel hands each request to the thread of the daemon that
//! has waited longest, which runs where it ran last, and wakes a task on an idle CPU
//! rather than beside a busy one: with threads blocked in read(), the caller and the
//! thread serving it rarely share a CPU. Hence:
//! - One thread, the *primary*, takes the requests. It runs at SCHED_IDLE, so that its
//!   CPU counts as idle when its reply wakes the caller (who then stays on this CPU and
//!   runs first), pinned to the CPU its caller last ran on: looked up for a new caller,
//!   and when the pause between a reply and the next request looks like a round trip
//!   across CPUs. A bulk read or write unpins it (and raises it to SCHED_OTHER where
//!   allowed): the copy, not the wake-ups, takes its time.
//! - The other threads *park* after a request (never in read(), where the kernel would
//!   hand them the next request). A parked thread looks at the device every tick and
//!   serves once requests have waited a whole tick (many callers, or the primary
//!   starved on its CPU), once the primary has been on one request for 2 ms (a long
//!   copy-up, a cold directory), and at once when the primary is about to wait on the
//!   disk. It parks again when no request waits and no read waits on the disk.
//!
//! With one thread (`-o threads=1`, `-s`) none of this applies: that thread blocks as
//! fuser's loop does, at the normal priority.
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Set by a daemon process: when the session ends, exit at once (see `exit_when_gone`).
static EXIT_WHEN_GONE: AtomicBool = AtomicBool::new(false);

/// Makes this process exit as soon as a parked thread sees the FUSE session end, without
/// waiting for every serving thread to notice and the file system to be freed: nothing
/// is pending then (the kernel ends a connection after its last request), and the lower
/// and upper dirs this process holds keep a mount stacked on them busy until it exits
/// (`umount` of that one, just after ours, would fail with EBUSY).
pub(crate) fn exit_when_gone() {
    EXIT_WHEN_GONE.store(true, Ordering::Relaxed);
}

/// How long a parked thread waits for the end of the session after a mount went.
const GONE_WAIT_MS: i32 = 2;

/// How often a parked thread looks for waiting requests while the mount is busy.
const TICK: Duration = Duration::from_millis(1);
/// A request the primary has served this long is a long one (see `wait_parked`).
const LONG_NS: u64 = 2_000_000;
/// After this many ticks without a request served, parked threads look once a second.
const QUIET_TICKS: u32 = 20;
/// A longer pause between a reply and the next request suggests the caller runs on
/// another CPU (a wake-up each way across CPUs); on the same CPU it is a few us.
const SPLIT_GAP_NS: u64 = 20_000;
/// A new caller's CPU is looked up at most once per this many requests.
const FOLLOW_CALLERS_EVERY: u64 = 64;
/// At most this many such pauses are let pass after a check found the caller on our
/// CPU (the caller may simply have worked between its requests).
const MAX_BACKOFF: u32 = 64;

pub(crate) struct Workers {
    /// The FUSE device (a duplicate, for poll only); set once the session exists.
    dev: OnceLock<OwnedFd>,
    /// Wakes parked threads (an eventfd): requests come again after a quiet spell, or
    /// the primary is about to wait on the disk.
    wake: Option<OwnedFd>,
    /// /proc/self/mountinfo: polls POLLPRI when a mount goes, so parked threads see
    /// the end of the session at once.
    mounts: Option<OwnedFd>,
    /// Thread id of the primary; 0 until a thread has served a request.
    primary: AtomicU32,
    /// Requests the primary has served.
    served: AtomicU64,
    /// `served` when parked threads last saw the mount busy (u64::MAX: quiet).
    seen: AtomicU64,
    /// When the primary last replied, and when it took the request it serves now (0:
    /// none) (CLOCK_MONOTONIC, ns).
    last_reply: AtomicU64,
    busy_since: AtomicU64,
    /// Pauses to let pass before the next check of the caller's CPU, and how many the
    /// last check set.
    skip: AtomicU32,
    backoff: AtomicU32,
    /// The caller of the primary's last request, and the request count from which a
    /// new caller is followed again.
    last_caller: AtomicU32,
    next_caller_follow: AtomicU64,
    /// The primary runs at the normal priority for its current request (see
    /// `release_primary`), and whether it may (false once refused: no CAP_SYS_NICE).
    raised: AtomicBool,
    may_raise: AtomicBool,
    /// The primary's request is a bulk one (see `bulk`).
    bulk: AtomicBool,
    /// The primary's request is the first after a quiet spell.
    woke: AtomicBool,
    /// The CPU the primary is pinned to (-1: none).
    pinned: AtomicI32,
    /// Reads waiting on the disk now: while one does, no thread parks (the kernel's
    /// read-ahead queues the next reads meanwhile).
    disk_waits: AtomicU32,
    /// Threads parked now, and whether one was asked to serve at once (`will_block`).
    parked: AtomicU32,
    kicked: AtomicBool,
    /// More than one serving thread: parking has someone to park for.
    enabled: bool,
}

/// Runs the end of a request when dropped (after its reply).
pub(crate) struct Turn<'a> {
    workers: &'a Workers,
    caller: u32,
    started: u64,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.workers.after_request(self.caller, self.started);
    }
}

impl Workers {
    pub fn new(threads: usize) -> Workers {
        let parking = threads > 1;
        // SAFETY: eventfd returns a new descriptor or -1, which we own from here.
        let wake = parking
            .then(|| unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })
            .filter(|&fd| fd >= 0)
            .map(|fd| unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) });
        let mounts = parking
            .then(|| std::fs::File::open("/proc/self/mountinfo").ok())
            .flatten()
            .map(OwnedFd::from);
        Workers {
            dev: OnceLock::new(),
            enabled: wake.is_some(),
            wake,
            mounts,
            primary: AtomicU32::new(0),
            served: AtomicU64::new(0),
            seen: AtomicU64::new(u64::MAX),
            last_reply: AtomicU64::new(0),
            busy_since: AtomicU64::new(0),
            skip: AtomicU32::new(0),
            backoff: AtomicU32::new(0),
            last_caller: AtomicU32::new(0),
            next_caller_follow: AtomicU64::new(0),
            raised: AtomicBool::new(false),
            may_raise: AtomicBool::new(true),
            bulk: AtomicBool::new(false),
            woke: AtomicBool::new(false),
            pinned: AtomicI32::new(-1),
            disk_waits: AtomicU32::new(0),
            parked: AtomicU32::new(0),
            kicked: AtomicBool::new(false),
        }
    }

    /// Gives the workers the session's FUSE device (they poll a duplicate of it).
    pub fn attach(&self, dev: &impl AsRawFd) {
        // SAFETY: dup of a descriptor the session keeps open.
        let fd = unsafe { libc::fcntl(dev.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
        if fd >= 0 {
            let _ = self
                .dev
                .set(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) });
        }
    }

    /// The session's FUSE device (a duplicate: the same file as the session reads
    /// requests from, so replies written to it reach the kernel), once attached.
    pub fn device(&self) -> Option<RawFd> {
        self.dev.get().map(|d| d.as_raw_fd())
    }

    /// Call at the start of a request from CALLER (a thread id, 0 if unknown); the
    /// returned turn decides, once dropped after the reply, what this thread does next.
    pub fn turn(&self, caller: u32) -> Turn<'_> {
        let started = if self.enabled { now_ns() } else { 0 };
        if self.enabled && self.primary.load(Ordering::Relaxed) == tid() {
            self.busy_since.store(started, Ordering::Relaxed);
            if self.seen.load(Ordering::Relaxed) == u64::MAX {
                // The first request after a quiet spell: parked threads watch again (now,
                // in case this one is long), and the caller's CPU is looked up after it.
                self.seen
                    .store(self.served.load(Ordering::Relaxed), Ordering::Relaxed);
                self.woke.store(true, Ordering::Relaxed);
                self.kick();
            }
        }
        Turn {
            workers: self,
            caller,
            started,
        }
    }

    /// Called before a read that will wait on the disk: a parked thread serves the
    /// requests that come meanwhile (the kernel's read-ahead sends several at once).
    pub fn will_block(&self) {
        if !self.enabled {
            return;
        }
        self.disk_waits.fetch_add(1, Ordering::Relaxed);
        if self.parked.load(Ordering::Relaxed) > 0 && !self.kicked.swap(true, Ordering::Relaxed) {
            self.kick();
        }
    }

    /// Called when the read `will_block` announced has returned.
    pub fn unblocked(&self) {
        if self.enabled {
            self.disk_waits.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Called before moving much data (a large read or write): its time goes to the
    /// copy, not to wake-ups, and the primary, pinned to its caller's CPU, would wait
    /// there behind whatever else runs (the kernel's writeback). So it may go anywhere
    /// until it follows its caller again.
    pub fn bulk(&self) {
        if self.enabled && self.primary.load(Ordering::Relaxed) == tid() {
            // Bulk requests come while the caller works (read-ahead): the pause before
            // the next one says nothing of where the caller runs.
            self.bulk.store(true, Ordering::Relaxed);
            self.release_primary();
        }
    }

    /// Lets the primary, serving a long or bulk request, run anywhere; and at the normal
    /// priority until the request ends, where the system lets us (CAP_SYS_NICE: a
    /// SCHED_IDLE thread waits behind everything else, the kernel's writeback too).
    fn release_primary(&self) {
        let primary = self.primary.load(Ordering::Relaxed);
        if self.pinned.swap(-1, Ordering::Relaxed) >= 0 {
            unpin(primary);
        }
        if self.may_raise.load(Ordering::Relaxed) && !self.raised.swap(true, Ordering::Relaxed) {
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: changes the policy of a thread of ours.
            if unsafe { libc::sched_setscheduler(primary as i32, libc::SCHED_OTHER, &param) } != 0 {
                self.may_raise.store(false, Ordering::Relaxed);
                self.raised.store(false, Ordering::Relaxed);
            }
        }
    }

    fn kick(&self) {
        if let Some(wake) = &self.wake {
            let one: u64 = 1;
            // SAFETY: an 8-byte write to our eventfd.
            unsafe { libc::write(wake.as_raw_fd(), (&one as *const u64).cast(), 8) };
        }
    }

    fn after_request(&self, caller: u32, started: u64) {
        let Some(dev) = self.dev.get().filter(|_| self.enabled) else {
            return;
        };
        let me = tid();
        let primary =
            match self
                .primary
                .compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    set_idle_policy();
                    me
                }
                Err(p) => p,
            };
        if primary != me {
            return self.park(dev.as_raw_fd());
        }
        self.busy_since.store(0, Ordering::Relaxed);
        if self.raised.swap(false, Ordering::Relaxed) {
            set_idle_policy();
        }
        let n = self.served.fetch_add(1, Ordering::Relaxed);
        let now = now_ns();
        let gap = started.saturating_sub(self.last_reply.swap(now, Ordering::Relaxed));
        // A bulk request (see `bulk`), or one without a caller (0: the kernel sends it on
        // its own, a FORGET, a RELEASE after the last close): nothing to learn or follow.
        if self.bulk.swap(false, Ordering::Relaxed) || caller == 0 {
            return;
        }
        let first = self.woke.swap(false, Ordering::Relaxed);
        // A new caller: look where it runs (at most once per FOLLOW_CALLERS_EVERY
        // requests, as two callers taking turns would make it every request).
        let new_caller = self.last_caller.swap(caller, Ordering::Relaxed) != caller;
        if first || (new_caller && n >= self.next_caller_follow.load(Ordering::Relaxed)) {
            self.next_caller_follow
                .store(n + FOLLOW_CALLERS_EVERY, Ordering::Relaxed);
            self.backoff.store(0, Ordering::Relaxed);
            self.skip.store(0, Ordering::Relaxed);
            self.follow(caller);
            return;
        }
        if gap <= SPLIT_GAP_NS {
            return;
        }
        let skip = self.skip.load(Ordering::Relaxed);
        if skip > 0 {
            self.skip.store(skip - 1, Ordering::Relaxed);
            return;
        }
        let backoff = if self.follow(caller) {
            0
        } else {
            (self.backoff.load(Ordering::Relaxed) * 2 + 1).min(MAX_BACKOFF)
        };
        self.backoff.store(backoff, Ordering::Relaxed);
        self.skip.store(backoff, Ordering::Relaxed);
    }

    /// Waits until requests have waited a whole tick, the primary waits on the disk, or
    /// the session ends.
    fn park(&self, dev: RawFd) {
        if self.disk_waits.load(Ordering::Relaxed) > 0 || !matches!(device(dev), Device::Empty) {
            return;
        }
        self.parked.fetch_add(1, Ordering::Relaxed);
        self.wait_parked(dev);
        self.parked.fetch_sub(1, Ordering::Relaxed);
    }

    fn wait_parked(&self, dev: RawFd) {
        let mut waiting = false;
        let mut quiet = 0;
        loop {
            let busy = self.seen.load(Ordering::Relaxed) != u64::MAX;
            let mount_went = self.sleep(if busy { TICK } else { Duration::from_secs(1) });
            if mount_went && EXIT_WHEN_GONE.load(Ordering::Relaxed) {
                // A mount went, maybe ours: the kernel ends the connection a moment after
                // it detached the mount, and a daemon should not linger (see
                // `exit_when_gone`). Its device then polls POLLERR (asked for or not;
                // no request wakes this poll out of the kernel).
                let mut p = libc::pollfd {
                    fd: dev,
                    events: 0,
                    revents: 0,
                };
                // SAFETY: poll on one pollfd.
                unsafe { libc::poll(&mut p, 1, GONE_WAIT_MS) };
            }
            if self.kicked.swap(false, Ordering::Relaxed) {
                return;
            }
            let since = self.busy_since.load(Ordering::Relaxed);
            if since != 0 && now_ns().saturating_sub(since) > LONG_NS {
                // A long request (a copy-up, a cold disk): serve beside it, and let the
                // primary leave its CPU if something else runs there.
                self.release_primary();
                return;
            }
            match device(dev) {
                Device::Gone => {
                    if EXIT_WHEN_GONE.load(Ordering::Relaxed) {
                        // SAFETY: ends the process; nothing of ours is pending.
                        unsafe { libc::_exit(0) };
                    }
                    // The session ended: the primary, woken with ENODEV, must not wait
                    // behind everything else to end the process, which holds the upper
                    // and work dirs locked until it exits (a new mount of them waits).
                    self.release_primary();
                    return;
                }
                Device::Waiting if waiting => {
                    // Requests waited a tick: serve them; the primary, if pinned to a
                    // CPU where something else runs, may go anywhere until it follows.
                    self.release_primary();
                    return;
                }
                Device::Waiting => waiting = true,
                Device::Empty => waiting = false,
            }
            // Quiet: the primary served nothing since the last tick and serves nothing now.
            let served = self.served.load(Ordering::Relaxed);
            let idle = self.busy_since.load(Ordering::Relaxed) == 0;
            if busy && self.seen.swap(served, Ordering::Relaxed) == served && idle {
                quiet += 1;
                if quiet >= QUIET_TICKS {
                    self.seen.store(u64::MAX, Ordering::Relaxed);
                }
            } else {
                quiet = 0;
            }
        }
    }

    /// Sleeps up to TIMEOUT, less if the primary wakes us or a mount goes; true if one did.
    fn sleep(&self, timeout: Duration) -> bool {
        let mut fds = [
            libc::pollfd {
                fd: self.wake.as_ref().map_or(-1, |f| f.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.mounts.as_ref().map_or(-1, |f| f.as_raw_fd()),
                events: libc::POLLPRI,
                revents: 0,
            },
        ];
        // SAFETY: poll on our own pollfds.
        unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout.as_millis() as i32) };
        if fds[0].revents != 0 {
            let mut n: u64 = 0;
            // SAFETY: an 8-byte read from our eventfd (non-blocking).
            unsafe { libc::read(fds[0].fd, (&mut n as *mut u64).cast(), 8) };
        }
        if fds[1].revents != 0 {
            // Reading mountinfo to its end re-arms POLLPRI.
            if let Some(f) = &self.mounts {
                let mut buf = [0u8; 4096];
                // SAFETY: reads into our buffer.
                unsafe { libc::lseek(f.as_raw_fd(), 0, libc::SEEK_SET) };
                while unsafe { libc::read(f.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {
                }
            }
        }
        fds[1].revents != 0
    }

    /// Pins the primary (the calling thread) to the CPU thread CALLER last ran on; false
    /// if it is pinned there already (or that CPU is unknown).
    fn follow(&self, caller: u32) -> bool {
        let Some(cpu) = (caller != 0).then(|| last_cpu(caller)).flatten() else {
            return false;
        };
        if self.pinned.load(Ordering::Relaxed) == cpu as i32 || cpu >= libc::CPU_SETSIZE as usize {
            return false;
        }
        // Recorded first: a parked thread unpinning us meanwhile leaves -1, and the next
        // check pins again.
        self.pinned.store(cpu as i32, Ordering::Relaxed);
        // SAFETY: a zeroed cpu_set_t is empty; CPU_SET within its size (checked above).
        let pinned = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
        };
        if !pinned {
            self.pinned.store(-1, Ordering::Relaxed);
        }
        pinned
    }
}

enum Device {
    Empty,
    Waiting,
    Gone,
}

/// Whether requests wait on the FUSE device (without taking one).
fn device(dev: RawFd) -> Device {
    let mut p = libc::pollfd {
        fd: dev,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll on one pollfd, no wait.
    match unsafe { libc::poll(&mut p, 1, 0) } {
        0 => Device::Empty,
        n if n > 0 && p.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 => {
            Device::Gone
        }
        n if n > 0 => Device::Waiting,
        _ => Device::Empty,
    }
}

/// SCHED_IDLE for the calling thread (see the module comment).
fn set_idle_policy() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: changes the calling thread's policy only.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
}

/// Lets thread TID run on every CPU of this process again.
fn unpin(tid: u32) {
    if tid == 0 {
        return;
    }
    // SAFETY: reads the process's allowed CPUs into a cpu_set_t, then applies them.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(
            libc::getpid(),
            std::mem::size_of::<libc::cpu_set_t>(),
            &mut set,
        ) == 0
        {
            libc::sched_setaffinity(tid as i32, std::mem::size_of::<libc::cpu_set_t>(), &set);
        }
    }
}

/// The calling thread's id (cached: gettid is a system call).
fn tid() -> u32 {
    thread_local! {
        // SAFETY: gettid has no failure.
        static TID: u32 = unsafe { libc::gettid() } as u32;
    }
    TID.with(|t| *t)
}

fn now_ns() -> u64 {
    let mut t: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: fills our timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// The CPU a thread last ran on: field 39 of /proc/TID/stat.
fn last_cpu(tid: u32) -> Option<usize> {
    use std::io::Read;
    // One read of a fixed buffer: the fields up to 39 fit in 512 bytes.
    let mut buf = [0u8; 512];
    let n = std::fs::File::open(format!("/proc/{tid}/stat"))
        .ok()?
        .read(&mut buf)
        .ok()?;
    cpu_of_stat(std::str::from_utf8(&buf[..n]).ok()?)
}

/// Field 39 (the CPU last run on) of a /proc/TID/stat line.
fn cpu_of_stat(stat: &str) -> Option<usize> {
    // After the command name (which may hold spaces and parentheses) come fields 3...
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_ascii_whitespace().nth(39 - 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_is_field_39_after_any_command_name() {
        let tail = (3..=52).map(|f| {
            if f == 39 {
                "7".to_string()
            } else {
                f.to_string()
            }
        });
        let fields: Vec<String> = tail.collect();
        let line = format!("1234 (a (b) c) {}\n", fields.join(" "));
        assert_eq!(cpu_of_stat(&line), Some(7));
        assert_eq!(cpu_of_stat("1234 (cat) S 1 2"), None);
        assert_eq!(cpu_of_stat("garbage"), None);
    }

    #[test]
    fn a_live_thread_has_a_last_cpu_and_a_gone_one_none() {
        // SAFETY: gettid has no failure.
        let tid = unsafe { libc::gettid() } as u32;
        let cpus = 8 * std::mem::size_of::<libc::cpu_set_t>();
        assert!(last_cpu(tid).is_some_and(|c| c < cpus));
        let gone = std::thread::spawn(|| unsafe { libc::gettid() } as u32)
            .join()
            .unwrap();
        assert_eq!(last_cpu(gone), None);
    }
}
