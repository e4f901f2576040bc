//! Set-user-ID, set-group-ID and file capabilities are dropped on write, truncate and
//! chown exactly as kernel overlayfs drops them, for lower files (copied up by the
//! change) and upper ones, with and without FUSE passthrough. The writer is an
//! unprivileged user (no CAP_FSETID), and root for the cases where the bits stay.
mod common;

use common::Scratch;
use common::mounts::{Kind, UnionDirs, mount_kernel, mount_unionctl};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

const NOBODY: u32 = 65534;

/// Each case: a file name, its mode, and what a user or root does to it.
const CASES: &[(&str, u32, &str)] = &[
    ("append_suid", 0o4755, "user: echo x >> F"),
    ("append_sgid_gx", 0o2775, "user: echo x >> F"),
    ("append_sgid_no_gx", 0o2745, "user: echo x >> F"),
    ("append_both", 0o6755, "user: echo x >> F"),
    ("truncate_suid", 0o4755, "user: truncate -s 1 F"),
    ("o_trunc_suid", 0o4755, "user: : > F"),
    ("overwrite_caps", 0o755, "user: echo x >> F"),
    ("root_append_suid", 0o4755, "root: echo x >> F"),
    ("root_truncate_suid", 0o4755, "root: truncate -s 1 F"),
    ("root_chown_suid", 0o6755, "root: chown 65534:65534 F"),
    ("root_chown_caps", 0o755, "root: chown 0:0 F"),
];

#[test]
fn setid_bits_and_caps_dropped_as_overlayfs() {
    assert!(common::is_root(), "mounts kernel overlayfs: run as root");
    common::mounts::ensure_fusectl();
    let s = Scratch::new("setid");
    let _watchdog = common::mounts::Watchdog::new("setid test", s.path(), 120);
    let lower = s.mkdir("lower");
    for (name, mode, _) in CASES {
        make_file(&lower.join(format!("lower_{name}")), *mode);
    }
    let expected = run_on(&s, "kernel", Kind::Kernel, &lower, &[]);
    for (label, extra) in [
        ("unionctl", &[][..]),
        ("unionctl -o nopassthrough", &["-o", "nopassthrough"][..]),
    ] {
        let got = run_on(&s, label, Kind::Unionctl, &lower, extra);
        let diffs: Vec<String> = expected
            .iter()
            .zip(&got)
            .filter(|(e, g)| e != g)
            .map(|(e, g)| format!("kernel overlayfs: {e}\n    {label}: {g}"))
            .collect();
        assert!(diffs.is_empty(), "{label}:\n  {}", diffs.join("\n  "));
    }
    // The reference itself must show both outcomes, or the test proves nothing.
    let text = expected.join("\n");
    assert!(text.contains("lower_append_suid 100755"), "{text}");
    assert!(text.contains("lower_root_append_suid 104755"), "{text}");
    assert!(
        text.contains("upper_overwrite_caps 100755 uid=65534 size=7 caps=no"),
        "{text}"
    );
    assert!(
        text.contains("upper_root_chown_caps 100755 uid=0 size=5 caps=no"),
        "{text}"
    );
}

/// Mode and ownership, as root makes them, with a file capability on the `caps` ones.
fn make_file(p: &Path, mode: u32) {
    std::fs::write(p, b"data\n").unwrap();
    std::os::unix::fs::chown(p, Some(NOBODY), Some(NOBODY)).unwrap();
    // chmod after chown: chown drops the set-ID bits.
    std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    if p.to_string_lossy().ends_with("caps") {
        // VFS capability v2: effective flag, CAP_NET_RAW (13) permitted.
        let mut v = vec![0u8; 20];
        v[0..4].copy_from_slice(&0x0200_0001u32.to_le_bytes());
        v[4..8].copy_from_slice(&(1u32 << 13).to_le_bytes());
        xattr_set(p, "security.capability", &v);
    }
}

fn xattr_set(p: &Path, name: &str, v: &[u8]) {
    xattr::set(p, name, v).unwrap_or_else(|e| panic!("setxattr {name} on {}: {e}", p.display()));
}

/// Runs every case on a fresh union of LOWER and returns one line per file.
fn run_on(s: &Scratch, label: &str, kind: Kind, lower: &Path, extra: &[&str]) -> Vec<String> {
    let sub = label.replace([' ', '-'], "_");
    let dirs = UnionDirs {
        lowers: vec![lower.to_path_buf()],
        upper: Some(s.mkdir(&format!("{sub}/upper"))),
        work: Some(s.mkdir(&format!("{sub}/work"))),
    };
    let m = s.mkdir(&format!("{sub}/merged"));
    let mut mount = match kind {
        Kind::Kernel => mount_kernel(&dirs, &m),
        Kind::Unionctl => mount_unionctl(&dirs, &m, extra),
    }
    .unwrap_or_else(|e| panic!("{label}: mount: {e}"));
    for (name, mode, _) in CASES {
        make_file(&m.join(format!("upper_{name}")), *mode);
    }
    for (name, _, action) in CASES {
        for place in ["lower", "upper"] {
            let f = m.join(format!("{place}_{name}"));
            let (who, cmd) = action.split_once(": ").unwrap();
            let script = cmd.replace('F', &format!("'{}'", f.display()));
            let mut c = if who == "user" {
                let mut c = Command::new("setpriv");
                c.args([
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                    "sh",
                    "-c",
                ]);
                c
            } else {
                let mut c = Command::new("sh");
                c.arg("-c");
                c
            };
            let out = c.arg(&script).output().unwrap();
            assert!(
                out.status.success(),
                "{label}: {who}: {script}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let mut lines = Vec::new();
    for (name, _, _) in CASES {
        for place in ["lower", "upper"] {
            let f = m.join(format!("{place}_{name}"));
            let md = std::fs::symlink_metadata(&f).unwrap();
            let caps = xattr::get(&f, "security.capability")
                .ok()
                .flatten()
                .is_some();
            lines.push(format!(
                "{place}_{name} {:o} uid={} size={} caps={}",
                md.mode(),
                md.uid(),
                md.size(),
                if caps { "yes" } else { "no" }
            ));
        }
    }
    mount.unmount().unwrap_or_else(|e| panic!("{label}: {e}"));
    lines
}
