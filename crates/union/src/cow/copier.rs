//! Big data copies on threads of their own. A FUSE daemon's serving thread may run at
//! SCHED_IDLE (crates/fuse `workers`), which an unprivileged process cannot leave: a
//! copy-up of many MiB there gets the CPU only when nothing else wants it (the kernel's
//! writeback does). Copier threads keep the policy, priority and CPUs of the thread
//! that started them, before any serving thread changed its own.
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

/// Smaller copies stay in the calling thread: a hand-off costs two wake-ups.
const MIN_BYTES: u64 = 1 << 20;

struct Job {
    src: RawFd,
    dst: RawFd,
    size: u64,
    sync: bool,
    done: mpsc::SyncSender<io::Result<()>>,
}

struct CopyThread {
    busy: AtomicBool,
    jobs: mpsc::Sender<Job>,
    join: std::thread::JoinHandle<()>,
}

/// Where `copy_data` runs: `Copier::default()` always in the calling thread.
pub struct Copier {
    threads: Vec<CopyThread>,
    /// Each copy is fsynced before it is handed back, as overlayfs syncs copied-up data
    /// (not on `volatile` or `fsync=0` mounts); where the copy ran, at its priority.
    pub sync: bool,
}

impl Default for Copier {
    fn default() -> Copier {
        Copier {
            threads: Vec::new(),
            sync: true,
        }
    }
}

impl Copier {
    /// Starts N copier threads; dropping the copier ends them.
    pub fn start(n: usize) -> io::Result<Copier> {
        let mut c = Copier::default();
        for i in 0..n {
            let (jobs, rx) = mpsc::channel::<Job>();
            let join = std::thread::Builder::new()
                .name(format!("copier-{i}"))
                .spawn(move || {
                    for j in rx {
                        // Its caller waits for the answer; a send fails only if it has gone.
                        let _ = j.done.send(copy_and_sync(j.src, j.dst, j.size, j.sync));
                    }
                })?;
            c.threads.push(CopyThread {
                busy: AtomicBool::new(false),
                jobs,
                join,
            });
        }
        Ok(c)
    }

    /// `copy_data(SRC, DST, SIZE)`, on a free copier thread when the copy is big (the
    /// caller waits for it, so the fds stay open), else in the calling thread; also when
    /// every copier is busy, so a small copy never waits behind a big one.
    pub fn copy(&self, src: RawFd, dst: RawFd, size: u64) -> io::Result<()> {
        let free = (size >= MIN_BYTES)
            .then(|| {
                self.threads.iter().find(|t| {
                    t.busy
                        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                })
            })
            .flatten();
        let Some(t) = free else {
            return copy_and_sync(src, dst, size, self.sync);
        };
        let (done, result) = mpsc::sync_channel(1);
        let sent = t.jobs.send(Job {
            src,
            dst,
            size,
            sync: self.sync,
            done,
        });
        let r = match sent {
            Ok(()) => result
                .recv()
                .unwrap_or_else(|_| copy_and_sync(src, dst, size, self.sync)),
            Err(_) => copy_and_sync(src, dst, size, self.sync),
        };
        t.busy.store(false, Ordering::Release);
        r
    }
}

/// `copy_data`, then an fsync of DST when SYNC.
fn copy_and_sync(src: RawFd, dst: RawFd, size: u64, sync: bool) -> io::Result<()> {
    super::copy_data(src, dst, size)?;
    if sync {
        crate::sys::fsync(dst)?;
    }
    Ok(())
}

impl Drop for Copier {
    fn drop(&mut self) {
        // Closing the channels ends the threads; no copy is under way (its caller would
        // hold a borrow of the copier).
        for t in self.threads.drain(..) {
            drop(t.jobs);
            let _ = t.join.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsRawFd;

    fn copy_with(c: &Copier, size: usize) -> (Vec<u8>, Vec<u8>) {
        let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        let mut src = tempfile::tempfile().unwrap();
        src.write_all(&data).unwrap();
        let mut dst = tempfile::tempfile().unwrap();
        c.copy(src.as_raw_fd(), dst.as_raw_fd(), size as u64)
            .unwrap();
        let mut got = Vec::new();
        dst.rewind().unwrap();
        dst.read_to_end(&mut got).unwrap();
        (data, got)
    }

    fn thread_names() -> Vec<String> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
            .map(|s| s.trim().to_string())
            .collect()
    }

    #[test]
    fn copies_big_and_small_files_whole_with_or_without_threads() {
        for c in [Copier::default(), Copier::start(2).unwrap()] {
            for size in [10, MIN_BYTES as usize + 4097] {
                let (want, got) = copy_with(&c, size);
                assert!(want == got, "{size} bytes copied as {} bytes", got.len());
            }
        }
    }

    #[test]
    fn copier_threads_end_with_the_copier() {
        // Only this test makes a third copier thread.
        let third = || thread_names().iter().filter(|t| *t == "copier-2").count();
        let c = Copier::start(3).unwrap();
        // A new thread names itself, and a joined one leaves /proc a moment after the
        // join: wait for each (a watchdog, not a timing).
        let wait_for = |want: usize| {
            let since = std::time::Instant::now();
            while third() != want {
                assert!(since.elapsed().as_secs() < 30, "{:?}", thread_names());
                std::thread::yield_now();
            }
        };
        wait_for(1);
        drop(c);
        wait_for(0);
    }
}
