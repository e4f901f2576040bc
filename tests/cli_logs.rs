//! `logs` through the real binary: every container (foreground too) is logged with stdout
//! and stderr apart, `-f` follows a running container until it exits, `--tail`,
//! `--since`/`--until`, `-t`, and the log stays within `--log-opt max-size`/`max-file`.
//! (The progress of image copies is in cli_progress.rs: it needs the image helpers.)
mod runner_support;
use runner_support::*;
use std::fs;
use std::io::Read;
use std::process::Stdio;

fn bb() -> String {
    busybox_rootfs().to_string_lossy().into_owned()
}

/// `logs ARGS...` as (stdout, stderr), checked to succeed.
fn logs(s: &Store, args: &[&str]) -> (String, String) {
    let mut all = vec!["logs"];
    all.extend_from_slice(args);
    let o = s.run(&all);
    ok(&o);
    (stdout(&o), stderr(&o))
}

#[test]
fn foreground_run_is_logged_with_stdout_and_stderr_apart() {
    let s = Store::new();
    let o = s.run(&[
        "run",
        "--name",
        "so",
        "--rootfs",
        &bb(),
        "sh",
        "-c",
        "echo out; echo err >&2; echo out2; printf 'no newline'",
    ]);
    // The terminal still gets each stream on its own fd.
    assert_eq!(ok(&o), "out\nout2\nno newline");
    assert_eq!(stderr(&o), "err\n");
    let (out, err) = logs(&s, &["so"]);
    assert_eq!(out, "out\nout2\nno newline");
    assert_eq!(err, "err\n");

    // -t: every line starts with its RFC 3339 time (nanoseconds, UTC).
    let (out, err) = logs(&s, &["-t", "so"]);
    for line in out.lines().chain(err.lines()) {
        let (time, rest) = line.split_once(' ').unwrap();
        assert!(
            time.len() == 30 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
            "{line:?}"
        );
        assert!(
            ["out", "out2", "no newline", "err"].contains(&rest),
            "{line:?}"
        );
    }
    assert_eq!(out.lines().count(), 3);
}

#[test]
fn with_a_tty_the_log_has_one_stream() {
    let s = Store::new();
    ok(&s.run(&[
        "run",
        "-t",
        "--name",
        "tt",
        "--rootfs",
        &bb(),
        "sh",
        "-c",
        "echo a; echo b >&2",
    ]));
    let (out, err) = logs(&s, &["tt"]);
    assert_eq!(out.replace('\r', ""), "a\nb\n");
    assert_eq!(err, "");
}

#[test]
fn follow_prints_new_output_and_returns_when_the_container_exits() {
    let s = Store::new();
    let sync = tempfile::tempdir().unwrap();
    let fifo = sync.path().join("go");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
    ok(&s.run(&[
        "run",
        "-d",
        "--name",
        "f",
        "-v",
        &format!("{}:/sync", sync.path().display()),
        "--rootfs",
        &bb(),
        "sh",
        "-c",
        "echo first; echo warn >&2; read x < /sync/go; echo second; echo bye >&2",
    ]));
    let mut child = s
        .cmd()
        .args(["logs", "-f", "f"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // What was there already comes first, while the container waits on the fifo.
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        let mut seen = Vec::new();
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            let _ = tx.send(seen.clone());
        }
    });
    let got = rx
        .recv_timeout(events::DEADLINE)
        .expect("logs -f printed nothing");
    assert_eq!(String::from_utf8_lossy(&got), "first\n");
    // Let the container go on; logs -f must show the rest and end with it.
    fs::write(&fifo, "x\n").unwrap();
    events::wait_exit(child.id() as i32, "logs -f after the container exited");
    let status = child.wait().unwrap();
    assert!(status.success());
    let mut all = got;
    while let Ok(more) = rx.recv_timeout(std::time::Duration::from_secs(5)) {
        all = more;
    }
    assert_eq!(String::from_utf8_lossy(&all), "first\nsecond\n");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(err, "warn\nbye\n");

    // An exited container: -f prints what there is and returns.
    let (out, err) = logs(&s, &["-f", "f"]);
    assert_eq!(
        (out.as_str(), err.as_str()),
        ("first\nsecond\n", "warn\nbye\n")
    );
}

#[test]
fn tail_since_and_until() {
    let s = Store::new();
    ok(&s.run(&[
        "run",
        "--name",
        "t",
        "--rootfs",
        &bb(),
        "sh",
        "-c",
        "if [ -e /ran ]; then echo second; else touch /ran; seq 1 5; echo oops >&2; fi",
    ]));
    assert_eq!(
        logs(&s, &["--tail", "2", "t"]),
        ("5\n".into(), "oops\n".into())
    );
    assert_eq!(
        logs(&s, &["-n", "3", "t"]),
        ("4\n5\n".into(), "oops\n".into())
    );
    assert_eq!(logs(&s, &["--tail", "0", "t"]), ("".into(), "".into()));
    assert_eq!(logs(&s, &["--tail", "all", "t"]).0, "1\n2\n3\n4\n5\n");

    // A second run of the same container: its output comes after, with later times.
    ok(&s.run(&["start", "t"]));
    ok(&s.run(&["logs", "-f", "t"]));
    let (out, _) = logs(&s, &["-t", "t"]);
    let second = out.lines().last().unwrap();
    let (time, text) = second.split_once(' ').unwrap();
    assert_eq!(text, "second");
    assert_eq!(
        logs(&s, &["--since", time, "t"]),
        ("second\n".into(), "".into())
    );
    assert_eq!(
        logs(&s, &["--until", time, "t"]),
        ("1\n2\n3\n4\n5\n".into(), "oops\n".into())
    );
    // Relative times and Unix seconds, as docker takes them.
    assert_eq!(
        logs(&s, &["--since", "1h", "t"]).0,
        "1\n2\n3\n4\n5\nsecond\n"
    );
    assert_eq!(logs(&s, &["--until", "1h", "t"]).0, "");
    assert_eq!(logs(&s, &["--since", "4102444800", "t"]).0, "");

    let o = s.run(&["logs", "--since", "yesterday", "t"]);
    assert_ne!(code(&o), 0);
    assert!(stderr(&o).contains("\"yesterday\""), "{}", stderr(&o));
    let o = s.run(&["logs", "--tail", "x", "t"]);
    assert_ne!(code(&o), 0);
    assert!(stderr(&o).contains("--tail"), "{}", stderr(&o));
}

#[test]
fn log_stays_within_max_size_and_max_file() {
    let s = Store::new();
    let o = s.run(&[
        "run",
        "--name",
        "big",
        "--log-opt",
        "max-size=64k",
        "--log-opt",
        "max-file=3",
        "--rootfs",
        &bb(),
        "sh",
        "-c",
        "seq 1 100000",
    ]);
    // The terminal gets everything; the log keeps the newest part only.
    assert_eq!(ok(&o).lines().count(), 100000);
    let dir = events::container_dir(s.root(), "big");
    let mut files: Vec<(String, u64)> = fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("ctr.log"))
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, e.metadata().unwrap().len())
        })
        .collect();
    files.sort();
    // ctr.log and the two newest rotated ones.
    assert_eq!(files.len(), 3, "{files:?}");
    for (n, len) in &files {
        assert!(*len <= 64 * 1024, "{n} is {len} bytes");
    }
    // (The order between stdout and stderr is the order the relay read them in.)
    let (out, _) = logs(&s, &["big"]);
    // What is kept is the end, whole lines in order.
    let nums: Vec<u32> = out.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(*nums.last().unwrap(), 100000);
    assert!(nums.len() > 1000 && nums.len() < 100000, "{}", nums.len());
    assert!(nums.windows(2).all(|w| w[1] == w[0] + 1));

    let o = s.run(&[
        "run",
        "--rm",
        "--log-opt",
        "max-size=x",
        "--rootfs",
        &bb(),
        "true",
    ]);
    assert_ne!(code(&o), 0);
    assert!(stderr(&o).contains("max-size"), "{}", stderr(&o));
}

#[test]
fn a_reader_that_goes_away_stops_the_container_output_as_before() {
    // `run ... yes | head -1`: yes must end (SIGPIPE, or EPIPE for busybox), as when it
    // wrote to the pipe itself; else this test hangs.
    let s = Store::new();
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} --root {} run --name y --rootfs {} yes | head -1",
            bin().display(),
            s.root().display(),
            bb()
        ))
        .output()
        .unwrap();
    assert_eq!(stdout(&o), "y\n");
    let (out, _) = logs(&s, &["y"]);
    assert!(out.starts_with("y\ny\n") && out.ends_with("y\n"));
}

#[test]
fn follow_keeps_every_line_across_rotations() {
    let s = Store::new();
    let sync = tempfile::tempdir().unwrap();
    let fifo = sync.path().join("go");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
    // 16 KiB files, enough of them to hold everything: the follower must read each
    // rotated file to its end and go on with the next one.
    ok(&s.run(&[
        "run",
        "-d",
        "--name",
        "r",
        "--log-opt",
        "max-size=16k",
        "--log-opt",
        "max-file=200",
        "-v",
        &format!("{}:/sync", sync.path().display()),
        "--rootfs",
        &bb(),
        "sh",
        "-c",
        "echo ready; read x < /sync/go; seq 1 30000",
    ]));
    events::wait_log(s.root(), "r", "ready\n");
    let child = s
        .cmd()
        .args(["logs", "-f", "r"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    fs::write(&fifo, "x\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let want: String = std::iter::once("ready\n".to_string())
        .chain((1..=30000).map(|i| format!("{i}\n")))
        .collect();
    let got = stdout(&out);
    if got != want {
        let first = got
            .lines()
            .zip(want.lines())
            .position(|(g, w)| g != w)
            .unwrap_or(got.lines().count().min(want.lines().count()));
        let around = |s: &str| {
            s.lines()
                .skip(first.saturating_sub(2))
                .take(5)
                .collect::<Vec<_>>()
                .join(" ")
        };
        panic!(
            "logs -f lost or repeated lines: {} lines, want {}; from line {first} got [{}] want [{}]",
            got.lines().count(),
            want.lines().count(),
            around(&got),
            around(&want)
        );
    }
    let files = fs::read_dir(events::container_dir(s.root(), "r"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("ctr.log"))
        .count();
    assert!(files > 10, "only {files} log files: no rotation to follow");
}
