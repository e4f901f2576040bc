//! The seccomp filter and capabilities of real containers, root and rootless: docker's
//! default profile (EPERM for namespaces, keyrings, bpf, perf, userfaultfd, mount, swap),
//! `--security-opt seccomp=...|unconfined`, `--cap-add`, `--privileged`, custom and broken
//! profiles, and that ordinary programs (busybox, apt, dpkg) still run.
mod runner_support;
use runner_support::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// `probe NAME...` makes each system call with harmless arguments and prints
/// `NAME=ERRNO` (0 when it succeeded).
const PROBE_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <unistd.h>

static long call(const char *n) {
    if (!strcmp(n, "unshare_user")) return unshare(CLONE_NEWUSER);
    if (!strcmp(n, "keyctl")) return syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3 /* session */, 0);
    if (!strcmp(n, "add_key")) return syscall(SYS_add_key, "user", "unionctl-probe", "x", 1, -2 /* process */);
    if (!strcmp(n, "bpf")) return syscall(SYS_bpf, 0 /* MAP_CREATE */, NULL, 0);
    if (!strcmp(n, "perf_event_open")) {
        struct perf_event_attr a;
        memset(&a, 0, sizeof a);
        a.size = sizeof a;
        a.type = PERF_TYPE_SOFTWARE;
        a.config = PERF_COUNT_SW_CPU_CLOCK;
        return syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
    }
    if (!strcmp(n, "userfaultfd")) return syscall(SYS_userfaultfd, O_CLOEXEC);
    if (!strcmp(n, "mount")) return mount("probe", "/tmp", "tmpfs", 0, NULL);
    if (!strcmp(n, "swapon")) return swapon("/no-such-swap", 0);
    if (!strcmp(n, "mkdir")) return syscall(SYS_mkdir, "/probe-dir", 0755);
    if (!strcmp(n, "mkdirat")) return syscall(SYS_mkdirat, AT_FDCWD, "/probe-dir2", 0755);
    errno = EINVAL;
    return -1;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        errno = 0;
        long r = call(argv[i]);
        printf("%s=%d\n", argv[i], r < 0 ? errno : 0);
    }
    return 0;
}
"#;

/// The calls docker's default profile refuses with EPERM.
const DENIED: [&str; 8] = [
    "unshare_user",
    "keyctl",
    "add_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "mount",
    "swapon",
];

/// A busybox rootfs with the probe as /bin/probe (built once, shared, never changed).
fn probe_rootfs() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        PROBE_C.hash(&mut h);
        let dir = PathBuf::from(CACHE).join(format!("seccomp-probe-{:016x}", h.finish()));
        if dir.join("bin/probe").exists() {
            return dir;
        }
        fs::create_dir_all(CACHE).unwrap();
        let tmp = PathBuf::from(CACHE).join(format!("seccomp-probe.tmp{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        build_busybox_rootfs(&tmp);
        let mut gcc = Command::new("gcc")
            .args(["-static", "-O1", "-o"])
            .arg(tmp.join("bin/probe"))
            .args(["-x", "c", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("gcc (scripts/install-deps.sh installs it)");
        use std::io::Write;
        gcc.stdin
            .take()
            .unwrap()
            .write_all(PROBE_C.as_bytes())
            .unwrap();
        assert!(gcc.wait().unwrap().success(), "gcc failed on the probe");
        if fs::rename(&tmp, &dir).is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        dir
    })
    .clone()
}

/// `NAME=ERRNO` lines of the probe, as pairs.
fn probed(out: &str) -> Vec<(String, i32)> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .filter_map(|(n, e)| Some((n.to_string(), e.trim().parse().ok()?)))
        .collect()
}

#[track_caller]
fn assert_all_eperm(out: &str) {
    let got = probed(out);
    for name in DENIED {
        let errno = got.iter().find(|(n, _)| n == name).map(|(_, e)| *e);
        assert_eq!(errno, Some(libc::EPERM), "{name} in:\n{out}");
    }
}

fn seccomp_mode(out: &str) -> Option<String> {
    out.lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .map(|v| v.trim().to_string())
}

/// A script for `sh -c`: the status line, then every denied call through the probe.
fn probe_script() -> String {
    format!(
        "grep '^Seccomp:' /proc/self/status; probe {}",
        DENIED.join(" ")
    )
}

fn rootfs_arg() -> String {
    probe_rootfs().to_string_lossy().into_owned()
}

#[test]
fn default_profile_denies_what_docker_denies() {
    let s = Store::new();
    let out = ok(&s.run(&[
        "run",
        "--rm",
        "--rootfs",
        &rootfs_arg(),
        "sh",
        "-c",
        &probe_script(),
    ]));
    assert_eq!(seccomp_mode(&out).as_deref(), Some("2"), "{out}");
    assert_all_eperm(&out);
    // busybox's unshare applet, as the issue shows it.
    let o = s.run(&[
        "run",
        "--rm",
        "--rootfs",
        &rootfs_arg(),
        "unshare",
        "-U",
        "-r",
        "true",
    ]);
    assert_ne!(code(&o), 0);
    assert!(
        stderr(&o).contains("Operation not permitted"),
        "{}",
        stderr(&o)
    );
    // Without no_new_privs the filter is loaded while the process still holds
    // CAP_SYS_ADMIN, before it drops its capabilities.
    let out = ok(&s.run(&[
        "run",
        "--rm",
        "--security-opt",
        "no-new-privileges=false",
        "--rootfs",
        &rootfs_arg(),
        "sh",
        "-c",
        "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; probe unshare_user",
    ]));
    assert!(out.contains("NoNewPrivs:\t0\nSeccomp:\t2\n"), "{out}");
    assert!(out.ends_with("unshare_user=1\n"), "{out}");
    // The record says which profile is in effect.
    ok(&s.run(&["run", "--name", "rec", "--rootfs", &rootfs_arg(), "true"]));
    let security = &record(&s, "rec")["config"]["security"];
    assert_eq!(security["seccomp"], "builtin", "{security}");
    assert!(security["seccomp_digest"].is_string(), "{security}");
    // docker's view: the default profile is no SecurityOpt.
    let shown = ok(&s.run(&["inspect", "-f", "{{json .HostConfig.SecurityOpt}}", "rec"]));
    assert_eq!(shown.trim(), "null");
}

/// The container's record (state.json): what the runner keeps, beyond docker's view.
fn record(s: &Store, name: &str) -> serde_json::Value {
    let id = ok(&s.run(&["inspect", "-f", "{{.Id}}", name]));
    let path = s
        .root()
        .join("containers")
        .join(id.trim())
        .join("state.json");
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

#[test]
fn exec_and_init_run_under_the_filter() {
    let s = Store::new();
    // --init: pid 1 (our init) and the command both filtered; the exit status still
    // comes back through init.
    let o = s.run(&[
        "run",
        "--rm",
        "--init",
        "--rootfs",
        &rootfs_arg(),
        "sh",
        "-c",
        "grep '^Seccomp:' /proc/1/status /proc/self/status; probe unshare_user; exit 7",
    ]);
    assert_eq!(code(&o), 7, "{}", stderr(&o));
    assert_eq!(
        stdout(&o).matches("Seccomp:\t2").count(),
        2,
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("unshare_user=1"), "{}", stdout(&o));

    let id = ok(&s.run(&["run", "-d", "--rootfs", &rootfs_arg(), "sleep", "600"]));
    let id = id.trim();
    let out = ok(&s.run(&["exec", id, "sh", "-c", &probe_script()]));
    assert_eq!(seccomp_mode(&out).as_deref(), Some("2"), "{out}");
    assert_all_eperm(&out);
    ok(&s.run(&["rm", "-f", id]));
}

#[test]
fn ordinary_programs_still_run() {
    let s = Store::new();
    let minbase = minbase_rootfs().to_string_lossy().into_owned();
    let out = ok(&s.run(&[
        "run",
        "--rm",
        "--rootfs",
        &minbase,
        "sh",
        "-c",
        "apt-get --version | head -n1; dpkg -l | grep -c '^ii' >/dev/null && echo dpkg-ok; \
         printf 'b\\na\\n' | sort | tr a-z A-Z | paste -sd, -; grep '^Seccomp:' /proc/self/status",
    ]));
    assert!(out.starts_with("apt "), "{out}");
    assert!(out.contains("dpkg-ok\nA,B\n"), "{out}");
    assert_eq!(seccomp_mode(&out).as_deref(), Some("2"), "{out}");
    let out = ok(&s.run(&[
        "run", "--rm", "--rootfs", &rootfs_arg(), "sh", "-c",
        "busybox echo hi | busybox wc -c; busybox ls / | busybox grep -c bin; \
         busybox ps >/dev/null && echo ps-ok; busybox sleep 0 && busybox date +%Y >/dev/null && echo ok",
    ]));
    assert_eq!(out, "3\n1\nps-ok\nok\n");
}

#[test]
fn unconfined_and_cap_add_lift_what_docker_lifts() {
    let s = Store::new();
    let out = ok(&s.run(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        "--rootfs",
        &rootfs_arg(),
        "sh",
        "-c",
        "grep '^Seccomp:' /proc/self/status; probe unshare_user keyctl",
    ]));
    assert_eq!(seccomp_mode(&out).as_deref(), Some("0"), "{out}");
    assert!(out.contains("unshare_user=0\nkeyctl=0\n"), "{out}");

    // CAP_SYS_ADMIN opens namespaces and mounts, as in docker; keyrings stay closed.
    let out = ok(&s.run(&[
        "run",
        "--rm",
        "--cap-add",
        "SYS_ADMIN",
        "--rootfs",
        &rootfs_arg(),
        "sh",
        "-c",
        // mount first: after unshare_user the probe holds no capability over our mounts.
        "grep '^Seccomp:' /proc/self/status; probe mount keyctl unshare_user",
    ]));
    assert_eq!(seccomp_mode(&out).as_deref(), Some("2"), "{out}");
    assert!(out.contains("mount=0\nkeyctl=1\nunshare_user=0\n"), "{out}");

    // Privileged: every capability, no filter, writable /sys and /proc/sys.
    let out = ok(&s.run(&[
        "run",
        "--rm",
        "--privileged",
        "--rootfs",
        &rootfs_arg(),
        "sh",
        "-c",
        "grep '^Seccomp:' /proc/self/status; grep ' /sys ' /proc/self/mounts; \
         grep -c ' /proc/sys .*ro,' /proc/self/mounts || true",
    ]));
    assert_eq!(seccomp_mode(&out).as_deref(), Some("0"), "{out}");
    assert!(out.contains(" /sys sysfs rw,"), "{out}");
    assert!(out.ends_with("0\n"), "{out}");

    // --cap-drop ALL: no capability at all, and a filter without the capability rules.
    let out = ok(&s.run(&[
        "run",
        "--rm",
        "--cap-drop",
        "ALL",
        "--rootfs",
        &rootfs_arg(),
        "sh",
        "-c",
        "grep -E '^(CapEff|Seccomp):' /proc/self/status",
    ]));
    assert!(
        out.contains("CapEff:\t0000000000000000\nSeccomp:\t2\n"),
        "{out}"
    );
}

#[test]
fn custom_profile_sets_the_errno() {
    let s = Store::new();
    let profile = s.root().join("no-mkdir.json");
    fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let o = s.run(&[
        "run",
        "--name",
        "nomkdir",
        "--security-opt",
        &opt,
        "--rootfs",
        &rootfs_arg(),
        "sh",
        "-c",
        "probe mkdir mkdirat; mkdir /made",
    ]);
    assert_ne!(code(&o), 0);
    assert!(
        stdout(&o).contains("mkdir=13\nmkdirat=13\n"),
        "{}",
        stdout(&o)
    );
    assert!(stderr(&o).contains("Permission denied"), "{}", stderr(&o));
    let security = &record(&s, "nomkdir")["config"]["security"];
    assert_eq!(
        security["seccomp"],
        profile.display().to_string(),
        "{security}"
    );
    let shown = ok(&s.run(&[
        "inspect",
        "-f",
        "{{json .HostConfig.SecurityOpt}}",
        "nomkdir",
    ]));
    let want = format!("[\"seccomp={}\"]", profile.display());
    assert_eq!(shown.trim(), want);

    // podman's own profile (ENOSYS by default) reads and loads as podman applies it.
    let podman = "/usr/share/containers/seccomp.json";
    assert!(
        Path::new(podman).exists(),
        "{podman} missing: run scripts/install-deps.sh (golang-github-containers-common)"
    );
    let out = ok(&s.run(&[
        "run",
        "--rm",
        "--security-opt",
        &format!("seccomp={podman}"),
        "--rootfs",
        &rootfs_arg(),
        "sh",
        "-c",
        "grep '^Seccomp:' /proc/self/status; probe add_key bpf",
    ]));
    assert_eq!(seccomp_mode(&out).as_deref(), Some("2"), "{out}");
    assert!(
        out.contains(&format!("add_key={}\nbpf=1\n", libc::ENOSYS)),
        "{out}"
    );
}

#[test]
fn broken_profiles_are_refused_before_anything_is_made() {
    let s = Store::new();
    let cases = [
        (
            "not-json.json",
            "{\"defaultAction\": ",
            "not a seccomp profile",
        ),
        (
            "unknown-call.json",
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["no_such_call"], "action": "SCMP_ACT_ERRNO"}]}"#,
            "syscalls[1]: unknown system call \"no_such_call\"",
        ),
        (
            "unknown-action.json",
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_MAYBE"}]}"#,
            "syscalls[0] (mkdir): unknown action \"SCMP_ACT_MAYBE\"",
        ),
        (
            "other-arch.json",
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_AARCH64"]}"#,
            "targets SCMP_ARCH_AARCH64 and not this machine's SCMP_ARCH_X86_64",
        ),
    ];
    for (file, json, want) in cases {
        let p = s.root().join(file);
        fs::write(&p, json).unwrap();
        let o = s.run(&[
            "run",
            "--rm",
            "--security-opt",
            &format!("seccomp={}", p.display()),
            "--rootfs",
            &rootfs_arg(),
            "true",
        ]);
        // A refused profile is unionctl's own error (docker's 125), not the command's.
        assert_eq!(code(&o), 125, "{file}");
        let err = stderr(&o);
        assert!(
            err.contains(&p.display().to_string()) && err.contains(want),
            "{file}: {err}"
        );
        assert!(
            s.containers().is_empty(),
            "{file} left {:?}",
            s.containers()
        );
    }
    let o = s.run(&[
        "run",
        "--rm",
        "--cap-add",
        "NOT_A_CAP",
        "--rootfs",
        &rootfs_arg(),
        "true",
    ]);
    assert_eq!(code(&o), 125);
    assert!(stderr(&o).contains("NOT_A_CAP"), "{}", stderr(&o));
    let o = s.run(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp",
        "--rootfs",
        &rootfs_arg(),
        "true",
    ]);
    assert_eq!(code(&o), 125);
    assert!(
        stderr(&o).contains("--security-opt \"seccomp\""),
        "{}",
        stderr(&o)
    );
    assert!(s.containers().is_empty());
}

#[test]
fn rootless_containers_get_the_same_filter() {
    let r = UserStore::new("unionctl-seccomp-", &probe_rootfs());
    let out = ok(&r.run(&[
        "run",
        "--rm",
        "--rootfs",
        &r.rootfs(),
        "sh",
        "-c",
        &probe_script(),
    ]));
    assert_eq!(seccomp_mode(&out).as_deref(), Some("2"), "{out}");
    assert_all_eperm(&out);
    let out = ok(&r.run(&[
        "run",
        "--rm",
        "--security-opt",
        "no-new-privileges=false",
        "--rootfs",
        &r.rootfs(),
        "sh",
        "-c",
        "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; probe unshare_user",
    ]));
    assert!(out.contains("NoNewPrivs:\t0\nSeccomp:\t2\n"), "{out}");
    assert!(out.ends_with("unshare_user=1\n"), "{out}");
    // Without the filter the user namespace of a rootless container allows a nested one.
    let out = ok(&r.run(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        "--rootfs",
        &r.rootfs(),
        "probe",
        "unshare_user",
    ]));
    assert_eq!(out, "unshare_user=0\n");
    let out = ok(&r.run(&[
        "run",
        "--rm",
        "--cap-add",
        "sys_admin",
        "--rootfs",
        &r.rootfs(),
        "probe",
        "unshare_user",
    ]));
    assert_eq!(out, "unshare_user=0\n");
    let out = ok(&r.run(&[
        "run",
        "--rm",
        "--privileged",
        "--rootfs",
        &r.rootfs(),
        "sh",
        "-c",
        "grep '^Seccomp:' /proc/self/status; probe unshare_user",
    ]));
    assert_eq!(out, "Seccomp:\t0\nunshare_user=0\n");
}
