//! Real containers as root on a busybox-static rootfs and a debootstrap minbase rootfs,
//! over our own union mount.
mod runner_support;
use runner_support::*;
use std::fs;
use std::path::Path;

fn bb() -> String {
    busybox_rootfs().to_string_lossy().into_owned()
}

/// Every file of a tree with its size and mode, for "the rootfs was not modified".
fn tree_digest(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .map(|e| {
            let m = fs::symlink_metadata(e.path()).unwrap();
            use std::os::unix::fs::MetadataExt;
            format!(
                "{} {} {:o} {}",
                e.path().display(),
                m.len(),
                m.mode(),
                m.mtime()
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn pid1_hostname_and_exit_codes() {
    let s = Store::new();
    let o = s.run(&[
        "run",
        "--rm",
        "-h",
        "box1",
        "--rootfs",
        &bb(),
        "sh",
        "-c",
        "echo pid=$$; hostname; cat /etc/hostname; exit 3",
    ]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert_eq!(stdout(&o), "pid=1\nbox1\nbox1\n");

    let o = s.run(&["run", "--rm", "--rootfs", &bb(), "no-such-command"]);
    assert_eq!(code(&o), 127);
    assert!(
        stderr(&o).contains("executable file not found"),
        "{}",
        stderr(&o)
    );

    let o = s.run(&["run", "--rm", "--rootfs", &bb(), "/notexec"]);
    assert_eq!(code(&o), 126);
    assert!(stderr(&o).contains("permission denied"), "{}", stderr(&o));

    // Killed by a signal: 128 + N (pid 1 itself cannot be killed from inside, so under --init).
    let o = s.run(&[
        "run",
        "--rm",
        "--init",
        "--rootfs",
        &bb(),
        "sh",
        "-c",
        "kill -KILL $$",
    ]);
    assert_eq!(code(&o), 137);
    let o = s.run(&[
        "run",
        "--rm",
        "--init",
        "--rootfs",
        &bb(),
        "sh",
        "-c",
        "kill -TERM $$",
    ]);
    assert_eq!(code(&o), 143);
    assert!(s.containers().is_empty(), "--rm left {:?}", s.containers());
}

#[test]
fn isolation_proc_dev_sys_caps_and_network() {
    let s = Store::new();
    let script = r#"
        ps -o pid,comm | wc -l
        ls /dev | tr '\n' ' '; echo
        grep -E '^(CapEff|NoNewPrivs)' /proc/self/status
        cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' | tr '\n' ' '; echo
        touch /sys/x 2>/dev/null && echo sys-rw || echo sys-ro
        for p in /proc/keys /proc/timer_list /proc/kcore; do [ -e $p ] && echo "masked $p $(wc -c < $p)"; done
        echo x > /proc/sysrq-trigger 2>/dev/null && echo sysrq-rw || echo sysrq-ro
        test -c /dev/null && echo > /dev/null && echo devnull-ok
        head -c 4 /dev/urandom | wc -c
        grep -c . /etc/resolv.conf >/dev/null; grep localhost /etc/hosts | head -1
        mkdir /dev/shm/x && echo shm-ok
    "#;
    let o = s.run(&["run", "--rm", "--rootfs", &bb(), "sh", "-c", script]);
    let out = ok(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].trim(),
        "4",
        "only sh, ps, wc and the header: {out}"
    );
    for dev in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "ptmx", "shm", "mqueue", "fd",
    ] {
        assert!(
            lines[1].split(' ').any(|d| d == dev),
            "/dev lacks {dev}: {}",
            lines[1]
        );
    }
    // Docker's default capability set, no_new_privs.
    assert!(out.contains("CapEff:\t00000000a80425fb"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert_eq!(lines[4].trim(), "lo", "--network none has only lo: {out}");
    assert!(out.contains("sys-ro") && out.contains("sysrq-ro") && out.contains("devnull-ok"));
    let masked: Vec<&str> = out.lines().filter(|l| l.starts_with("masked ")).collect();
    assert!(!masked.is_empty(), "{out}");
    for m in masked {
        assert!(m.ends_with(" 0"), "not masked: {m}");
    }
    assert!(out.contains("shm-ok") && out.contains("localhost"), "{out}");

    let o = s.run(&[
        "run",
        "--rm",
        "--network",
        "host",
        "--rootfs",
        &bb(),
        "sh",
        "-c",
        "hostname; cat /proc/net/dev",
    ]);
    let out = ok(&o);
    let (name, dev) = out.split_once('\n').unwrap();
    let host_ifaces = dev.lines().count() - 2;
    let real = fs::read_to_string("/proc/net/dev").unwrap().lines().count() - 2;
    assert_eq!(
        host_ifaces, real,
        "--network host sees the host's interfaces"
    );
    // docker's host network comes with the host's name (which its /etc/hosts knows).
    let host = nix::unistd::gethostname().unwrap();
    assert_eq!(name, host.to_str().unwrap());
}

#[test]
fn union_mount_is_ours_and_rootfs_stays_untouched() {
    let s = Store::new();
    let rootfs = busybox_rootfs();
    let before = tree_digest(&rootfs);
    let o = s.run(&[
        "run",
        "-d",
        "--name",
        "u1",
        "--rootfs",
        &bb(),
        "sh",
        "-c",
        "echo changed >> /etc/motd; echo new > /new-file; rm /bin/vi; mkdir /d; echo done; sleep 30",
    ]);
    let id = ok(&o).trim().to_string();
    wait_log(s.root(), "u1", "done\n");
    // The root of the container is our FUSE union mount, seen from inside and outside.
    let o = s.run(&["exec", "u1", "cat", "/proc/self/mountinfo"]);
    let inside = ok(&o);
    let root_line = inside
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap();
    assert!(
        root_line.contains(" - fuse"),
        "container root is not FUSE: {root_line}"
    );
    let outside = host_mounts_with(&format!("{id}/merged"));
    assert_eq!(outside.len(), 1, "{outside:?}");
    assert!(outside[0].contains(" - fuse"), "{outside:?}");
    ok(&s.run(&["stop", "-t", "1", "u1"]));
    assert!(
        host_mounts_with(&id).is_empty(),
        "union still mounted after stop"
    );

    assert_eq!(before, tree_digest(&rootfs), "the rootfs was modified");
    let upper = s.root().join("containers").join(&id).join("upper");
    assert_eq!(fs::read_to_string(upper.join("new-file")).unwrap(), "new\n");
    assert_eq!(
        fs::read_to_string(upper.join("etc/motd")).unwrap(),
        "welcome\nchanged\n"
    );
    assert!(upper.join("d").is_dir());
    // A whiteout (char device 0/0) hides /bin/vi.
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let wh = fs::symlink_metadata(upper.join("bin/vi")).unwrap();
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "no whiteout for /bin/vi"
    );

    // The upper layer persists until rm: start again and see the change. The command
    // runs again too (and rewrites /new-file meanwhile, so reading that one races): its
    // second append lands after the first, which only a kept upper layer still has.
    ok(&s.run(&["start", "u1"]));
    // (The second run's rm and mkdir fail, their errors land in the log too.)
    events::wait_log_with(s.root(), "u1", "the second run's done", |t| {
        t.matches("done\n").count() == 2
    });
    assert_eq!(
        ok(&s.run(&["exec", "u1", "cat", "/etc/motd"])),
        "welcome\nchanged\nchanged\n"
    );
    ok(&s.run(&["rm", "-f", "u1"]));
    assert!(s.containers().is_empty());
    assert!(host_mounts_with(&id).is_empty());
}

#[test]
fn volumes_env_workdir_user() {
    let s = Store::new();
    let vol = tempfile::tempdir().unwrap();
    let ro = tempfile::tempdir().unwrap();
    fs::write(ro.path().join("f"), "read me\n").unwrap();
    let v1 = format!("{}:/data", vol.path().display());
    let v2 = format!("{}:/ro:ro", ro.path().display());
    let o = s.run(&[
        "run", "--rm", "-v", &v1, "-v", &v2, "-e", "GREETING=hi there", "-w", "/work/dir",
        "--rootfs", &bb(), "sh", "-c",
        "echo from-container > /data/out; cat /ro/f; echo x > /ro/g 2>/dev/null || echo ro-denied; echo \"$GREETING\"; pwd; echo $PATH; echo $HOSTNAME; echo $HOME",
    ]);
    let out = ok(&o);
    assert_eq!(
        fs::read_to_string(vol.path().join("out")).unwrap(),
        "from-container\n"
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "read me");
    assert_eq!(lines[1], "ro-denied");
    assert_eq!(lines[2], "hi there");
    assert_eq!(lines[3], "/work/dir");
    assert_eq!(
        lines[4],
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    );
    assert_eq!(lines[5].len(), 12, "default hostname is the short id");
    assert_eq!(lines[6], "/root");
    assert!(!ro.path().join("g").exists());

    let o = s.run(&[
        "run",
        "--rm",
        "-u",
        "app",
        "--rootfs",
        &bb(),
        "sh",
        "-c",
        "id; echo $HOME; grep CapEff /proc/self/status",
    ]);
    let out = ok(&o);
    assert!(
        out.starts_with("uid=1000(app) gid=1000(app) groups=50(staff)"),
        "{out}"
    );
    assert!(
        out.contains("/home/app") && out.contains("CapEff:\t0000000000000000"),
        "{out}"
    );
    let o = s.run(&["run", "--rm", "-u", "4242:50", "--rootfs", &bb(), "id"]);
    assert_eq!(ok(&o).trim(), "uid=4242 gid=50(staff)");
}

#[test]
fn bad_input_leaves_nothing_behind() {
    let s = Store::new();
    let bb = bb();
    let bb = bb.as_str();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["run", "--rootfs", "/no/such/dir", "true"],
            "/no/such/dir",
        ),
        (
            vec!["run", "--rootfs", "/etc/passwd", "true"],
            "not a directory",
        ),
        (vec!["run", "no-such-image:latest"], "no such image"),
        (
            vec!["run", "-v", "./relative:/x", "--rootfs", "/tmp", "true"],
            "bad volume spec",
        ),
        (
            vec!["run", "-v", "/no/such/host:/x", "--rootfs", "/tmp", "true"],
            "bad volume spec",
        ),
        (
            vec!["run", "-v", "/tmp:/x:rx", "--rootfs", "/tmp", "true"],
            "bad volume spec",
        ),
        (
            vec!["run", "-u", "ghost", "--rootfs", bb, "true"],
            "unknown user \"ghost\"",
        ),
        (
            vec!["run", "--memory", "lots", "--rootfs", bb, "true"],
            "--memory",
        ),
        (
            vec!["run", "--network", "bridge", "--rootfs", bb, "true"],
            "--network",
        ),
        (
            vec!["run", "--name", "bad/name", "--rootfs", bb, "true"],
            "invalid container name",
        ),
        (
            vec!["stop", "nothing"],
            r#"container "nothing": no such container"#,
        ),
        (
            vec!["exec", "nothing", "true"],
            r#"container "nothing": no such container"#,
        ),
        (
            vec!["rm", "nothing"],
            r#"container "nothing": no such container"#,
        ),
    ];
    for (args, msg) in cases {
        let o = s.run(&args);
        assert_ne!(code(&o), 0, "{args:?} succeeded");
        let err = stderr(&o);
        assert!(err.contains(msg), "{args:?}: expected {msg:?} in {err:?}");
        assert_eq!(
            err.trim().lines().count(),
            1,
            "{args:?}: one line please: {err}"
        );
        assert!(
            s.containers().is_empty(),
            "{args:?} left {:?}",
            s.containers()
        );
    }
    // A name in use.
    ok(&s.run(&["run", "--name", "taken", "--rootfs", bb, "true"]));
    let o = s.run(&["run", "--name", "taken", "--rootfs", bb, "true"]);
    assert_ne!(code(&o), 0);
    assert!(
        stderr(&o).contains("\"taken\" is already in use"),
        "{}",
        stderr(&o)
    );
    assert_eq!(s.containers().len(), 1);
    // stop of a stopped container is done already (docker); exec cannot run in it.
    let o = s.run(&["stop", "taken"]);
    assert_eq!(code(&o), 0, "stop of a stopped container: {}", stderr(&o));
    let o = s.run(&["exec", "taken", "true"]);
    assert!(
        code(&o) != 0 && stderr(&o).contains("is not running"),
        "{}",
        stderr(&o)
    );
    // A setup failure (volume target over a file that is a directory on the host side is
    // fine; a missing workdir parent is made) — nothing is mounted afterwards.
    assert!(host_mounts_with(&s.root().to_string_lossy()).is_empty());
}

#[test]
fn detached_life_cycle_ps_logs_exec_stop_rm() {
    let s = Store::new();
    let o = s.run(&[
        "run",
        "-d",
        "--name",
        "web",
        "--rootfs",
        &bb(),
        "sh",
        "-c",
        "trap 'echo got TERM' TERM; echo started; while true; do sleep 0.1; done",
    ]);
    let id = ok(&o).trim().to_string();
    assert_eq!(id.len(), 64);
    let ps = ok(&s.run(&["ps"]));
    assert!(
        ps.contains("web") && ps.contains(&id[..12]) && ps.contains("Up "),
        "{ps}"
    );
    assert_eq!(ok(&s.run(&["ps", "-q"])).trim(), &id[..12]);
    let json: serde_json::Value = serde_json::from_str(&ok(&s.run(&["ps", "--json"]))).unwrap();
    assert_eq!(json[0]["ID"], &id[..12]);
    assert_eq!(json[0]["State"], "running");
    let state: serde_json::Value = serde_json::from_slice(
        &fs::read(s.root().join("containers").join(&id).join("state.json")).unwrap(),
    )
    .unwrap();
    for key in [
        "id",
        "name",
        "image",
        "rootfs",
        "lowers",
        "created",
        "status",
        "pid",
        "exit_code",
        "config",
    ] {
        assert!(state.get(key).is_some(), "state.json lacks {key}");
    }
    wait_log(s.root(), "web", "started\n");
    assert_eq!(ok(&s.run(&["logs", "web"])), "started\n");

    // exec joins the running container: its pid namespace, hostname and root.
    let o = s.run(&[
        "exec",
        "web",
        "sh",
        "-c",
        "echo $$; cat /proc/1/cmdline | tr '\\0' ' '; echo; hostname",
    ]);
    let out = ok(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_ne!(lines[0], "1");
    assert!(lines[1].starts_with("sh -c trap"), "{out}");
    assert_eq!(lines[2], &id[..12]);
    let o = s.run(&["exec", "web", "sh", "-c", "exit 9"]);
    assert_eq!(code(&o), 9);

    // stop: SIGTERM first (the trap logs it and the shell goes on), then SIGKILL after
    // the timeout: the exit code is 128 + 9.
    ok(&s.run(&["stop", "-t", "2", "web"]));
    let ps = ok(&s.run(&["ps", "-a"]));
    assert!(ps.contains("Exited (137)"), "{ps}");
    assert_eq!(ok(&s.run(&["logs", "web"])), "started\ngot TERM\n");
    assert!(ok(&s.run(&["ps", "-q"])).is_empty());

    // rm of a running container needs -f.
    ok(&s.run(&["start", "web"]));
    let o = s.run(&["rm", "web"]);
    assert!(
        code(&o) != 0 && stderr(&o).contains("is running"),
        "{}",
        stderr(&o)
    );
    ok(&s.run(&["restart", "-t", "0", "web"]));
    assert!(ok(&s.run(&["ps"])).contains("web"));
    ok(&s.run(&["rm", "-f", "web"]));
    assert!(s.containers().is_empty());
    assert!(host_mounts_with(&id).is_empty());
}

#[test]
fn stop_with_a_cooperative_process_keeps_its_code() {
    let s = Store::new();
    ok(&s.run(&[
        "run",
        "-d",
        "--name",
        "coop",
        "--rootfs",
        &bb(),
        "sh",
        "-c",
        "trap 'echo bye; exit 7' TERM; echo ready; while true; do sleep 0.1; done",
    ]));
    wait_log(s.root(), "coop", "ready\n");
    // The process ends of SIGTERM through its trap (7), not of the SIGKILL after -t (137).
    ok(&s.run(&["stop", "-t", "10", "coop"]));
    let json: serde_json::Value =
        serde_json::from_str(&ok(&s.run(&["ps", "-a", "--json"]))).unwrap();
    assert_eq!(json[0]["ExitCode"], 7);
    assert_eq!(json[0]["State"], "exited");
    assert!(ok(&s.run(&["logs", "coop"])).ends_with("bye\n"));
}

#[test]
fn init_reaps_zombies_and_forwards_signals() {
    let s = Store::new();
    // An orphan that exits becomes a child of pid 1; `sleep` as pid 1 never reaps it.
    let script = "(sleep 0.1 &); exec sleep 30";
    ok(&s.run(&[
        "run",
        "-d",
        "--name",
        "noinit",
        "--rootfs",
        &bb(),
        "sh",
        "-c",
        script,
    ]));
    ok(&s.run(&[
        "run",
        "-d",
        "--init",
        "--name",
        "init",
        "--rootfs",
        &bb(),
        "sh",
        "-c",
        script,
    ]));
    let zombies = |name: &str| {
        let o = s.run(&["exec", name, "ps", "-o", "stat,comm"]);
        ok(&o)
            .lines()
            .filter(|l| l.trim_start().starts_with('Z'))
            .count()
    };
    // Without init the orphan stays a zombie; by then the init's orphan is gone too.
    wait_until("a zombie without --init", || zombies("noinit") == 1);
    // pid 2 became `sleep 30` after forking the orphan; a zombie would still be "sleep".
    wait_until("the orphan under --init to be reaped", || {
        let out = ok(&s.run(&["exec", "init", "ps", "-o", "pid,comm"]));
        let pid2_execed = out
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["2", "sleep"]);
        pid2_execed && out.matches("sleep").count() == 1
    });
    assert_eq!(zombies("init"), 0, "--init did not reap");
    // --init forwards SIGTERM to the command, which dies of it (143, not the 137 of the
    // SIGKILL after -t).
    ok(&s.run(&["stop", "-t", "10", "init"]));
    let json: serde_json::Value =
        serde_json::from_str(&ok(&s.run(&["ps", "-a", "--json"]))).unwrap();
    let init = json
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["Names"] == "init")
        .unwrap();
    assert_eq!(init["ExitCode"], 143);
    ok(&s.run(&["rm", "-f", "noinit", "init"]));
}

#[test]
fn foreground_signals_reach_the_container() {
    let s = Store::new();
    let mut child = s
        .cmd()
        .args(["run", "--rm", "--init", "--rootfs", &bb()])
        .args(["sh", "-c", "echo ready; exec sleep 30"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Signal once the container runs (before that, `run` itself would die of it): its
    // first line comes through run's stdout.
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "ready\n");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(143));
}

#[test]
fn cgroup_limits_apply() {
    let s = Store::new();
    // 20 MiB is not enough for 40 MB in a shell variable: the OOM killer ends it.
    let o = s.run(&[
        "run",
        "--rm",
        "--memory",
        "20m",
        "--rootfs",
        &bb(),
        "sh",
        "-c",
        "x=$(head -c 40000000 /dev/zero | tr '\\0' a); echo survived",
    ]);
    assert_eq!(code(&o), 137, "{}", stdout(&o));
    let o = s.run(&[
        "run",
        "--rm",
        "--pids-limit",
        "5",
        "--rootfs",
        &bb(),
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6 7 8; do sleep 1 & done 2>&1; echo done",
    ]);
    let all = stdout(&o) + &stderr(&o);
    assert!(!all.contains("done") && all.contains("can't fork"), "{all}");
    ok(&s.run(&[
        "run",
        "-d",
        "--name",
        "lim",
        "--memory",
        "32m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "10",
        "--rootfs",
        &bb(),
        "sleep",
        "30",
    ]));
    // The cgroup dirs are the record's internals, not part of inspect.
    let id = ok(&s.run(&["inspect", "-f", "{{.Id}}", "lim"]));
    let record = s
        .root()
        .join("containers")
        .join(id.trim())
        .join("state.json");
    let json: serde_json::Value = serde_json::from_slice(&fs::read(record).unwrap()).unwrap();
    let dirs: Vec<String> = json["cgroups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    let read = |file: &str| -> String {
        dirs.iter()
            .map(|d| Path::new(d).join(file))
            .find(|p| p.exists())
            .map(|p| fs::read_to_string(p).unwrap().trim().to_string())
            .unwrap_or_else(|| panic!("no {file} in {dirs:?}"))
    };
    let mem = if Path::new("/sys/fs/cgroup/memory").exists() {
        "memory.limit_in_bytes"
    } else {
        "memory.max"
    };
    assert_eq!(read(mem), (32u64 << 20).to_string());
    assert_eq!(read("pids.max"), "10");
    if Path::new("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").exists() {
        assert_eq!(read("cpu.cfs_quota_us"), "50000");
    }
    // pause/unpause (used by commit -p) freeze every process.
    let c = unionctl::runner::find_container(s.root(), "lim").unwrap();
    unionctl::runner::pause(&c).unwrap();
    let pid = c.pid.unwrap();
    let state = unionctl::runner::state::proc_state(pid).unwrap();
    assert!(
        state == "D" || state == "T" || state == "t",
        "not frozen: {state}"
    );
    unionctl::runner::unpause(&c).unwrap();
    ok(&s.run(&["rm", "-f", "lim"]));
    for d in &dirs {
        assert!(!Path::new(d).exists(), "cgroup {d} left behind");
    }
    let o = s.run(&["run", "--rm", "--cpus", "99", "--rootfs", &bb(), "true"]);
    assert!(code(&o) != 0 && stderr(&o).contains("--cpus"));
}

#[test]
fn concurrent_runs_with_one_name() {
    let s = Store::new();
    let children: Vec<_> = (0..4)
        .map(|_| {
            s.cmd()
                .args(["run", "--name", "same", "--rootfs", &bb(), "true"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let wins = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .filter(|o| o.status.success())
        .count();
    assert_eq!(wins, 1);
    assert_eq!(s.containers().len(), 1);
}

#[test]
fn debian_minbase_rootfs() {
    let s = Store::new();
    let rootfs = minbase_rootfs().to_string_lossy().into_owned();
    let o = s.run(&[
        "run",
        "--rm",
        "--rootfs",
        &rootfs,
        "sh",
        "-c",
        "dpkg -l | grep -c '^ii'; cat /etc/debian_version; id -un; ls /proc/self/ns | wc -l",
    ]);
    let out = ok(&o);
    let lines: Vec<&str> = out.lines().collect();
    let pkgs: usize = lines[0].trim().parse().unwrap();
    assert!(pkgs > 50, "{out}");
    assert!(lines[1].starts_with("12"), "{out}");
    assert_eq!(lines[2], "root");
    // apt's own user switch works under our capability set.
    let o = s.run(&[
        "run",
        "--rm",
        "-u",
        "nobody",
        "--rootfs",
        &rootfs,
        "sh",
        "-c",
        "id -un; touch /tmp/x && echo ok",
    ]);
    assert_eq!(ok(&o), "nobody\nok\n");
}

#[test]
fn a_killed_supervisor_is_cleaned_up_by_rm() {
    let s = Store::new();
    let id = ok(&s.run(&[
        "run",
        "-d",
        "--name",
        "orphan",
        "--rootfs",
        &bb(),
        "sleep",
        "30",
    ]))
    .trim()
    .to_string();
    let c = unionctl::runner::find_container(s.root(), "orphan").unwrap();
    let sup = c.supervisor_pid.unwrap();
    let pid = c.pid.unwrap();
    unsafe { libc::kill(sup, libc::SIGKILL) };
    events::wait_exit(sup, "the killed supervisor");
    assert!(ok(&s.run(&["ps"])).contains("orphan"), "pid 1 still runs");
    ok(&s.run(&["rm", "-f", "orphan"]));
    // Gone, or a zombie not yet reaped.
    let state = unionctl::runner::state::proc_state(pid);
    assert!(matches!(state.as_deref(), None | Some("Z")), "{state:?}");
    assert!(host_mounts_with(&id).is_empty(), "union left mounted");
    assert!(s.containers().is_empty());
}

#[test]
fn mount_points_stay_out_of_the_upper_layer_and_images_run() {
    let s = Store::new();
    let vol = tempfile::tempdir().unwrap();
    let v = format!("{}:/mnt/vol", vol.path().display());
    ok(&s.run(&[
        "run",
        "--name",
        "clean",
        "-v",
        &v,
        "--rootfs",
        &bb(),
        "cat",
        "/etc/hostname",
    ]));
    let c = unionctl::runner::find_container(s.root(), "clean").unwrap();
    let upper: Vec<_> = fs::read_dir(c.upper())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        upper.is_empty(),
        "mount points leaked into the upper layer: {upper:?}"
    );

    // IMAGE instead of --rootfs: the image store resolves the layers.
    s.import_tree(&busybox_rootfs(), &["."], "bb:test");
    let o = s.run(&[
        "run",
        "--rm",
        "bb:test",
        "sh",
        "-c",
        "cat /etc/motd; exit 4",
    ]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert_eq!(stdout(&o), "welcome\n");
}
