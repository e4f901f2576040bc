//! What a container may do: its capabilities, no_new_privs and seccomp filter, decided
//! once from the flags (`SecurityOptions`), kept in its record (`state::Security`, with
//! the compiled filter beside it) and applied to every process started in it.
use super::options::SecurityOptions;
use super::seccomp::{self, Choice, Filter};
use super::state::{Container, Security};
use super::{capabilities, linux};
use crate::error::Result;
use std::path::{Path, PathBuf};

/// `--security-opt` values, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SecurityOpts {
    seccomp: Choice,
    no_new_privileges: bool,
}

/// Reads `--security-opt` values: `seccomp=PROFILE.json|unconfined` and
/// `no-new-privileges[=true|false]` (docker also accepts `:` for `=`).
fn parse_security_opts(values: &[String]) -> Result<SecurityOpts> {
    let mut out = SecurityOpts {
        seccomp: Choice::Default,
        no_new_privileges: true,
    };
    for v in values {
        let (key, value) = match v.split_once(['=', ':']) {
            Some((k, val)) => (k, Some(val)),
            None => (v.as_str(), None),
        };
        match (key, value) {
            ("seccomp", Some("unconfined")) => out.seccomp = Choice::Unconfined,
            ("seccomp", Some(path)) if !path.is_empty() => {
                out.seccomp = Choice::File(absolute(Path::new(path)))
            }
            ("no-new-privileges", None | Some("true")) => out.no_new_privileges = true,
            ("no-new-privileges", Some("false")) => out.no_new_privileges = false,
            _ => bail!(
                "--security-opt {v:?}: supported are seccomp=PROFILE.json, seccomp=unconfined and no-new-privileges[=true|false]"
            ),
        }
    }
    Ok(out)
}

/// The profile's path as the record keeps it: relative to where `run` was started.
fn absolute(p: &Path) -> PathBuf {
    match p.is_absolute() {
        true => p.to_path_buf(),
        false => std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf()),
    }
}

/// Decides a new container's privileges and compiles its filter (or finds it in the cache
/// under `root`). Any bad flag or profile is an error here, before anything is created.
pub fn plan(root: &Path, o: &SecurityOptions) -> Result<(Security, Option<Filter>)> {
    let opts = parse_security_opts(&o.security_opt)?;
    let mut caps = capabilities::effective_set(&o.cap_add, &o.cap_drop, o.privileged)?;
    // SAFETY: getter. Rootless containers cannot use device nodes in any case.
    let as_root = unsafe { libc::geteuid() } == 0;
    let unrestricted =
        as_root && crate::cgroups::devices_unrestricted(&crate::cgroups::Mounts::read()).is_some();
    capabilities::without_mknod_when_unrestricted(
        &mut caps,
        &o.cap_add,
        o.privileged,
        unrestricted,
    );
    let names = capabilities::names(&caps);
    // docker: a privileged container has no filter, whatever profile was named.
    let choice = match o.privileged {
        true => Choice::Unconfined,
        false => opts.seccomp,
    };
    let filter = seccomp::prepare(root, &choice, &names)?;
    let security = Security {
        privileged: o.privileged,
        no_new_privileges: opts.no_new_privileges,
        capabilities: names,
        seccomp: filter
            .as_ref()
            .map_or_else(|| "unconfined".to_string(), |f| f.source.clone()),
        seccomp_digest: filter.as_ref().map(|f| f.digest.clone()),
    };
    Ok((security, filter))
}

/// What the container process (and each `exec`) applies before it runs its command.
#[derive(Debug, Clone)]
pub struct ProcessSecurity {
    /// The bounding set, and root's effective and permitted sets.
    pub caps: Vec<u32>,
    pub no_new_privs: bool,
    /// (flags, program) of the seccomp filter.
    pub filter: Option<(u32, Vec<u8>)>,
}

impl Default for ProcessSecurity {
    /// A record from before capabilities and seccomp were recorded: docker's default
    /// capabilities, no_new_privs, no filter (as such containers always ran).
    fn default() -> Self {
        ProcessSecurity {
            caps: linux::DEFAULT_CAPS.to_vec(),
            no_new_privs: true,
            filter: None,
        }
    }
}

/// Reads what `c`'s record asks for, the compiled filter included (read while the host's
/// files are still in view).
pub fn for_container(c: &Container) -> Result<ProcessSecurity> {
    let Some(s) = &c.config.security else {
        return Ok(ProcessSecurity::default());
    };
    let mut caps = Vec::new();
    for n in &s.capabilities {
        caps.push(
            capabilities::number(n)
                .ok_or_else(|| invalid!("container {}: unknown capability {n:?}", c.name))?,
        );
    }
    let filter = match s.seccomp_digest {
        Some(_) => Some(seccomp::read_program(&c.seccomp_path())?),
        None => None,
    };
    Ok(ProcessSecurity {
        caps,
        no_new_privs: s.no_new_privileges,
        filter,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: &[&str]) -> Result<SecurityOpts> {
        parse_security_opts(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn security_opt_values() {
        let d = opts(&[]).unwrap();
        assert_eq!(d.seccomp, Choice::Default);
        assert!(d.no_new_privileges);
        assert_eq!(
            opts(&["seccomp=unconfined"]).unwrap().seccomp,
            Choice::Unconfined
        );
        assert_eq!(
            opts(&["seccomp:unconfined"]).unwrap().seccomp,
            Choice::Unconfined
        );
        assert_eq!(
            opts(&["seccomp=/p.json"]).unwrap().seccomp,
            Choice::File("/p.json".into())
        );
        assert!(
            !opts(&["no-new-privileges=false"])
                .unwrap()
                .no_new_privileges
        );
        assert!(opts(&["no-new-privileges"]).unwrap().no_new_privileges);
        assert!(opts(&["no-new-privileges:true"]).unwrap().no_new_privileges);
        for bad in [
            "seccomp",
            "seccomp=",
            "apparmor=x",
            "no-new-privileges=maybe",
        ] {
            let e = opts(&[bad]).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn privileged_has_every_capability_and_no_filter() {
        let t = tempfile::tempdir().unwrap();
        let o = SecurityOptions {
            privileged: true,
            security_opt: vec!["seccomp=/does/not/matter.json".into()],
            ..Default::default()
        };
        let (s, f) = plan(t.path(), &o).unwrap();
        assert!(f.is_none());
        assert_eq!(s.seccomp, "unconfined");
        assert!(s.capabilities.contains(&"CAP_SYS_ADMIN".to_string()));
        let (s, f) = plan(t.path(), &SecurityOptions::default()).unwrap();
        assert!(f.is_some() && s.seccomp_digest.is_some());
        assert!(!s.capabilities.contains(&"CAP_SYS_ADMIN".to_string()));
    }
}
