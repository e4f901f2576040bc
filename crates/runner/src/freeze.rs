//! Holding a container still while its upper layer is read (`commit --pause`).
use crate::image::container::ContainerRecord;
use std::fs;

/// Keeps a running container paused while alive: through the runner (freezer cgroup
/// or SIGSTOP of its pid namespace) when its record is the runner's, else by SIGSTOP
/// of the process tree under `pid`; resumed on drop.
pub enum Paused {
    Nothing,
    Runner(Box<super::Container>),
    Signals(Vec<i32>),
}

/// Pauses C if it runs; resumed when the result is dropped.
pub fn freeze(c: &ContainerRecord) -> Paused {
    if !c.is_running() {
        return Paused::Nothing;
    }
    if let Ok(rc) = super::Container::load(&c.dir) {
        if super::pause(&rc).is_ok() {
            return Paused::Runner(Box::new(rc));
        }
        // Paused by its user (before or meanwhile: pause refused), and it stays so.
        if super::Container::load(&c.dir).is_ok_and(|r| r.paused) {
            return Paused::Nothing;
        }
    }
    let mut pids = Vec::new();
    if let Some(top) = c.pid {
        // Parents first, so no new child escapes between listing and stopping.
        let mut queue = vec![top];
        while let Some(p) = queue.pop() {
            if unsafe { libc::kill(p, libc::SIGSTOP) } == 0 {
                pids.push(p);
                queue.extend(children_of(p));
            }
        }
    }
    Paused::Signals(pids)
}

impl Drop for Paused {
    fn drop(&mut self) {
        match self {
            Paused::Nothing => {}
            Paused::Runner(rc) => {
                if let Err(e) = super::unpause(rc) {
                    log::warn!("container {}: unpause: {}", rc.name, e.chain());
                }
            }
            Paused::Signals(pids) => {
                for p in pids.iter().rev() {
                    unsafe { libc::kill(*p, libc::SIGCONT) };
                }
            }
        }
    }
}

fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in rd.flatten() {
        if let Ok(s) = fs::read_to_string(t.path().join("children")) {
            out.extend(s.split_whitespace().filter_map(|x| x.parse::<i32>().ok()));
        }
    }
    out
}
