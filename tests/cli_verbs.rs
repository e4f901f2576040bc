//! The docker verbs and run flags of issue 14 through the real binary, as root, on a
//! busybox image: create/start, kill, wait, pause, top, stats, cp (with symlink escape
//! attempts), rename, prunes, system df, info, version, volumes, --restart and the
//! run flags that shape the container.
mod runner_support;
use runner_support::*;
use std::fs;
use std::path::Path;

/// A store with the busybox rootfs imported as `bb:1`.
fn store_with_image() -> Store {
    Store::with_busybox("bb:1")
}

/// The container's record as `inspect` shows it.
fn inspect(s: &Store, name: &str) -> serde_json::Value {
    let out = ok(&s.run(&["inspect", name]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    match v {
        serde_json::Value::Array(mut a) => a.remove(0),
        v => v,
    }
}

/// A key anywhere in `v`, in the record's or docker's spelling.
fn find_key<'a>(v: &'a serde_json::Value, keys: &[&str]) -> Option<&'a serde_json::Value> {
    match v {
        serde_json::Value::Object(o) => keys
            .iter()
            .find_map(|k| o.get(*k))
            .or_else(|| o.values().find_map(|x| find_key(x, keys))),
        serde_json::Value::Array(a) => a.iter().find_map(|x| find_key(x, keys)),
        _ => None,
    }
}

fn ps_line(s: &Store, name: &str) -> String {
    ok(&s.run(&["ps", "-a"]))
        .lines()
        .find(|l| l.split_whitespace().last() == Some(name))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn create_start_kill_wait() {
    let s = store_with_image();
    let script = "trap 'exit 42' USR1; echo ready; sleep 1000 & wait $!";
    ok(&s.run(&["create", "--name", "c", "bb:1", "sh", "-c", script]));
    assert!(ps_line(&s, "c").contains("Created"), "{}", ps_line(&s, "c"));
    ok(&s.run(&["start", "c"]));
    wait_log(s.root(), "c", "ready");
    ok(&s.run(&["kill", "-s", "USR1", "c"]));
    assert_eq!(ok(&s.run(&["wait", "c"])), "42\n");
    assert!(ps_line(&s, "c").contains("Exited (42)"));

    ok(&s.run(&["run", "-d", "--name", "seven", "bb:1", "sh", "-c", "exit 7"]));
    assert_eq!(ok(&s.run(&["wait", "seven"])), "7\n");

    // kill's default is SIGKILL: 128 + 9.
    ok(&s.run(&["run", "-d", "--name", "k", "bb:1", "sleep", "1000"]));
    ok(&s.run(&["kill", "k"]));
    assert_eq!(ok(&s.run(&["wait", "k"])), "137\n");
    let o = s.run(&["kill", "-s", "NOSUCH", "k"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("NOSUCH"), "{}", stderr(&o));
}

/// `ps` names a container's image as it was given while that name still gives the
/// image; once the name is gone or names another image, the image's short id (docker).
#[test]
fn ps_shows_the_image_id_once_the_name_no_longer_gives_the_image() {
    let s = store_with_image();
    ok(&s.run(&["tag", "bb:1", "bb:2"]));
    ok(&s.run(&["create", "--name", "c", "bb:2", "true"]));
    let image = |s: &Store| ps_line(s, "c").split_whitespace().nth(1).map(String::from);
    assert_eq!(image(&s).as_deref(), Some("bb:2"));
    ok(&s.run(&["rmi", "bb:2"]));
    let inspected = inspect(&s, "bb:1");
    let id = inspected["Id"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    assert_eq!(image(&s).as_deref(), Some(&id[..12]));
    let v: serde_json::Value =
        serde_json::from_str(&ok(&s.run(&["ps", "-a", "--format", "json"]))).unwrap();
    let row = v.as_array().and_then(|a| a.first()).cloned().unwrap_or(v);
    assert_eq!(row["Image"], &id[..12], "{row}");
}

/// A command that cannot run fails `run -d` with docker's status and message (127 when
/// missing, 126 when not executable), not with a container id; the container stays,
/// exited with that status. `exec` of a missing command says so too.
#[test]
fn run_detached_of_a_command_that_cannot_run_fails() {
    let s = store_with_image();
    let o = s.run(&["run", "-d", "--name", "missing", "bb:1", "nosuchcmd"]);
    assert_eq!(code(&o), 127, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("\"nosuchcmd\": executable file not found in $PATH"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o), "", "a container id was printed");
    assert!(ps_line(&s, "missing").contains("Exited (127)"));
    let o = s.run(&["start", "-a", "missing"]);
    assert_eq!(code(&o), 127, "start -a: {}", stderr(&o));
    let o = s.run(&["run", "-d", "--init", "--name", "dir", "bb:1", "/etc"]);
    assert_eq!(code(&o), 126, "{}", stderr(&o));
    assert!(ps_line(&s, "dir").contains("Exited (126)"));
    ok(&s.run(&["run", "-d", "--name", "up", "bb:1", "sleep", "1000"]));
    let o = s.run(&["exec", "up", "nosuchcmd"]);
    assert_eq!(code(&o), 127, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("executable file not found"),
        "{}",
        stderr(&o)
    );
    ok(&s.run(&["rm", "-f", "up"]));
}

/// `-p` has no bridge network to publish on: refused with what to use instead, before
/// anything is made; `--net` is docker's short name of `--network`.
#[test]
fn publish_is_refused_and_net_is_network() {
    let s = store_with_image();
    for verb in ["run", "create"] {
        let o = s.run(&[verb, "--name", "p", "-p", "8080:80", "bb:1", "true"]);
        assert_eq!(code(&o), 125, "{}", stderr(&o));
        assert!(stderr(&o).contains("--network host"), "{}", stderr(&o));
    }
    assert_eq!(ps_line(&s, "p"), "", "a refused run left a container");
    let o = s.run(&["run", "--rm", "--net", "host", "bb:1", "true"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // with the host's network, as docker: a warning, the ports are the host's anyway
    let o = s.run(&[
        "run", "--rm", "--net", "host", "-p", "80:80", "bb:1", "true",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("discarded"), "{}", stderr(&o));
}

/// `start -a` is connected before the command starts: a command that ends at once still
/// shows all its output, every time (docker attaches first, then starts).
#[test]
fn start_attached_shows_a_short_commands_output() {
    let s = store_with_image();
    for i in 0..10 {
        let name = format!("short{i}");
        ok(&s.run(&[
            "create",
            "--name",
            &name,
            "bb:1",
            "sh",
            "-c",
            "echo out; exit 3",
        ]));
        let o = s.run(&["start", "-a", &name]);
        assert_eq!(code(&o), 3, "run {i}: {}", stderr(&o));
        assert_eq!(stdout(&o), "out\n", "run {i}: start -a missed the output");
    }
    // With --rm the record is gone when the run ends: the status still comes back.
    ok(&s.run(&[
        "create",
        "--rm",
        "--name",
        "gone",
        "bb:1",
        "sh",
        "-c",
        "echo bye; exit 5",
    ]));
    let o = s.run(&["start", "-a", "gone"]);
    assert_eq!(
        (code(&o), stdout(&o).as_str()),
        (5, "bye\n"),
        "{}",
        stderr(&o)
    );
    assert_eq!(ps_line(&s, "gone"), "", "--rm left it");
}

#[test]
fn pause_top_stats_rename() {
    let s = store_with_image();
    ok(&s.run(&["run", "-d", "--name", "p", "bb:1", "sleep", "1000"]));
    let top = ok(&s.run(&["top", "p"]));
    assert!(top.starts_with("UID"), "{top}");
    assert!(top.lines().any(|l| l.ends_with("sleep 1000")), "{top}");

    let stats = ok(&s.run(&["stats", "--no-stream", "p"]));
    let row = stats.lines().nth(1).unwrap_or_default().to_string();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[1], "p", "{stats}");
    assert!(cols[2].ends_with('%'), "{stats}");
    assert!(row.contains(" / "), "{stats}");
    assert_eq!(cols.last(), Some(&"1"), "one process: {stats}");

    // start of a running container is done already (docker).
    ok(&s.run(&["start", "p"]));
    // Its image cannot go, even forced (docker: "cannot be forced").
    let o = s.run(&["rmi", "-f", "bb:1"]);
    assert!(
        code(&o) == 125 && stderr(&o).contains("running container"),
        "rmi -f of a running container's image: {}",
        stderr(&o)
    );
    ok(&s.run(&["pause", "p"]));
    let o = s.run(&["pause", "p"]);
    assert!(
        code(&o) == 125 && stderr(&o).contains("already paused"),
        "pause twice: {}",
        stderr(&o)
    );
    assert!(
        ps_line(&s, "p").contains("(Paused)"),
        "{}",
        ps_line(&s, "p")
    );
    // start of a paused one is refused (docker: unpause it instead).
    let o = s.run(&["start", "p"]);
    assert!(
        code(&o) == 125 && stderr(&o).contains("paused"),
        "start of a paused container: {}",
        stderr(&o)
    );
    // exec into a frozen container is refused (its process would freeze in setns).
    let o = s.run(&["exec", "p", "true"]);
    assert_eq!(
        code(&o),
        125,
        "exec into a paused container: {}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("paused"), "{}", stderr(&o));
    ok(&s.run(&["unpause", "p"]));
    assert!(!ps_line(&s, "p").contains("Paused"));
    let o = s.run(&["unpause", "p"]);
    assert!(
        code(&o) == 125 && stderr(&o).contains("not paused"),
        "unpause twice: {}",
        stderr(&o)
    );

    ok(&s.run(&["rename", "p", "q"]));
    assert!(ps_line(&s, "q").contains("Up"), "{}", ps_line(&s, "q"));
    assert_ne!(code(&s.run(&["top", "p"])), 0);
    ok(&s.run(&["run", "-d", "--name", "r", "bb:1", "true"]));
    let o = s.run(&["rename", "q", "r"]);
    assert!(stderr(&o).contains("already in use"), "{}", stderr(&o));
    ok(&s.run(&["rm", "-f", "q"]));
}

#[test]
fn cp_in_and_out_stays_inside() {
    let s = store_with_image();
    let host = tempfile::tempdir().unwrap();
    let h = host.path();
    let setup = "ln -s / /escape; ln -s ../../.. /up; mkdir -p /d/sub; echo inner > /d/sub/f; \
                 ln -s /etc/passwd /d/link; echo ready; sleep 1000";
    ok(&s.run(&["run", "-d", "--name", "c", "bb:1", "sh", "-c", setup]));
    wait_log(s.root(), "c", "ready");

    fs::write(h.join("payload"), "payload\n").unwrap();
    let payload = h.join("payload");
    let p = payload.to_str().unwrap();
    // docker's `-` is a tar stream, not a file named "-": refused, nothing written.
    for args in [["cp", "c:/d/sub/f", "-"], ["cp", "-", "c:/d"]] {
        let o = s.run(&args);
        assert_eq!(code(&o), 125, "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("tar stream"), "{}", stderr(&o));
    }
    assert!(!Path::new("-").exists());
    // Symlinks to / and ../.. inside the container resolve inside it, never on the host.
    let marker = format!("unionctl-cp-escape-{}", std::process::id());
    for via in ["escape", "up"] {
        ok(&s.run(&["cp", p, &format!("c:/{via}/tmp/{marker}")]));
        assert!(
            !Path::new("/tmp").join(&marker).exists(),
            "cp wrote to the host via {via}"
        );
        let inside = ok(&s.run(&["exec", "c", "cat", &format!("/tmp/{marker}")]));
        assert_eq!(inside, "payload\n");
    }
    // Reading through them reads the container's files.
    ok(&s.run(&["cp", "c:/escape/etc/passwd", h.join("pw").to_str().unwrap()]));
    assert_eq!(
        fs::read(h.join("pw")).unwrap(),
        fs::read(busybox_rootfs().join("etc/passwd")).unwrap()
    );

    // A dir out: its symlink stays a symlink.
    let out = h.join("out");
    ok(&s.run(&["cp", "c:/d", out.to_str().unwrap()]));
    assert_eq!(fs::read_to_string(out.join("sub/f")).unwrap(), "inner\n");
    assert_eq!(
        fs::read_link(out.join("link")).unwrap(),
        Path::new("/etc/passwd")
    );
    // Into an existing dir: under the source's name.
    ok(&s.run(&["cp", "c:/d/sub/f", out.to_str().unwrap()]));
    assert_eq!(fs::read_to_string(out.join("f")).unwrap(), "inner\n");

    // SRC/. copies a dir's content into an existing dir.
    let merged = h.join("merged");
    fs::create_dir(&merged).unwrap();
    ok(&s.run(&["cp", "c:/d/.", merged.to_str().unwrap()]));
    assert_eq!(fs::read_to_string(merged.join("sub/f")).unwrap(), "inner\n");

    // A dir in, into an existing container dir.
    fs::create_dir_all(h.join("tree/a")).unwrap();
    fs::write(h.join("tree/a/x"), "x\n").unwrap();
    ok(&s.run(&["cp", h.join("tree").to_str().unwrap(), "c:/d/"]));
    assert_eq!(ok(&s.run(&["exec", "c", "cat", "/d/tree/a/x"])), "x\n");

    // A stopped container: offline through its union rule (no process, no mount); its
    // symlinks resolve inside its root there too.
    ok(&s.run(&["stop", "-t", "0", "c"]));
    ok(&s.run(&["cp", p, &format!("c:/escape/tmp/{marker}-stopped")]));
    assert!(!Path::new("/tmp").join(format!("{marker}-stopped")).exists());
    ok(&s.run(&["cp", p, &format!("c:/up/tmp/{marker}-up")]));
    assert!(!Path::new("/tmp").join(format!("{marker}-up")).exists());
    ok(&s.run(&["cp", "c:/up/etc/passwd", h.join("pw2").to_str().unwrap()]));
    assert_eq!(
        fs::read(h.join("pw2")).unwrap(),
        fs::read(h.join("pw")).unwrap()
    );
    // Over a lower file: copied up, the image's layer untouched.
    ok(&s.run(&["cp", p, "c:/etc/motd"]));
    ok(&s.run(&[
        "cp",
        &format!("c:/tmp/{marker}-stopped"),
        h.join("back").to_str().unwrap(),
    ]));
    assert_eq!(fs::read_to_string(h.join("back")).unwrap(), "payload\n");
    let diff = ok(&s.run(&["diff", "c"]));
    assert!(diff.contains(&format!("A /tmp/{marker}-stopped")), "{diff}");
    assert!(diff.contains("C /etc/motd"), "{diff}");
    assert_eq!(
        fs::read_to_string(busybox_rootfs().join("etc/motd")).unwrap(),
        "welcome\n"
    );
    // The container runs on what cp wrote.
    ok(&s.run(&["start", "c"]));
    assert_eq!(ok(&s.run(&["exec", "c", "cat", "/etc/motd"])), "payload\n");
    let o = s.run(&["cp", "c:/no/such", h.join("x").to_str().unwrap()]);
    assert_ne!(code(&o), 0);
    assert!(stderr(&o).contains("/no/such"), "{}", stderr(&o));
}

#[test]
fn prunes_df_info_version() {
    let s = store_with_image();
    // A second image without a name: dangling.
    s.import_tree(&busybox_rootfs(), &["./etc"], "");
    ok(&s.run(&["run", "--name", "done", "bb:1", "true"]));
    ok(&s.run(&["run", "-d", "--name", "up", "bb:1", "sleep", "1000"]));

    let df = ok(&s.run(&["system", "df"]));
    let row = |kind: &str| -> Vec<String> {
        df.lines()
            .find(|l| l.starts_with(kind))
            .unwrap_or_else(|| panic!("{kind} in {df}"))
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    assert_eq!(&row("Images")[1..3], ["2", "1"], "{df}");
    assert_eq!(&row("Containers")[1..3], ["2", "1"], "{df}");
    assert_eq!(&row("Local")[2..4], ["0", "0"], "{df}");

    let pruned = ok(&s.run(&["container", "prune", "-f"]));
    assert!(pruned.contains("Deleted Containers:"), "{pruned}");
    let all = ok(&s.run(&["ps", "-a"]));
    assert!(!all.contains("done") && all.contains("up"), "{all}");

    let pruned = ok(&s.run(&["image", "prune", "-f"]));
    assert!(pruned.contains("Deleted: sha256:"), "{pruned}");
    let images = ok(&s.run(&["images", "-q"]));
    assert_eq!(images.lines().count(), 1, "bb:1 stays: {images}");
    // -a: bb:1 is in use by "up" and stays; once that is gone it goes too.
    ok(&s.run(&["image", "prune", "-a", "-f"]));
    assert_eq!(ok(&s.run(&["images", "-q"])).lines().count(), 1);
    ok(&s.run(&["rm", "-f", "up"]));
    let pruned = ok(&s.run(&["system", "prune", "-a", "-f"]));
    assert!(pruned.contains("Untagged: bb:1"), "{pruned}");
    assert_eq!(ok(&s.run(&["images", "-q"])), "");
    assert!(
        fs::read_dir(s.root().join("layers"))
            .unwrap()
            .next()
            .is_none()
    );

    let info = ok(&s.run(&["info"]));
    for want in [
        "Containers: 0",
        "Images: 0",
        "Storage Driver:",
        "Cgroup Version:",
    ] {
        assert!(info.contains(want), "{want}: {info}");
    }
    assert!(
        info.contains(&format!("Root Dir: {}", s.root().display())),
        "{info}"
    );
    let v = ok(&s.run(&["version"]));
    assert!(v.contains(env!("CARGO_PKG_VERSION")), "{v}");
}

#[test]
fn named_volumes() {
    let s = store_with_image();
    assert_eq!(ok(&s.run(&["volume", "create", "data"])), "data\n");
    ok(&s.run(&[
        "run",
        "--rm",
        "-v",
        "data:/data",
        "bb:1",
        "sh",
        "-c",
        "echo kept > /data/f",
    ]));
    let read = ok(&s.run(&["run", "--rm", "-v", "data:/mnt:ro", "bb:1", "cat", "/mnt/f"]));
    assert_eq!(read, "kept\n");
    let ro = "type=volume,source=data,target=/mnt,readonly";
    let o = s.run(&["run", "--rm", "--mount", ro, "bb:1", "touch", "/mnt/g"]);
    assert_ne!(code(&o), 0);
    assert!(stderr(&o).contains("Read-only"), "{}", stderr(&o));
    // Made on first use and filled from the image's content at that path.
    let etc = ok(&s.run(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,src=conf,dst=/etc",
        "bb:1",
        "cat",
        "/etc/motd",
    ]));
    assert_eq!(etc, "welcome\n");
    let ls = ok(&s.run(&["volume", "ls", "-q"]));
    assert_eq!(ls, "conf\ndata\n");
    // An anonymous volume starts with the image's content too.
    let etc = ok(&s.run(&["run", "--rm", "-v", "/etc", "bb:1", "cat", "/etc/motd"]));
    assert_eq!(etc, "welcome\n");
    let v: serde_json::Value =
        serde_json::from_str(&ok(&s.run(&["volume", "inspect", "data"]))).unwrap();
    let mp = v[0]["Mountpoint"].as_str().unwrap().to_string();
    assert_eq!(
        fs::read_to_string(Path::new(&mp).join("f")).unwrap(),
        "kept\n"
    );

    ok(&s.run(&[
        "run",
        "-d",
        "--name",
        "user",
        "-v",
        "data:/data",
        "bb:1",
        "sleep",
        "1000",
    ]));
    let o = s.run(&["volume", "rm", "data"]);
    assert_ne!(code(&o), 0);
    assert!(stderr(&o).contains("in use"), "{}", stderr(&o));
    assert!(Path::new(&mp).join("f").exists());
    ok(&s.run(&["rm", "-f", "user"]));
    ok(&s.run(&["volume", "rm", "data"]));
    assert!(!Path::new(&mp).exists());
    let pruned = ok(&s.run(&["volume", "prune", "-f"]));
    assert!(pruned.contains("conf"), "{pruned}");
    assert_eq!(ok(&s.run(&["volume", "ls", "-q"])), "");
    let o = s.run(&["volume", "create", "-bad"]);
    assert_ne!(code(&o), 0);
}

#[test]
fn restart_on_failure_counts_and_stop_ends_it() {
    let s = store_with_image();
    ok(&s.run(&[
        "run",
        "-d",
        "--name",
        "onfail",
        "--restart",
        "on-failure:2",
        "bb:1",
        "sh",
        "-c",
        "exit 3",
    ]));
    assert_eq!(ok(&s.run(&["wait", "onfail"])), "3\n");
    let rec = inspect(&s, "onfail");
    let n = find_key(&rec, &["RestartCount", "restart_count"]).cloned();
    assert_eq!(n, Some(serde_json::json!(2)), "{rec}");

    // In the foreground the restarts stay attached; the last exit is run's.
    let o = s.run(&[
        "run",
        "--name",
        "fg",
        "--restart",
        "on-failure:1",
        "bb:1",
        "sh",
        "-c",
        "echo attempt; exit 4",
    ]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert_eq!(stdout(&o), "attempt\nattempt\n");

    // ctrl-c of a foreground run ends it for good: the policy does not start it again.
    let script = "trap 'exit 130' INT; echo ready; sleep 1000 & wait $!";
    let mut child = s
        .cmd()
        .args(["run", "--restart", "always", "bb:1", "sh", "-c", script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line, "ready\n");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert_eq!(rest, "", "started again after ctrl-c");

    // `always` restarts a command that succeeds too, until stop.
    ok(&s.run(&[
        "run",
        "-d",
        "--name",
        "always",
        "--restart",
        "always",
        "bb:1",
        "sh",
        "-c",
        "echo run; exit 0",
    ]));
    events::wait_log_with(s.root(), "always", "two runs", |l| {
        l.matches("run").count() >= 2
    });
    ok(&s.run(&["stop", "always"]));
    assert!(
        ps_line(&s, "always").contains("Exited"),
        "{}",
        ps_line(&s, "always")
    );

    let o = s.run(&["run", "--rm", "--restart", "sometimes", "bb:1", "true"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("--restart") && stderr(&o).contains("sometimes"),
        "{}",
        stderr(&o)
    );
}

/// A `stop` while a restart policy waits out its back-off ends the container for good.
/// The next run (one that would run on until stopped) is either never started (the stop
/// was seen first: exit 1 stays the last) or found and stopped by `stop` (143); never
/// started behind `stop`'s back, where `stop` would give up on a supervisor that runs on.
#[test]
fn stop_during_restart_back_off_ends_it() {
    let s = store_with_image();
    let script =
        "if [ -e /ran ]; then trap 'exit 143' TERM; sleep 1000 & wait $!; fi; touch /ran; exit 1";
    ok(&s.run(&[
        "run",
        "-d",
        "--name",
        "bo",
        "--restart",
        "always",
        "bb:1",
        "sh",
        "-c",
        script,
    ]));
    let dir = events::container_dir(s.root(), "bo");
    let record = || -> serde_json::Value {
        serde_json::from_slice(&fs::read(dir.join("state.json")).unwrap_or_default())
            .unwrap_or_default()
    };
    // Between two runs: still running (its supervisor's), no pid, the exit recorded.
    events::wait_on_path(&dir, "the restart back-off of bo", || {
        let r = record();
        r["status"] == "running" && r["pid"].is_null() && r["exit_code"] == 1
    });
    let o = s.run(&["stop", "bo"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r = record();
    assert_eq!(r["status"], "exited", "{r}");
    assert!(
        r["supervisor_pid"].is_null(),
        "its supervisor lives on: {r}"
    );
    let line = ps_line(&s, "bo");
    assert!(
        line.contains("Exited (1)") || line.contains("Exited (143)"),
        "{line}"
    );
    let waited = ok(&s.run(&["wait", "bo"]));
    assert!(waited == "1\n" || waited == "143\n", "{waited}");
    // The status only: the line's "N seconds ago" moves on between the two listings.
    let status = |l: &str| {
        l.find("Exited (")
            .map(|i| l[i..].split(')').next().unwrap_or("").to_string())
    };
    let later = ps_line(&s, "bo");
    assert_eq!(status(&later), status(&line), "it came back: {later}");
}

/// `--mount` takes its source whole: a host path with a ':' (which `-v` cannot name) is
/// bind-mounted as it is, read-only when asked.
#[test]
fn mount_bind_source_with_colon() {
    let s = store_with_image();
    let host = tempfile::tempdir().unwrap();
    let src = host.path().join("a:b");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), "colon\n").unwrap();
    let rw = format!("type=bind,source={},target=/x", src.display());
    let out = ok(&s.run(&[
        "run",
        "--rm",
        "--mount",
        &rw,
        "bb:1",
        "sh",
        "-c",
        "cat /x/f; echo new > /x/g",
    ]));
    assert_eq!(out, "colon\n");
    assert_eq!(fs::read_to_string(src.join("g")).unwrap(), "new\n");
    let ro = format!("{rw},readonly");
    let o = s.run(&["run", "--rm", "--mount", &ro, "bb:1", "touch", "/x/h"]);
    assert_ne!(code(&o), 0);
    assert!(stderr(&o).contains("Read-only"), "{}", stderr(&o));
    assert!(!src.join("h").exists());
}

#[test]
fn run_flags_shape_the_container() {
    let s = store_with_image();
    let host = tempfile::tempdir().unwrap();
    let h = host.path();
    fs::write(h.join("env"), "# settings\nA=1\nB=two words\n").unwrap();
    fs::create_dir(h.join("share")).unwrap();
    fs::write(h.join("share/f"), "shared\n").unwrap();
    let script = "touch /rootfile 2>/dev/null && echo root-writable; \
                  touch /scratch/x && echo tmpfs-writable; \
                  cat /h/f; touch /h/y 2>/dev/null || echo bind-ro; \
                  echo A=$A B=$B; grep -w db /etc/hosts; grep nameserver /etc/resolv.conf; \
                  ulimit -n; grep -c ' /t tmpfs' /proc/mounts";
    let env_file = h.join("env");
    let bind = format!(
        "type=bind,source={},target=/h,readonly",
        h.join("share").display()
    );
    let out = ok(&s.run(&[
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/scratch:size=1m",
        "--mount",
        &bind,
        "--mount",
        "type=tmpfs,target=/t",
        "--env-file",
        env_file.to_str().unwrap(),
        "--add-host",
        "db:10.1.2.3",
        "--dns",
        "192.0.2.53",
        "--ulimit",
        "nofile=321:654",
        "--label",
        "team=web",
        "bb:1",
        "sh",
        "-c",
        script,
    ]));
    assert_eq!(
        out,
        "tmpfs-writable\nshared\nbind-ro\nA=1 B=two words\n10.1.2.3\tdb\nnameserver 192.0.2.53\n321\n1\n"
    );

    // Labels are kept in the container's record.
    ok(&s.run(&[
        "create", "--name", "labelled", "--label", "team=web", "bb:1", "true",
    ]));
    let rec = inspect(&s, "labelled");
    let labels = find_key(&rec, &["Labels", "labels"]).cloned();
    assert_eq!(labels, Some(serde_json::json!({"team": "web"})), "{rec}");

    // --entrypoint replaces the image's and drops its cmd.
    let out = ok(&s.run(&[
        "run",
        "--rm",
        "--entrypoint",
        "echo",
        "bb:1",
        "via",
        "entrypoint",
    ]));
    assert_eq!(out, "via entrypoint\n");

    // --stop-signal and --stop-timeout are what stop uses.
    let script = "trap 'echo got-usr1; exit 5' USR1; echo ready; sleep 1000 & wait $!";
    ok(&s.run(&[
        "run",
        "-d",
        "--name",
        "sig",
        "--stop-signal",
        "USR1",
        "--stop-timeout",
        "30",
        "bb:1",
        "sh",
        "-c",
        script,
    ]));
    wait_log(s.root(), "sig", "ready");
    ok(&s.run(&["stop", "sig"]));
    assert!(
        ps_line(&s, "sig").contains("Exited (5)"),
        "{}",
        ps_line(&s, "sig")
    );

    for (flag, value) in [
        ("--ulimit", "nofile=10:5"),
        ("--tmpfs", "relative"),
        ("--mount", "type=nfs,target=/x"),
        ("--add-host", "db:not-an-ip"),
        ("--stop-signal", "SIGNOPE"),
        ("--shm-size", "lots"),
    ] {
        let o = s.run(&["run", "--rm", flag, value, "bb:1", "true"]);
        assert_eq!(code(&o), 2, "{flag} {value}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(flag) && stderr(&o).contains(value),
            "{}",
            stderr(&o)
        );
    }
    let o = s.run(&["run", "--rm", "--env-file", "/no/such/env", "bb:1", "true"]);
    assert_ne!(code(&o), 0);
    assert!(stderr(&o).contains("/no/such/env"), "{}", stderr(&o));
}
