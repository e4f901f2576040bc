//! The container's seccomp filter: a docker/OCI JSON profile (the built-in default, the
//! system's, or `--security-opt seccomp=FILE`) narrowed to the container's capabilities
//! and this machine (`profile`), compiled by libseccomp (`compile`), cached by digest
//! under the store root, kept beside the container's record and loaded by the container
//! process just before it execs its command (`install`).
pub mod compile;
pub mod profile;

use crate::error::{Context, Result, io};
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};

/// docker's default profile, in docker's JSON format (default action EPERM; namespaces,
/// mounts, keyrings, bpf, perf and the like only with the capability that guards them).
pub const BUILTIN_PROFILE: &str = include_str!("default.json");

/// The administrator's default profile, read instead of the built-in one when present.
pub const SYSTEM_PROFILE: &str = "/etc/unionctl/seccomp.json";

/// What the built-in profile is called in the record and in errors.
pub const BUILTIN_NAME: &str = "builtin";

/// Which profile a container asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// `SYSTEM_PROFILE` when present, else the built-in profile.
    Default,
    Unconfined,
    File(PathBuf),
}

/// A compiled filter and where it came from.
#[derive(Debug, Clone)]
pub struct Filter {
    /// The profile's file, or `builtin`.
    pub source: String,
    /// sha256 of what the program was compiled from (profile, capabilities, machine).
    pub digest: String,
    /// `SECCOMP_FILTER_FLAG_*` for seccomp(2).
    pub flags: u32,
    /// `struct sock_filter` array.
    pub program: Vec<u8>,
}

/// Bumped when the compiled form for the same input changes.
const CACHE_FORMAT: &str = "unionctl-seccomp-2";
const MAGIC: &[u8; 8] = b"UCBPF1\0\0";

/// The filter for `choice` and the capability names `caps`: from the cache under `root`
/// when this profile was compiled for the same capabilities before, else compiled (and
/// cached). `None` for unconfined. A profile that cannot be read or compiled is an error
/// naming the file and the entry.
pub fn prepare(root: &Path, choice: &Choice, caps: &[String]) -> Result<Option<Filter>> {
    let (source, json) = match choice {
        Choice::Unconfined => return Ok(None),
        Choice::File(p) => (
            p.display().to_string(),
            fs::read(p).map_err(io("reading seccomp profile", p))?,
        ),
        Choice::Default => match fs::read(SYSTEM_PROFILE) {
            Ok(bytes) => (SYSTEM_PROFILE.to_string(), bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
                BUILTIN_NAME.to_string(),
                BUILTIN_PROFILE.as_bytes().to_vec(),
            ),
            Err(e) => return Err(io("reading seccomp profile", Path::new(SYSTEM_PROFILE))(e)),
        },
    };
    let (arch, short_arch) = profile::native_arch();
    let kernel = profile::kernel_version(&kernel_release());
    let digest = digest(&json, caps, arch, kernel);
    let cached = cache_dir(root).join(format!("{digest}.bpf"));
    if let Ok((flags, program)) = read_program(&cached) {
        return Ok(Some(Filter {
            source,
            digest,
            flags,
            program,
        }));
    }
    let target = profile::Target {
        arch,
        short_arch,
        kernel,
        caps,
    };
    let resolved = profile::resolve(&source, &json, &target)?;
    let program = compile::compile(&source, &resolved)?;
    let filter = Filter {
        source,
        digest,
        flags: resolved.flags,
        program,
    };
    // A cache that cannot be written only costs the next run a compile.
    let _ = store_in_cache(root, &cached, &filter);
    Ok(Some(filter))
}

fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn digest(json: &[u8], caps: &[String], arch: &str, kernel: (u32, u32)) -> String {
    let mut h = Sha256::new();
    let v = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_default();
    let head = format!(
        "{CACHE_FORMAT}\nlibseccomp {v}\n{arch}\nkernel {}.{}\n{}\n",
        kernel.0,
        kernel.1,
        caps.join(",")
    );
    h.update(head.as_bytes());
    h.update(json);
    hex::encode(h.finalize())
}

fn cache_dir(root: &Path) -> PathBuf {
    root.join("seccomp")
}

fn store_in_cache(root: &Path, path: &Path, f: &Filter) -> Result<()> {
    let dir = cache_dir(root);
    fs::create_dir_all(&dir).map_err(io("mkdir", &dir))?;
    // Temps of compiles that were killed (only a miss pays for this listing).
    for dead in crate::sys::owned_temp::dead_in(&dir) {
        let _ = fs::remove_file(dead);
    }
    let tmp = crate::sys::owned_temp::path_in(&dir, &f.digest);
    write_program(&tmp, f.flags, &f.program)?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io("rename", path)(e)
    })
}

/// Writes a program with its flags and checksum (a torn file is refused on reading).
pub fn write_program(path: &Path, flags: u32, program: &[u8]) -> Result<()> {
    let mut data = Vec::with_capacity(program.len() + 44);
    data.extend_from_slice(MAGIC);
    data.extend_from_slice(&flags.to_le_bytes());
    data.extend_from_slice(&Sha256::digest(program));
    data.extend_from_slice(program);
    fs::write(path, data).map_err(io("write", path))
}

/// Reads what `write_program` wrote: (flags, program).
pub fn read_program(path: &Path) -> Result<(u32, Vec<u8>)> {
    let data = fs::read(path).map_err(io("reading", path))?;
    let damaged = || invalid!("{}: damaged seccomp filter", path.display());
    if data.len() < 44 || &data[..8] != MAGIC {
        return Err(damaged());
    }
    let flags = u32::from_le_bytes(data[8..12].try_into().map_err(|_| damaged())?);
    let program = &data[44..];
    if Sha256::digest(program).as_slice() != &data[12..44] || !program.len().is_multiple_of(8) {
        return Err(damaged());
    }
    Ok((flags, program.to_vec()))
}

/// Loads `program` as the calling thread's seccomp filter. Needs no_new_privs, or
/// CAP_SYS_ADMIN in the process's user namespace.
pub fn install(flags: u32, program: &[u8]) -> Result<()> {
    #[repr(C)]
    struct SockFprog {
        len: libc::c_ushort,
        filter: *const u8,
    }
    let len = libc::c_ushort::try_from(program.len() / 8).map_err(|_| {
        invalid!(
            "seccomp filter of {} instructions is too long",
            program.len() / 8
        )
    })?;
    let prog = SockFprog {
        len,
        filter: program.as_ptr(),
    };
    // SAFETY: seccomp(SECCOMP_SET_MODE_FILTER) reads the program we point to.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER as libc::c_ulong,
            flags as libc::c_ulong,
            &prog as *const SockFprog,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("load the seccomp filter");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn builtin_profile_names_only_known_system_calls() {
        let (arch, short_arch) = profile::native_arch();
        let c = caps(&["CAP_CHOWN"]);
        let t = profile::Target {
            arch,
            short_arch,
            kernel: (6, 1),
            caps: &c,
        };
        let r = profile::resolve(BUILTIN_NAME, BUILTIN_PROFILE.as_bytes(), &t).unwrap();
        assert_eq!(r.default_action, profile::Action::Errno(libc::EPERM as u16));
        assert_eq!(
            r.arches,
            ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
        );
        let program = compile::compile(BUILTIN_NAME, &r).unwrap();
        assert!(!program.is_empty() && program.len().is_multiple_of(8));
        // The program tells the architectures apart by their audit numbers (x32 shares
        // x86_64's and is told by its syscall bit): x86_64 and i386 must both appear.
        if std::env::consts::ARCH == "x86_64" {
            let constants: Vec<u32> = program
                .chunks(8)
                .map(|i| u32::from_ne_bytes(i[4..8].try_into().unwrap()))
                .collect();
            const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
            const AUDIT_ARCH_I386: u32 = 0x4000_0003;
            assert!(constants.contains(&AUDIT_ARCH_X86_64));
            assert!(constants.contains(&AUDIT_ARCH_I386));
        }
    }

    #[test]
    fn cached_programs_are_reused_and_checked() {
        let t = tempfile::tempdir().unwrap();
        let c = caps(&["CAP_CHOWN", "CAP_KILL"]);
        let first = prepare(t.path(), &Choice::Default, &c).unwrap().unwrap();
        let again = prepare(t.path(), &Choice::Default, &c).unwrap().unwrap();
        assert_eq!(first.digest, again.digest);
        assert_eq!(first.program, again.program);
        let other = prepare(t.path(), &Choice::Default, &caps(&["CAP_SYS_ADMIN"]))
            .unwrap()
            .unwrap();
        assert_ne!(first.digest, other.digest);
        assert!(
            prepare(t.path(), &Choice::Unconfined, &c)
                .unwrap()
                .is_none()
        );
        // A torn cache entry is compiled again, not loaded.
        let path = cache_dir(t.path()).join(format!("{}.bpf", first.digest));
        let data = fs::read(&path).unwrap();
        fs::write(&path, &data[..data.len() - 8]).unwrap();
        assert!(read_program(&path).is_err());
        let fresh = prepare(t.path(), &Choice::Default, &c).unwrap().unwrap();
        assert_eq!(fresh.program, first.program);
    }

    #[test]
    fn unknown_system_call_names_its_entry() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("p.json");
        fs::write(
            &p,
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {"names":["read"],"action":"SCMP_ACT_ALLOW"},
                {"names":["mkdir","no_such_call"],"action":"SCMP_ACT_ERRNO"}]}"#,
        )
        .unwrap();
        let e = prepare(t.path(), &Choice::File(p.clone()), &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&p.display().to_string())
                && e.contains("syscalls[1]")
                && e.contains("no_such_call"),
            "{e}"
        );
    }
}
