//! The docker/OCI seccomp profile format (what `docker run --security-opt seccomp=FILE`
//! and podman's `/usr/share/containers/seccomp.json` hold), read and narrowed to the rules
//! that apply to one container: its capabilities, this machine's architecture and kernel.
//! Pure: no libseccomp here, so every rule is testable without loading a filter.
use crate::error::Result;
use serde::Deserialize;

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: String,
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    arch_map: Vec<ArchEntry>,
    #[serde(default)]
    syscalls: Option<Vec<Syscall>>,
    #[serde(default)]
    flags: Vec<String>,
    listener_path: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct ArchEntry {
    architecture: String,
    #[serde(default)]
    sub_architectures: Option<Vec<String>>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
struct Syscall {
    /// The old one-name form.
    name: Option<String>,
    #[serde(default)]
    names: Vec<String>,
    action: String,
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<Arg>>,
    #[serde(default)]
    includes: Option<Filter>,
    #[serde(default)]
    excludes: Option<Filter>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
struct Arg {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    caps: Option<Vec<String>>,
    #[serde(default)]
    arches: Option<Vec<String>>,
    min_kernel: Option<String>,
}

/// What a matching system call gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Errno(u16),
    KillThread,
    KillProcess,
    Trap,
    Trace(u16),
    Log,
}

/// An argument comparison (`value` is the mask of `MaskedEq`, `value_two` its datum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Condition {
    pub index: u32,
    pub op: Op,
    pub value: u64,
    pub value_two: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    MaskedEq,
}

/// One profile entry that applies: each of `alternatives` is one filter rule (its
/// conditions all hold); no alternatives means the names match whatever the arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Where it came from, for errors: `syscalls[3]`.
    pub entry: usize,
    pub names: Vec<String>,
    pub action: Action,
    pub alternatives: Vec<Vec<Condition>>,
}

/// A profile narrowed to one container on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub default_action: Action,
    /// `SCMP_ARCH_*` names, the native one first.
    pub arches: Vec<String>,
    /// `SECCOMP_FILTER_FLAG_*` bits for seccomp(2).
    pub flags: u32,
    pub rules: Vec<Rule>,
    /// Every name the profile mentions, with its entry (checked against libseccomp's
    /// table whether or not its rule applies here).
    pub all_names: Vec<(usize, String)>,
}

/// The machine a profile is narrowed for.
pub struct Target<'a> {
    /// `SCMP_ARCH_X86_64`.
    pub arch: &'a str,
    /// docker's name of it in `includes.arches` (`amd64`).
    pub short_arch: &'a str,
    /// (major, minor) of the running kernel.
    pub kernel: (u32, u32),
    /// Capability names in effect (`CAP_SYS_ADMIN`).
    pub caps: &'a [String],
}

/// This machine's architecture in seccomp's and docker's names.
pub fn native_arch() -> (&'static str, &'static str) {
    match std::env::consts::ARCH {
        "x86_64" => ("SCMP_ARCH_X86_64", "amd64"),
        "x86" => ("SCMP_ARCH_X86", "x86"),
        "aarch64" => ("SCMP_ARCH_AARCH64", "arm64"),
        "arm" => ("SCMP_ARCH_ARM", "arm"),
        "riscv64" => ("SCMP_ARCH_RISCV64", "riscv64"),
        "s390x" => ("SCMP_ARCH_S390X", "s390x"),
        "powerpc64" => ("SCMP_ARCH_PPC64LE", "ppc64le"),
        "loongarch64" => ("SCMP_ARCH_LOONGARCH64", "loong64"),
        other => (other, other),
    }
}

/// (major, minor) of a kernel release string (`6.18.44-foo` → (6, 18)).
pub fn kernel_version(release: &str) -> (u32, u32) {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor)
}

fn action(name: &str, errno: Option<u32>, default_errno: u16) -> Option<Action> {
    let errno = errno.map_or(default_errno, |e| e.min(u16::MAX as u32) as u16);
    Some(match name {
        "SCMP_ACT_ALLOW" => Action::Allow,
        "SCMP_ACT_ERRNO" => Action::Errno(errno),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
        "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
        "SCMP_ACT_TRAP" => Action::Trap,
        "SCMP_ACT_TRACE" => Action::Trace(errno),
        "SCMP_ACT_LOG" => Action::Log,
        _ => return None,
    })
}

fn op(name: &str) -> Option<Op> {
    Some(match name {
        "SCMP_CMP_NE" => Op::Ne,
        "SCMP_CMP_LT" => Op::Lt,
        "SCMP_CMP_LE" => Op::Le,
        "SCMP_CMP_EQ" => Op::Eq,
        "SCMP_CMP_GE" => Op::Ge,
        "SCMP_CMP_GT" => Op::Gt,
        "SCMP_CMP_MASKED_EQ" => Op::MaskedEq,
        _ => return None,
    })
}

fn flag(name: &str) -> Option<u32> {
    Some(match name {
        // One thread when the filter is loaded: nothing to synchronise.
        "SECCOMP_FILTER_FLAG_TSYNC" => 0,
        "SECCOMP_FILTER_FLAG_LOG" => 2,
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => 4,
        _ => return None,
    })
}

impl Filter {
    /// Whether every condition of an `includes` holds.
    fn all_hold(&self, t: &Target) -> bool {
        let caps_ok = self.caps.iter().flatten().all(|c| has_cap(t, c));
        let arch_ok = match &self.arches {
            Some(a) if !a.is_empty() => a.iter().any(|x| x == t.short_arch),
            _ => true,
        };
        let kernel_ok = self
            .min_kernel
            .as_deref()
            .is_none_or(|k| t.kernel >= kernel_version(k));
        caps_ok && arch_ok && kernel_ok
    }

    /// Whether any condition of an `excludes` holds.
    fn any_holds(&self, t: &Target) -> bool {
        let cap = self.caps.iter().flatten().any(|c| has_cap(t, c));
        let arch = self.arches.iter().flatten().any(|x| x == t.short_arch);
        let kernel = self
            .min_kernel
            .as_deref()
            .is_some_and(|k| t.kernel >= kernel_version(k));
        cap || arch || kernel
    }
}

fn has_cap(t: &Target, c: &str) -> bool {
    let want = crate::capabilities::full_name(c);
    t.caps.contains(&want)
}

/// Reads a profile (`label` names it in errors: the file, or the built-in one) and keeps
/// what applies to `t`. Unknown actions, operators, flags, an architecture list without
/// this machine's, or JSON that is no profile are errors naming the entry.
pub fn resolve(label: &str, json: &[u8], t: &Target) -> Result<Resolved> {
    let p: Profile = serde_json::from_slice(json)
        .map_err(|e| invalid!("seccomp profile {label}: not a seccomp profile: {e}"))?;
    if p.listener_path.is_some() {
        bail!("seccomp profile {label}: listenerPath (SCMP_ACT_NOTIFY) is not supported");
    }
    let default_action = action(&p.default_action, p.default_errno_ret, libc::EPERM as u16)
        .ok_or_else(|| {
            invalid!(
                "seccomp profile {label}: defaultAction: unknown action {:?}",
                p.default_action
            )
        })?;
    let arches = arches(label, &p, t)?;
    let mut flags = 0;
    for f in &p.flags {
        flags |= flag(f).ok_or_else(|| {
            invalid!("seccomp profile {label}: flags: unknown or unsupported flag {f:?}")
        })?;
    }
    let mut rules = Vec::new();
    let mut all_names = Vec::new();
    for (i, s) in p.syscalls.iter().flatten().enumerate() {
        let here = || format!("seccomp profile {label}: syscalls[{i}]");
        let names: Vec<String> = s.name.iter().chain(s.names.iter()).cloned().collect();
        if names.is_empty() {
            bail!("{}: no system call names", here());
        }
        all_names.extend(names.iter().map(|n| (i, n.clone())));
        // A rule's errno is its own or EPERM (not defaultErrnoRet), as runc reads it.
        let act = action(&s.action, s.errno_ret, libc::EPERM as u16)
            .ok_or_else(|| invalid!("{} ({}): unknown action {:?}", here(), names[0], s.action))?;
        let mut conds = Vec::new();
        for a in s.args.iter().flatten() {
            let o = op(&a.op).ok_or_else(|| {
                invalid!("{} ({}): unknown operator {:?}", here(), names[0], a.op)
            })?;
            if a.index > 5 {
                bail!(
                    "{} ({}): argument index {} (0 to 5)",
                    here(),
                    names[0],
                    a.index
                );
            }
            conds.push(Condition {
                index: a.index,
                op: o,
                value: a.value,
                value_two: a.value_two,
            });
        }
        let applies = s.includes.as_ref().is_none_or(|f| f.all_hold(t))
            && !s.excludes.as_ref().is_some_and(|f| f.any_holds(t));
        // A rule that does what the default does changes nothing (libseccomp refuses it).
        if !applies || act == default_action {
            continue;
        }
        rules.push(Rule {
            entry: i,
            names,
            action: act,
            alternatives: alternatives(conds),
        });
    }
    Ok(Resolved {
        default_action,
        arches,
        flags,
        rules,
        all_names,
    })
}

/// Conditions on distinct arguments all hold together (one rule); two on the same
/// argument cannot, so each becomes a rule of its own (either matches), as runc reads them.
fn alternatives(conds: Vec<Condition>) -> Vec<Vec<Condition>> {
    if conds.is_empty() {
        return vec![];
    }
    let repeated = conds
        .iter()
        .enumerate()
        .any(|(i, c)| conds[..i].iter().any(|d| d.index == c.index));
    match repeated {
        true => conds.into_iter().map(|c| vec![c]).collect(),
        false => vec![conds],
    }
}

/// The architectures the filter covers: the `archMap` entry of this machine with its
/// compat ones, else the `architectures` list (which must hold this machine's), else this
/// machine's alone.
fn arches(label: &str, p: &Profile, t: &Target) -> Result<Vec<String>> {
    if !p.arch_map.is_empty() {
        let Some(entry) = p.arch_map.iter().find(|e| e.architecture == t.arch) else {
            let listed: Vec<&str> = p.arch_map.iter().map(|e| e.architecture.as_str()).collect();
            bail!(
                "seccomp profile {label}: archMap targets {} and not this machine's {}",
                listed.join(", "),
                t.arch
            );
        };
        let mut out = vec![entry.architecture.clone()];
        out.extend(entry.sub_architectures.iter().flatten().cloned());
        return Ok(out);
    }
    if !p.architectures.is_empty() {
        if !p.architectures.iter().any(|a| a == t.arch) {
            bail!(
                "seccomp profile {label}: architectures targets {} and not this machine's {}",
                p.architectures.join(", "),
                t.arch
            );
        }
        let mut out = vec![t.arch.to_string()];
        out.extend(p.architectures.iter().filter(|a| *a != t.arch).cloned());
        return Ok(out);
    }
    Ok(vec![t.arch.to_string()])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(caps: &[String]) -> Target<'_> {
        Target {
            arch: "SCMP_ARCH_X86_64",
            short_arch: "amd64",
            kernel: (6, 1),
            caps,
        }
    }

    const PROFILE: &str = r#"{
        "defaultAction": "SCMP_ACT_ERRNO",
        "archMap": [
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}
        ],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
             "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
             "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["set_tls"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm", "arm64"]}},
            {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
            {"names": ["newer"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "7.0"}},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                      {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_NE"},
                      {"index": 2, "value": 9, "op": "SCMP_CMP_NE"}]}
        ]
    }"#;

    fn names(r: &Resolved) -> Vec<&str> {
        r.rules
            .iter()
            .flat_map(|r| r.names.iter().map(String::as_str))
            .collect()
    }

    #[test]
    fn rules_follow_capabilities_arch_and_kernel() {
        let none: Vec<String> = vec![];
        let r = resolve("p", PROFILE.as_bytes(), &target(&none)).unwrap();
        assert_eq!(r.default_action, Action::Errno(libc::EPERM as u16));
        let enosys = PROFILE.replacen(
            "\"SCMP_ACT_ERRNO\",",
            "\"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": 38,",
            1,
        );
        let r38 = resolve("p", enosys.as_bytes(), &target(&none)).unwrap();
        assert_eq!(r38.default_action, Action::Errno(libc::ENOSYS as u16));
        // Rules keep EPERM unless they say otherwise; one that now does what the
        // default does (clone3's ENOSYS) is left out.
        let without_clone3: Vec<Rule> = r
            .rules
            .iter()
            .filter(|x| x.names[0] != "clone3")
            .cloned()
            .collect();
        assert_eq!(r38.rules, without_clone3);
        let own = r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}"#;
        let own = resolve("p", own.as_bytes(), &target(&none)).unwrap();
        assert_eq!(own.rules[0].action, Action::Errno(libc::EPERM as u16));
        assert_eq!(
            r.arches,
            ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
        );
        assert_eq!(
            names(&r),
            [
                "read",
                "write",
                "clone",
                "clone3",
                "ptrace",
                "personality",
                "socket"
            ]
        );
        let clone3 = r.rules.iter().find(|r| r.names[0] == "clone3").unwrap();
        assert_eq!(clone3.action, Action::Errno(38));
        // Two conditions on argument 0: either value; on distinct arguments: both.
        let pers = r
            .rules
            .iter()
            .find(|r| r.names[0] == "personality")
            .unwrap();
        assert_eq!(pers.alternatives.len(), 2);
        let sock = r.rules.iter().find(|r| r.names[0] == "socket").unwrap();
        assert_eq!(sock.alternatives.len(), 1);
        assert_eq!(sock.alternatives[0].len(), 2);

        let admin = vec!["CAP_SYS_ADMIN".to_string()];
        let r = resolve("p", PROFILE.as_bytes(), &target(&admin)).unwrap();
        assert_eq!(
            names(&r),
            ["read", "write", "mount", "ptrace", "personality", "socket"]
        );
    }

    #[test]
    fn bad_profiles_name_file_and_entry() {
        let none: Vec<String> = vec![];
        let err = |json: &str| {
            resolve("/x.json", json.as_bytes(), &target(&none))
                .unwrap_err()
                .to_string()
        };
        let e = err("{not json");
        assert!(
            e.contains("/x.json") && e.contains("not a seccomp profile"),
            "{e}"
        );
        let e = err(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["read"],"action":"SCMP_ACT_ALLOW"},
            {"names":["mkdir"],"action":"SCMP_ACT_EXPLODE"}]}"#);
        assert!(
            e.contains("syscalls[1]") && e.contains("SCMP_ACT_EXPLODE"),
            "{e}"
        );
        let e = err(r#"{"defaultAction":"SCMP_ACT_NOPE"}"#);
        assert!(e.contains("defaultAction"), "{e}");
        let e = err(r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_AARCH64"]}"#);
        assert!(
            e.contains("SCMP_ARCH_AARCH64") && e.contains("SCMP_ARCH_X86_64"),
            "{e}"
        );
        let e = err(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"SCMP_CMP_ABOUT"}]}]}"#);
        assert!(
            e.contains("syscalls[0]") && e.contains("SCMP_CMP_ABOUT"),
            "{e}"
        );
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(kernel_version("6.18.44-fc-v1147"), (6, 18));
        assert_eq!(kernel_version("4.8"), (4, 8));
        assert!((6, 1) >= kernel_version("4.8"));
    }
}
