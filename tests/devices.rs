//! Device access of root containers: the device cgroup (docker's default list after
//! deny-all), `--privileged`, `--device`, `--device-cgroup-rule`, and their errors.
mod runner_support;
use runner_support::*;
use std::fs;
use std::path::Path;

fn bb() -> String {
    busybox_rootfs().to_string_lossy().into_owned()
}

/// A block device of the host that root opens here, as (path, major, minor): the disk
/// when the host allows it (this machine refuses /dev/vda even to root), else another
/// (a loop device). A container must not open it.
fn host_block_device() -> (String, u32, u32) {
    let mut names: Vec<String> = fs::read_dir("/sys/class/block")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let path = format!("/dev/{name}");
        let Ok(dev) = fs::read_to_string(format!("/sys/class/block/{name}/dev")) else {
            continue;
        };
        let Some((major, minor)) = dev.trim().split_once(':') else {
            continue;
        };
        if fs::File::open(&path).is_ok() {
            return (path, major.parse().unwrap(), minor.parse().unwrap());
        }
    }
    panic!("no block device on this host that root can open");
}

/// In the container: make a node for the host's block device and open it.
fn open_block_script(major: u32, minor: u32) -> String {
    format!("mknod /tmp/disk b {major} {minor} && head -c 1 /tmp/disk >/dev/null && echo opened")
}

/// The device cgroup of a running container, on the host.
fn device_cgroup(id: &str) -> std::path::PathBuf {
    Path::new("/sys/fs/cgroup/devices/unionctl").join(format!("unionctl-{}", &id[..12]))
}

#[test]
fn default_list_denies_host_devices_and_keeps_the_pseudo_devices() {
    let (_, major, minor) = host_block_device();
    let s = Store::new();
    let script = format!(
        "{}; \
         mknod /dev/kmsg2 c 1 11 && head -c 1 /dev/kmsg2 >/dev/null; \
         echo x >/dev/null && echo null-ok; \
         head -c 4 /dev/zero | od -An -tx1; \
         head -c 8 /dev/urandom | wc -c; \
         echo x >/dev/full || echo full-is-full; \
         exec 3<>/dev/ptmx && echo ptmx-ok; \
         cat /dev/tty",
        open_block_script(major, minor)
    );
    let o = s.run(&["run", "--rm", "--rootfs", &bb(), "sh", "-c", &script]);
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(!out.contains("opened"), "{out}{err}");
    assert!(
        err.contains("head: /tmp/disk: Operation not permitted"),
        "{err}"
    );
    assert!(
        err.contains("head: /dev/kmsg2: Operation not permitted"),
        "{err}"
    );
    assert!(out.contains("null-ok\n"), "{out}{err}");
    assert!(out.contains(" 00 00 00 00\n8\n"), "{out}{err}");
    assert!(out.contains("full-is-full\nptmx-ok\n"), "{out}{err}");
    // No controlling tty: /dev/tty is allowed and says so (not EPERM).
    assert!(err.contains("No such device or address"), "{err}");

    // The cgroup lives while the container runs (exec joins it) and goes with it.
    let id = ok(&s.run(&["run", "-d", "--rootfs", &bb(), "sleep", "60"]));
    let id = id.trim();
    let list = fs::read_to_string(device_cgroup(id).join("devices.list")).unwrap();
    assert!(list.starts_with("c *:* m\nb *:* m\n"), "{list}");
    assert!(!list.contains("a *:* rwm"), "{list}");
    let o = s.run(&["exec", id, "sh", "-c", &open_block_script(major, minor)]);
    assert!(!stdout(&o).contains("opened"), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("Operation not permitted"),
        "{}",
        stderr(&o)
    );
    ok(&s.run(&["rm", "-f", id]));
    assert!(!device_cgroup(id).exists());
}

#[test]
fn privileged_and_cgroup_rules_open_what_the_default_denies() {
    let (disk, major, minor) = host_block_device();
    let s = Store::new();
    let script = open_block_script(major, minor);
    let o = s.run(&["run", "--rm", "--rootfs", &bb(), "sh", "-c", &script]);
    assert_ne!(code(&o), 0, "{}", stdout(&o));

    let o = s.run(&[
        "run",
        "--rm",
        "--privileged",
        "--rootfs",
        &bb(),
        "sh",
        "-c",
        &script,
    ]);
    assert_eq!(ok(&o), "opened\n");
    // Its /dev has the host's devices, as docker's, and keeps its own pts and ptmx.
    let check = format!(
        "[ -b {disk} ] && head -c 1 {disk} >/dev/null && echo host-node; readlink /dev/ptmx"
    );
    let o = s.run(&[
        "run",
        "--rm",
        "--privileged",
        "--rootfs",
        &bb(),
        "sh",
        "-c",
        &check,
    ]);
    assert_eq!(ok(&o), "host-node\npts/ptmx\n");

    let rule = format!("b {major}:{minor} r");
    let o = s.run(&[
        "run",
        "--rm",
        "--device-cgroup-rule",
        &rule,
        "--rootfs",
        &bb(),
        "sh",
        "-c",
        &format!("{script}; echo x >/tmp/disk"),
    ]);
    assert_eq!(stdout(&o), "opened\n", "{}", stderr(&o));
    // Read only: writing stays denied.
    assert!(
        stderr(&o).contains("/tmp/disk: Operation not permitted"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn device_flag_makes_the_node_and_allows_it() {
    let (disk, major, minor) = host_block_device();
    let s = Store::new();
    let disk_flag = format!("{disk}:/dev/xdisk:r");
    // `run`, not `create` + `start -a`: the latter loses the output of a command that
    // ends before it attaches (seen on main too).
    let o = s.run(&[
        "run",
        "--name",
        "d1",
        "--device",
        "/dev/zero:/dev/myzero",
        "--device",
        &disk_flag,
        "--rootfs",
        &bb(),
        "sh",
        "-c",
        "stat -c '%A %t:%T %u:%g %n' /dev/myzero /dev/xdisk; head -c 3 /dev/myzero | od -An -tx1; \
         head -c 1 /dev/xdisk >/dev/null && echo disk-read; echo x >/dev/xdisk",
    ]);
    let out = stdout(&o);
    // The host's mode and owner, the container's path (stat shows the numbers in hex).
    let want = format!(
        "crw-rw-rw- 1:5 0:0 /dev/myzero\nbrw------- {major:x}:{minor:x} 0:0 /dev/xdisk\n 00 00 00\ndisk-read\n"
    );
    assert_eq!(out, want, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("/dev/xdisk: Operation not permitted"),
        "{}",
        stderr(&o)
    );
    let o = ok(&s.run(&[
        "inspect",
        "--format",
        "{{json .HostConfig.Devices}} {{json .HostConfig.DeviceCgroupRules}}",
        "d1",
    ]));
    assert_eq!(
        o.trim(),
        format!(
            r#"[{{"CgroupPermissions":"rwm","PathInContainer":"/dev/myzero","PathOnHost":"/dev/zero"}},{{"CgroupPermissions":"r","PathInContainer":"/dev/xdisk","PathOnHost":"{disk}"}}] null"#
        )
    );
}

#[test]
fn bad_device_values_are_refused_naming_them() {
    let s = Store::new();
    for (flag, value, says) in [
        ("--device", "/dev/no-such-device", "no such file"),
        ("--device", "dev/zero", "not absolute"),
        ("--device", "/dev/zero:dev/z", "not absolute"),
        ("--device", "/dev/zero:/dev/z:rx", "r, w and m"),
        ("--device", "/dev/zero:/a:r:b", "HOST[:CONTAINER[:PERMS]]"),
        ("--device", "/etc/passwd:/dev/pw", "not a device node"),
        ("--device", "/dev/zero:/zero", "must be in /dev"),
        ("--device", "/dev/zero:/dev", "must be in /dev"),
        ("--device-cgroup-rule", "c 1:3", "TYPE MAJOR:MINOR ACCESS"),
        ("--device-cgroup-rule", "x 1:3 r", "TYPE MAJOR:MINOR ACCESS"),
        ("--device-cgroup-rule", "a 1:3 r", "every device"),
    ] {
        for verb in ["run", "create"] {
            let o = s.run(&[verb, "--rm", flag, value, "--rootfs", &bb(), "true"]);
            assert_eq!(code(&o), 125, "{verb} {flag} {value}: {}", stderr(&o));
            let err = stderr(&o);
            assert!(
                err.contains(flag) && err.contains(value) && err.contains(says),
                "{verb} {flag} {value}: {err}"
            );
        }
    }
    assert!(s.containers().is_empty(), "{:?}", s.containers());
}
