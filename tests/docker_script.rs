//! A shell script written for docker runs unchanged with `alias docker=unionctl`: import,
//! run (foreground and detached), logs with its two streams, exec, cp both ways,
//! inspect --format, stop, rm, rmi, ps -aq.
mod runner_support;
use runner_support::*;
use std::process::Command;

const SCRIPT: &str = r#"
set -euo pipefail
shopt -s expand_aliases
alias docker="$UNIONCTL_BIN"
cd "$WORK"

docker import busybox.tar busybox:latest
docker run --name job busybox sh -c 'echo out; echo err >&2' >/dev/null 2>&1
[ "$(docker logs job 2>/dev/null)" = out ]
[ "$(docker logs job 2>&1 >/dev/null)" = err ]

docker run -d --name web -e GREETING=hi busybox sleep 1000
docker exec web sh -c 'echo "$GREETING" > /tmp/greeting'
docker cp web:/tmp/greeting ./greeting
grep -qx hi greeting
echo data > hostfile
docker cp hostfile web:/tmp/hostfile
[ "$(docker exec web cat /tmp/hostfile)" = data ]
[ "$(docker inspect --format '{{.State.Running}}' web)" = true ]
[ "$(docker inspect -f '{{.Name}}' web)" = /web ]
[ "$(docker ps -q | wc -l)" = 1 ]
docker stop -t 1 web >/dev/null
[ "$(docker inspect --format '{{.State.Running}}' web)" = false ]
docker rm web job >/dev/null
docker rmi busybox >/dev/null
[ -z "$(docker ps -aq)" ]
echo script-done
"#;

#[test]
fn a_docker_script_runs_with_unionctl_as_docker() {
    let s = Store::new();
    let work = tempfile::tempdir().unwrap();
    archive::tar_dir(&busybox_rootfs(), &work.path().join("busybox.tar"), &["."]);
    let o = Command::new("bash")
        .arg("-c")
        .arg(SCRIPT)
        .env("UNIONCTL_BIN", bin())
        .env("UNIONCTL_ROOT", s.root())
        .env("WORK", work.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        o.status.success() && stdout(&o).ends_with("script-done\n"),
        "the docker script failed (bash -x to see where)\nstdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
}
