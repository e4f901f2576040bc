//! Real containers run by a non-root user: user namespace (with the /etc/subuid range
//! when present), our FUSE union mounted inside it, life cycle, clear limit errors.
mod runner_support;
use runner_support::*;
use std::fs;
use std::path::{Path, PathBuf};

#[test]
fn rootless_container_basics() {
    let r = UserStore::new("unionctl-rootless-", &busybox_rootfs());
    let (uid, _) = test_user();
    let o = r.run(&[
        "run", "--rm", "-h", "rl", "--rootfs", &r.rootfs(), "sh", "-c",
        "echo pid=$$; hostname; id -u; cat /proc/self/uid_map; grep ' / / ' /proc/self/mountinfo; exit 6",
    ]);
    assert_eq!(code(&o), 6, "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "pid=1");
    assert_eq!(lines[1], "rl");
    assert_eq!(lines[2], "0", "the user is root inside");
    let map0: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(map0, vec!["0", &uid.to_string(), "1"]);
    // install-deps.sh gives the test user a sub-id range: it maps to ids 1..N.
    assert!(
        lines[4].split_whitespace().next() == Some("1"),
        "no sub-id range mapped: {out}"
    );
    let root_line = lines.iter().find(|l| l.contains(" / / ")).unwrap();
    assert!(
        root_line.contains(" - fuse"),
        "root is not our FUSE union: {root_line}"
    );
    assert_eq!(r.containers(), 0);
}

#[test]
fn rootless_user_switch_volume_and_upper() {
    let r = UserStore::new("unionctl-rootless-", &busybox_rootfs());
    let (uid, gid) = test_user();
    let vol = Path::new(&r.store).parent().unwrap().join("vol");
    fs::create_dir(&vol).unwrap();
    std::os::unix::fs::chown(&vol, Some(uid), Some(gid)).unwrap();
    let before = fs::read_dir(r.rootfs.join("etc")).unwrap().count();
    let v = format!("{}:/data", vol.display());
    let o = r.run(&[
        "run",
        "--name",
        "keep",
        "-v",
        &v,
        "--rootfs",
        &r.rootfs(),
        "sh",
        "-c",
        "echo hi > /data/out; echo new > /etc/new; rm /etc/motd",
    ]);
    ok(&o);
    assert_eq!(fs::read_to_string(vol.join("out")).unwrap(), "hi\n");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        fs::metadata(vol.join("out")).unwrap().uid(),
        uid,
        "root inside is the user outside"
    );
    assert_eq!(
        fs::read_dir(r.rootfs.join("etc")).unwrap().count(),
        before,
        "rootfs changed"
    );
    assert!(r.rootfs.join("etc/motd").exists());
    let short = ok(&r.run(&["ps", "-a", "-q"]));
    let json: serde_json::Value =
        serde_json::from_str(&ok(&r.run(&["inspect", short.trim()]))).unwrap();
    let id = json[0]["Id"].as_str().unwrap().to_string();
    let upper = r.store.join("containers").join(&id).join("upper");
    assert_eq!(fs::read_to_string(upper.join("etc/new")).unwrap(), "new\n");
    assert!(
        fs::symlink_metadata(upper.join("etc/motd")).is_ok(),
        "no whiteout"
    );

    let o = r.run(&[
        "run",
        "--rm",
        "-u",
        "1000",
        "--rootfs",
        &r.rootfs(),
        "sh",
        "-c",
        "id -u; touch /tmp/f; ls -n /tmp/f",
    ]);
    let out = ok(&o);
    assert!(out.starts_with("1000\n") && out.contains(" 1000 "), "{out}");
    ok(&r.run(&["rm", "keep"]));
    assert_eq!(r.containers(), 0);
}

#[test]
fn rootless_life_cycle() {
    let r = UserStore::new("unionctl-rootless-", &busybox_rootfs());
    ok(&r.run(&[
        "run",
        "-d",
        "--name",
        "svc",
        "--rootfs",
        &r.rootfs(),
        "sh",
        "-c",
        "trap '' TERM; mkdir -p /var/x; touch /var/x/f; echo up; while true; do sleep 0.1; done",
    ]));
    wait_log(&r.store, "svc", "up\n");
    assert!(ok(&r.run(&["ps"])).contains("svc"));
    assert_eq!(ok(&r.run(&["logs", "svc"])), "up\n");
    let o = r.run(&["exec", "svc", "sh", "-c", "echo $$; id -u; ls /var/x"]);
    let out = ok(&o);
    assert!(
        out.lines().next() != Some("1") && out.contains("\n0\nf\n"),
        "{out}"
    );
    ok(&r.run(&["stop", "-t", "1", "svc"]));
    assert!(ok(&r.run(&["ps", "-a"])).contains("Exited (137)"));
    let o = r.run(&["exec", "svc", "true"]);
    assert!(code(&o) != 0 && stderr(&o).contains("is not running"));
    ok(&r.run(&["rm", "svc"]));
    assert_eq!(r.containers(), 0);
}

#[test]
fn rootless_limits_fail_clearly() {
    let r = UserStore::new("unionctl-rootless-", &busybox_rootfs());
    let o = r.run(&[
        "run",
        "--rm",
        "--memory",
        "64m",
        "--rootfs",
        &r.rootfs(),
        "true",
    ]);
    assert_ne!(code(&o), 0);
    let err = stderr(&o);
    assert!(err.contains("cannot limit memory"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(r.containers(), 0);
}

#[test]
fn rootless_debian_minbase() {
    let (uid, _) = test_user();
    let cached = PathBuf::from(CACHE).join(format!("bookworm-minbase-uid{uid}"));
    if !cached.join("usr/bin/dpkg").exists() {
        let tmp = PathBuf::from(CACHE).join(format!("bookworm-minbase-uid{uid}.tmp"));
        let _ = fs::remove_dir_all(&tmp);
        user_owned_copy(&minbase_rootfs(), &tmp);
        fs::rename(&tmp, &cached).unwrap();
    }
    let r = UserStore::new("unionctl-rootless-", &busybox_rootfs());
    let o = r.run(&[
        "run",
        "--rm",
        "--rootfs",
        &cached.to_string_lossy(),
        "sh",
        "-c",
        "dpkg -l | grep -c '^ii'; id -un",
    ]);
    let out = ok(&o);
    let mut lines = out.lines();
    let pkgs: usize = lines.next().unwrap().trim().parse().unwrap();
    assert!(pkgs > 50, "{out}");
    assert_eq!(lines.next(), Some("root"));
}

#[test]
fn rootless_killed_supervisor_leaves_no_union_daemon() {
    let r = UserStore::new("unionctl-rootless-", &busybox_rootfs());
    ok(&r.run(&[
        "run",
        "-d",
        "--name",
        "orphan",
        "--rootfs",
        &r.rootfs(),
        "sleep",
        "30",
    ]));
    // The supervisor and its namespace are the record's internals, not part of inspect.
    let id = ok(&r.run(&["inspect", "-f", "{{.Id}}", "orphan"]));
    let record = r
        .store
        .join("containers")
        .join(id.trim())
        .join("state.json");
    let json: serde_json::Value = serde_json::from_slice(&fs::read(record).unwrap()).unwrap();
    let sup = json["supervisor_pid"].as_i64().unwrap() as i32;
    let ns = json["union_mnt_ns"].as_str().unwrap().to_string();
    let in_ns = || -> Vec<i32> {
        fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|p| {
                fs::read_link(format!("/proc/{p}/ns/mnt"))
                    .map(|l| l.to_string_lossy() == ns)
                    .unwrap_or(false)
            })
            .filter(|p| unionctl::runner::state::proc_state(*p).is_some_and(|s| s != "Z"))
            .collect()
    };
    assert!(!in_ns().is_empty(), "the union daemon should live in {ns}");
    unsafe { libc::kill(sup, libc::SIGKILL) };
    events::wait_exit(sup, "the killed supervisor");
    ok(&r.run(&["rm", "-f", "orphan"]));
    events::wait_all_exit(&in_ns(), "the processes of the union's namespace");
    assert!(
        in_ns().is_empty(),
        "a process entered the union's namespace"
    );
    assert_eq!(r.containers(), 0);
}

#[test]
fn rootless_cp_restart_and_run_flags() {
    let r = UserStore::new("unionctl-rootless-", &busybox_rootfs());
    let (uid, gid) = test_user();
    let rf = r.rootfs();
    // Run flags that shape the file system work in the user namespace too.
    let script = "touch /x 2>/dev/null || echo ro; touch /scratch/y && echo tmpfs; ulimit -n";
    let o = r.run(&[
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/scratch",
        "--ulimit",
        "nofile=100:200",
        "--rootfs",
        &rf,
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(ok(&o), "ro\ntmpfs\n100\n");
    // Restarts reuse the user namespace the supervisor entered.
    let o = r.run(&[
        "run",
        "--name",
        "rs",
        "--restart",
        "on-failure:1",
        "--rootfs",
        &rf,
        "sh",
        "-c",
        "echo go; exit 2",
    ]);
    assert_eq!(
        (code(&o), stdout(&o).as_str()),
        (2, "go\ngo\n"),
        "{}",
        stderr(&o)
    );

    // cp reaches a running container's union from inside its user namespace, and its
    // symlinks still resolve inside it.
    let setup = "ln -s / /escape; mkdir /d; echo in > /d/f; echo ready; sleep 1000";
    ok(&r.run(&[
        "run", "-d", "--name", "c", "--rootfs", &rf, "sh", "-c", setup,
    ]));
    wait_log(&r.store, "c", "ready");
    let host = r.store.parent().unwrap().join("host");
    fs::create_dir(&host).unwrap();
    fs::write(host.join("payload"), "payload\n").unwrap();
    std::os::unix::fs::chown(&host, Some(uid), Some(gid)).unwrap();
    std::os::unix::fs::chown(host.join("payload"), Some(uid), Some(gid)).unwrap();
    let marker = format!("unionctl-rootless-cp-{}", std::process::id());
    let payload = host.join("payload");
    ok(&r.run(&[
        "cp",
        payload.to_str().unwrap(),
        &format!("c:/escape/tmp/{marker}"),
    ]));
    assert!(!Path::new("/tmp").join(&marker).exists());
    assert_eq!(
        ok(&r.run(&["exec", "c", "cat", &format!("/tmp/{marker}")])),
        "payload\n"
    );
    ok(&r.run(&["cp", "c:/d", host.to_str().unwrap()]));
    assert_eq!(fs::read_to_string(host.join("d/f")).unwrap(), "in\n");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(host.join("d/f")).unwrap().uid(), uid);

    // Stopped: offline through its union, in a user namespace mapped as the container's.
    ok(&r.run(&["stop", "-t", "0", "c"]));
    ok(&r.run(&[
        "cp",
        payload.to_str().unwrap(),
        &format!("c:/escape/tmp/{marker}-2"),
    ]));
    assert!(!Path::new("/tmp").join(format!("{marker}-2")).exists());
    ok(&r.run(&["start", "c"]));
    let inside = ok(&r.run(&["exec", "c", "cat", &format!("/tmp/{marker}-2")]));
    assert_eq!(inside, "payload\n");
}

/// Rootless there is no device cgroup (no cgroup may be made) and none is needed: a user
/// namespace can neither make a device node nor open one on its own mounts. `--device`
/// binds the host's node, which opens with the user's own rights on it.
#[test]
fn rootless_devices_are_the_hosts_nodes_bound_in() {
    let r = UserStore::new("unionctl-rootless-", &busybox_rootfs());
    let o = r.run(&[
        "run",
        "--rm",
        "--device",
        "/dev/zero:/dev/myzero",
        "--rootfs",
        &r.rootfs(),
        "sh",
        "-c",
        "head -c 2 /dev/myzero | od -An -tx1; mknod /tmp/disk b 7 0 || echo no-mknod",
    ]);
    assert_eq!(stdout(&o), " 00 00\nno-mknod\n", "{}", stderr(&o));
    assert_eq!(r.containers(), 0);
}
