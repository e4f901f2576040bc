//! libseccomp turns a narrowed profile into a BPF program for every architecture it
//! covers (x86_64 with its i386 and x32 compat on this machine): syscall numbers per
//! arch, multiplexed socketcall/ipc, 64-bit argument comparisons.
use super::profile::{Action, Op, Resolved};
use crate::error::{Context, Result};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::str::FromStr;

fn scmp_action(a: Action) -> ScmpAction {
    match a {
        Action::Allow => ScmpAction::Allow,
        Action::Errno(e) => ScmpAction::Errno(e as i32),
        Action::KillThread => ScmpAction::KillThread,
        Action::KillProcess => ScmpAction::KillProcess,
        Action::Trap => ScmpAction::Trap,
        Action::Trace(m) => ScmpAction::Trace(m),
        Action::Log => ScmpAction::Log,
    }
}

fn scmp_op(op: Op, value: u64) -> ScmpCompareOp {
    match op {
        Op::Ne => ScmpCompareOp::NotEqual,
        Op::Lt => ScmpCompareOp::Less,
        Op::Le => ScmpCompareOp::LessOrEqual,
        Op::Eq => ScmpCompareOp::Equal,
        Op::Ge => ScmpCompareOp::GreaterEqual,
        Op::Gt => ScmpCompareOp::Greater,
        Op::MaskedEq => ScmpCompareOp::MaskedEqual(value),
    }
}

/// The BPF program (`struct sock_filter` array) of `r`; `label` names the profile in
/// errors (an unknown system call names its entry).
pub fn compile(label: &str, r: &Resolved) -> Result<Vec<u8>> {
    let lib = |what: String| move |e: libseccomp::error::SeccompError| invalid!("{what}: {e}");
    let mut ctx = ScmpFilterContext::new(scmp_action(r.default_action))
        .map_err(lib(format!("seccomp profile {label}: defaultAction")))?;
    // A binary search over syscall numbers instead of a linear chain.
    let _ = ctx.set_ctl_optimize(2);
    for a in &r.arches {
        let arch = ScmpArch::from_str(a)
            .map_err(|_| invalid!("seccomp profile {label}: unknown architecture {a:?}"))?;
        let present = ctx.is_arch_present(arch).unwrap_or(false);
        if !present {
            ctx.add_arch(arch)
                .map_err(lib(format!("seccomp profile {label}: architecture {a}")))?;
        }
    }
    for (entry, name) in &r.all_names {
        ScmpSyscall::from_name(name).map_err(|_| {
            invalid!("seccomp profile {label}: syscalls[{entry}]: unknown system call {name:?}")
        })?;
    }
    for rule in &r.rules {
        let action = scmp_action(rule.action);
        for name in &rule.names {
            let here = || format!("seccomp profile {label}: syscalls[{}] ({name})", rule.entry);
            let call = ScmpSyscall::from_name(name).map_err(lib(here()))?;
            if rule.alternatives.is_empty() {
                ctx.add_rule(action, call).map_err(lib(here()))?;
            }
            for conds in &rule.alternatives {
                let cmps: Vec<ScmpArgCompare> = conds
                    .iter()
                    .map(|c| {
                        let datum = match c.op {
                            Op::MaskedEq => c.value_two,
                            _ => c.value,
                        };
                        ScmpArgCompare::new(c.index, scmp_op(c.op, c.value), datum)
                    })
                    .collect();
                ctx.add_rule_conditional(action, call, &cmps)
                    .map_err(lib(here()))?;
            }
        }
    }
    export(&ctx)
}

/// libseccomp 2.5 writes the program only to a file descriptor: an anonymous memory file.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<u8>> {
    // SAFETY: memfd_create with a constant name; a non-negative result is a new fd.
    let fd = unsafe { libc::memfd_create(c"seccomp-bpf".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("memfd_create");
    }
    // SAFETY: a fresh fd we own.
    let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    ctx.export_bpf(&file)
        .map_err(|e| invalid!("export the seccomp filter: {e}"))?;
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    let mut off = 0i64;
    loop {
        // SAFETY: pread into our buffer from our fd.
        let n = unsafe { libc::pread(file.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), off) };
        if n < 0 {
            return Err(std::io::Error::last_os_error()).context("read the seccomp filter");
        }
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n as usize]);
        off += n as i64;
    }
}
