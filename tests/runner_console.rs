//! Container consoles as root: ptys for `run -t` and `exec -t`, window sizes, and
//! `attach` to a detached container (its output, its input, the detach keys).
mod runner_support;
use runner_support::*;

fn bb() -> String {
    busybox_rootfs().to_string_lossy().into_owned()
}

#[test]
fn pty_session_driven_by_a_script() {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    let s = Store::new();
    let pty = nix::pty::openpty(None, None).unwrap();
    let ws = libc::winsize {
        ws_row: 30,
        ws_col: 100,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    unsafe { libc::ioctl(pty.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    let mut cmd = s.cmd();
    cmd.args(["run", "--rm", "-i", "-t", "--rootfs", &bb(), "sh"]);
    let dup = || std::process::Stdio::from(pty.slave.try_clone().unwrap());
    cmd.stdin(dup()).stdout(dup()).stderr(dup());
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            libc::setsid();
            libc::ioctl(0, libc::TIOCSCTTY, 0);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    // Our copies of the slave must go, or the reader never sees the end.
    drop(cmd);
    drop(pty.slave);
    let mut master = std::fs::File::from(pty.master);
    // The reader thread signals each chunk it adds: waits wake on new output.
    type Seen = (std::sync::Mutex<Vec<u8>>, std::sync::Condvar);
    let seen: std::sync::Arc<Seen> = Default::default();
    let reader = {
        let mut m = master.try_clone().unwrap();
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = m.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.0.lock().unwrap().extend_from_slice(&buf[..n]);
                seen.1.notify_all();
            }
        })
    };
    let output = || String::from_utf8_lossy(&seen.0.lock().unwrap()).into_owned();
    let wait_output = |what: &str| {
        let (guard, timeout) = seen
            .1
            .wait_timeout_while(seen.0.lock().unwrap(), events::DEADLINE, |b| {
                !String::from_utf8_lossy(b).contains(what)
            })
            .unwrap();
        assert!(
            !timeout.timed_out(),
            "no {what:?} from the pty: {}",
            String::from_utf8_lossy(&guard)
        );
    };
    wait_output("# ");
    master
        .write_all(b"tty; stty size; echo TERM=$TERM\n")
        .unwrap();
    wait_output("30 100");
    // A trap prints the size when SIGWINCH arrives and ends the background job, so
    // `wait` returns whether the signal comes before it starts or during it. The marker
    // is printed split so the echo of the typed line cannot match it.
    master
        .write_all(b"trap 'stty size; kill %1' WINCH; sleep 60 & echo ar''med; wait\n")
        .unwrap();
    wait_output("armed\r\n");
    // Window size changes reach the container.
    let ws = libc::winsize {
        ws_row: 40,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    // SIGWINCH travels through `run` to the container's pty, whose shell traps it.
    wait_output("40 120");
    master.write_all(b"exit 5\n").unwrap();
    let st = child.wait().unwrap();
    drop(master);
    reader.join().unwrap();
    let out = output();
    assert_eq!(st.code(), Some(5), "{out}");
    assert!(out.contains("/dev/pts/0"), "{out}");
    assert!(out.contains("30 100"), "{out}");
    assert!(out.contains("40 120"), "{out}");
    assert!(out.contains("TERM=xterm"), "{out}");
}

#[test]
fn attach_to_a_detached_container() {
    use std::io::Write;
    let s = Store::new();
    ok(&s.run(&[
        "run",
        "-d",
        "-i",
        "--name",
        "talk",
        "--rootfs",
        &bb(),
        "sh",
        "-c",
        "echo ready; while read l; do echo got:$l; [ \"$l\" = quit ] && exit 3; done",
    ]));
    wait_log(s.root(), "talk", "ready\n");
    let mut child = s
        .cmd()
        .args(["attach", "talk"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Written at once: what attach has not read yet waits in the pipe.
    let mut input = child.stdin.take().unwrap();
    input.write_all(b"hello\nquit\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stdout(&out), "got:hello\ngot:quit\n");
    assert_eq!(
        ok(&s.run(&["logs", "talk"])),
        "ready\ngot:hello\ngot:quit\n"
    );
    let o = s.run(&["attach", "talk"]);
    assert!(code(&o) != 0 && stderr(&o).contains("is not running"));
}

/// `-t` gives the process a pty of its own, in `run` and in `exec` (the pty's master
/// travels to the supervisor over a unix socket). `script` provides our terminal.
#[test]
fn tty_for_run_and_exec() {
    let s = Store::new();
    let in_script = |args: &str| {
        let o = std::process::Command::new("script")
            .args(["-qec", &format!("{} {args}", bin().display()), "/dev/null"])
            .env("UNIONCTL_ROOT", s.root())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout).replace('\r', "");
        assert!(o.status.success(), "{args}: {out}{}", stderr(&o));
        out
    };
    let out = in_script(&format!(
        "run --rm -t --rootfs {} /bin/sh -c 'tty; [ -t 0 ] && echo stdin-is-a-tty'",
        bb()
    ));
    assert!(out.contains("/dev/pts/0\nstdin-is-a-tty"), "{out}");
    ok(&s.run(&[
        "run",
        "-d",
        "--name",
        "t1",
        "--rootfs",
        &bb(),
        "sleep",
        "60",
    ]));
    let out = in_script("exec -t t1 /bin/sh -c 'tty; [ -t 1 ] && echo stdout-is-a-tty'");
    assert!(
        out.contains("/dev/pts/") && out.contains("stdout-is-a-tty"),
        "{out}"
    );
    ok(&s.run(&["rm", "-f", "t1"]));
}

/// `attach` detaches on ctrl-p ctrl-q (docker's default keys) and leaves the container
/// running; a second attach then ends with the container's exit code.
#[test]
fn attach_detaches_on_ctrl_p_ctrl_q() {
    let s = Store::new();
    // A plain read loop: an interactive shell's line editing would wait for answers
    // from a terminal that `script` does not give.
    let lines = r#"while read l; do echo "got:$l"; [ "$l" = quit ] && exit 7; done"#;
    ok(&s.run(&[
        "run",
        "-d",
        "-i",
        "-t",
        "--name",
        "a1",
        "--rootfs",
        &bb(),
        "sh",
        "-c",
        lines,
    ]));
    // Input is typed into `script`'s terminal: a line, then, once the answer is read
    // back from script's output, the detach keys. Stdin stays open until attach ends.
    let attach = |input: &str, answer: &str, keys: &[u8]| {
        use std::io::{Read, Write};
        let cmd = format!(
            "{} --root {} attach a1",
            bin().display(),
            s.root().display()
        );
        let mut child = std::process::Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&out).contains(answer) {
            let n = stdout.read(&mut buf).unwrap();
            assert!(
                n > 0,
                "attach ended before {answer:?}: {}",
                String::from_utf8_lossy(&out)
            );
            out.extend_from_slice(&buf[..n]);
        }
        stdin.write_all(keys).unwrap();
        stdout.read_to_end(&mut out).unwrap();
        let status = child.wait().unwrap();
        drop(stdin);
        (
            status.code(),
            String::from_utf8_lossy(&out).replace('\r', ""),
        )
    };
    let (code, out) = attach("hello\n", "got:hello", b"\x10\x11");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("got:hello"), "{out}");
    let ps = ok(&s.run(&["ps"]));
    assert!(
        ps.contains("a1") && ps.contains("Up"),
        "detach stopped it: {ps}"
    );
    let (code, out) = attach("quit\n", "got:quit", b"");
    assert_eq!(code, Some(7), "{out}");
    assert!(out.contains("got:quit"), "{out}");
    ok(&s.run(&["rm", "a1"]));
}
