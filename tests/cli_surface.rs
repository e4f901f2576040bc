//! The command line as docker and podman users expect it, through the real binary: exit
//! statuses (125 ours, 126/127/128+N the command's, 2 usage), one-line errors in one
//! wording, `--format` and `--filter`, docker's `inspect` shape, one reference grammar,
//! docker's sizes, shell completion and man pages.
mod image_support;
use image_support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A store with the busybox test image as `bb:1`.
struct Fixture {
    dir: tempfile::TempDir,
    root: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tmpdir();
    let root = dir.path().join("store");
    import_busybox(dir.path(), &root, "bb:1");
    Fixture { dir, root }
}

/// Asserts a failure with status `code` and exactly one line on stderr that starts with
/// `prefix`; returns that line.
fn fails(root: &Path, args: &[&str], code: i32, prefix: &str) -> String {
    let r = uc(root, args);
    assert_eq!(r.code, code, "{args:?}: {}{}", r.stdout, r.stderr);
    let line = r.stderr.trim_end();
    assert!(!line.contains('\n'), "{args:?}: want one line:\n{line}");
    assert!(
        line.starts_with(prefix),
        "{args:?}: want {prefix:?}, got {line:?}"
    );
    assert!(
        !line.contains("os error"),
        "{args:?}: raw errno in {line:?}"
    );
    line.to_string()
}

#[test]
fn exit_statuses_are_docker_s() {
    let f = fixture();
    let root = &f.root;
    fails(
        root,
        &["run", "--rm", "nosuch:img", "true"],
        125,
        r#"unionctl: run: image "nosuch:img": no such image"#,
    );
    // The command's own failures: not found, not executable, killed, its exit code.
    assert_eq!(uc(root, &["run", "--rm", "bb:1", "nosuchcmd"]).code, 127);
    assert_eq!(uc(root, &["run", "--rm", "bb:1", "/etc/motd"]).code, 126);
    let killed = uc(
        root,
        &["run", "--rm", "--init", "bb:1", "sh", "-c", "kill -9 $$"],
    );
    assert_eq!(killed.code, 128 + 9, "{}", killed.stderr);
    assert_eq!(
        uc(root, &["run", "--rm", "bb:1", "sh", "-c", "exit 7"]).code,
        7
    );
    // start -a too, also when the command ends before the connection is made.
    assert_eq!(
        uc(
            root,
            &["run", "--name", "job", "bb:1", "sh", "-c", "exit 5"]
        )
        .code,
        5
    );
    assert_eq!(uc(root, &["start", "-a", "job"]).code, 5);
    assert_eq!(uc(root, &["start", "-a", "job", "other"]).code, 2);
    uc_ok(root, &["rm", "job"]);
    // Usage errors are clap's, on one line as every error.
    fails(
        root,
        &["run", "--no-such-flag", "bb:1", "true"],
        2,
        "unionctl: run: unexpected argument '--no-such-flag' found (see 'unionctl run --help')",
    );
    assert_eq!(uc(root, &["run"]).code, 2);
    // docker's -p is known, and refused as unionctl's own error (no bridge network)
    assert_eq!(uc(root, &["run", "-p", "80:80", "bb:1", "true"]).code, 125);
    assert_eq!(uc(root, &["logout"]).code, 2);
    // exec passes the command's status through, and says 125 for its own errors.
    uc_ok(
        root,
        &[
            "run",
            "-d",
            "--name",
            "live",
            "bb:1",
            "/bin/busybox",
            "sleep",
            "60",
        ],
    );
    assert_eq!(uc(root, &["exec", "live", "sh", "-c", "exit 3"]).code, 3);
    assert_eq!(uc(root, &["exec", "live", "nosuchcmd"]).code, 127);
    assert_eq!(uc(root, &["exec", "live", "/etc/motd"]).code, 126);
    fails(
        root,
        &["exec", "nothere", "true"],
        125,
        r#"unionctl: exec: container "nothere": no such container"#,
    );
    uc_ok(root, &["rm", "-f", "live"]);
}

#[test]
fn errors_are_one_line_in_one_wording() {
    let f = fixture();
    let root = &f.root;
    // A missing container reads the same whichever command looks for it.
    for verb in ["stop", "rm", "start", "commit", "diff", "export", "logs"] {
        fails(
            root,
            &[verb, "ghost"],
            125,
            &format!(r#"unionctl: {verb}: container "ghost": no such container"#),
        );
    }
    fails(
        root,
        &["inspect", "ghost"],
        125,
        r#"unionctl: inspect: image or container "ghost": no such image or container"#,
    );
    // Files that are not there: the operation, the path and errno in words.
    fails(
        root,
        &["import", "/no/such.tar", "x:1"],
        125,
        "unionctl: import: opening /no/such.tar: no such file or directory",
    );
    fails(
        root,
        &["load", "-i", "/no/such.tar"],
        125,
        "unionctl: load: opening /no/such.tar: no such file or directory",
    );
    fails(
        root,
        &["run", "--rm", "--rootfs", "/no/such", "true"],
        125,
        "unionctl: run: --rootfs /no/such: no such file or directory",
    );
    fails(
        root,
        &["pull", "127.0.0.1:1/x/y"],
        125,
        "unionctl: pull: 127.0.0.1:1/x/y: 127.0.0.1:1: registry unreachable: https://127.0.0.1:1/v2/: connection refused",
    );
    // Bad values are refused before any work, and say which value.
    fails(
        root,
        &["ps", "--filter", "status=weird"],
        125,
        "unionctl: ps: invalid filter 'status=weird': the status is one of",
    );
    let o = std::process::Command::new(bin())
        .args(["--root", "/etc/passwd", "images"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).trim(),
        "unionctl: images: --root /etc/passwd: not a directory"
    );
    let dir = f.dir.path().display().to_string();
    fails(
        root,
        &["save", "-o", &dir, "ghost:1"],
        125,
        &format!("unionctl: save: {dir}: is a directory"),
    );
    fails(
        root,
        &["mount", "-o", "upperdir=/x,workdir=/y", "/z"],
        125,
        "unionctl: mount: at least one lower layer is needed",
    );
    let merged = f.dir.path().join("m");
    fails(
        root,
        &["mount", "--lower", "e/lo:", merged.to_str().unwrap()],
        125,
        r#"unionctl: mount: --lower "e/lo:": empty lower layer path"#,
    );
}

#[test]
fn references_follow_one_grammar() {
    let f = fixture();
    let root = &f.root;
    let tar = f.dir.path().join("rootfs.tar");
    let tar = tar.to_str().unwrap();
    for (args, part) in [
        (vec!["import", tar, "bb::1"], r#"name component "bb:""#),
        (vec!["import", tar, "bb:-x"], r#"tag "-x""#),
        (vec!["tag", "bb:1", "Bad"], r#"name component "Bad""#),
        (
            vec!["run", "--rm", "bb::1", "true"],
            r#"name component "bb:""#,
        ),
    ] {
        let line = fails(root, &args, 125, "unionctl: ");
        assert!(
            line.contains("invalid reference") && line.contains(part),
            "{args:?}: {line}"
        );
    }
    // Nothing was stored under a refused name.
    let names = uc_ok(root, &["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(names, "bb:1\n");
    uc_ok(
        root,
        &["tag", "bb:1", "localhost:5000/team/bb_x__y:v1.0-rc"],
    );
}

#[test]
fn listings_take_formats_and_filters() {
    let f = fixture();
    let root = &f.root;
    uc_ok(root, &["tag", "bb:1", "other/name:2"]);
    let id = uc_ok(root, &["images", "-q"]).trim().to_string();
    // Templates: fields, escapes, json, table headers.
    let out = uc_ok(root, &["images", "--format", r"{{.Repository}}\t{{.Tag}}"]);
    assert_eq!(out, "bb\t1\nother/name\t2\n");
    let out = uc_ok(root, &["images", "--format", "{{json .Tag}}"]);
    assert_eq!(out, "\"1\"\n\"2\"\n");
    let out = uc_ok(root, &["images", "--format", r"table {{.ID}}\t{{.Tag}}"]);
    assert_eq!(out, format!("IMAGE ID       TAG\n{id}   1\n{id}   2\n"));
    // json (and its alias --json) is one array with docker's PascalCase keys.
    for args in [&["images", "--format", "json"][..], &["images", "--json"]] {
        let v: Value = serde_json::from_str(&uc_ok(root, args)).unwrap();
        assert_eq!(v[0]["Repository"], "bb");
        assert_eq!(v[0]["ID"], id.as_str());
    }
    // Filters: reference patterns, dangling, labels.
    let refs = |filter: &[&str]| {
        let mut args = vec!["images", "--format", "{{.Repository}}:{{.Tag}}"];
        for f in filter {
            args.extend(["--filter", f]);
        }
        uc_ok(root, &args)
    };
    assert_eq!(refs(&["reference=bb"]), "bb:1\n");
    assert_eq!(refs(&["reference=other/*"]), "other/name:2\n");
    assert_eq!(refs(&["reference=*/*:2"]), "other/name:2\n");
    assert_eq!(refs(&["reference=*:1"]), "bb:1\n");
    assert_eq!(refs(&["dangling=true"]), "");
    assert_eq!(refs(&["dangling=false", "reference=bb"]), "bb:1\n");
    assert_eq!(refs(&["label=tier"]), "");
    uc_ok(root, &["run", "--name", "src", "bb:1", "true"]);
    uc_ok(
        root,
        &["commit", "-c", "LABEL tier=web", "src", "labeled:1"],
    );
    uc_ok(root, &["rm", "src"]);
    assert_eq!(refs(&["label=tier"]), "labeled:1\n");
    assert_eq!(refs(&["label=tier=web"]), "labeled:1\n");
    assert_eq!(refs(&["label=tier=db"]), "");
    uc_ok(root, &["rmi", "labeled:1"]);
    fails(
        root,
        &["images", "--filter", "colour=red"],
        125,
        r#"unionctl: images: --filter "colour=red": unknown key "colour""#,
    );
    fails(
        root,
        &["images", "--format", "{{.Nope}}"],
        125,
        r#"unionctl: images: no field "Nope""#,
    );
    // history
    let out = uc_ok(
        root,
        &["history", "--format", "{{.ID}} {{.CreatedBy}}", "bb:1"],
    );
    assert!(out.starts_with(&format!("{id} unionctl import")), "{out}");

    // ps: a running and an exited container.
    uc_ok(
        root,
        &[
            "run",
            "-d",
            "--name",
            "up",
            "bb:1",
            "/bin/busybox",
            "sleep",
            "60",
        ],
    );
    uc_ok(root, &["run", "--name", "done", "bb:1", "true"]);
    let ps = |args: &[&str]| {
        let mut all = vec!["ps", "--format", "{{.Names}} {{.State}}"];
        all.extend_from_slice(args);
        uc_ok(root, &all)
    };
    assert_eq!(ps(&[]), "up running\n");
    // Newest first, as docker lists them.
    assert_eq!(ps(&["-a"]), "done exited\nup running\n");
    assert_eq!(ps(&["-a", "--filter", "status=exited"]), "done exited\n");
    assert_eq!(ps(&["--filter", "status=exited"]), "done exited\n");
    assert_eq!(ps(&["-a", "--filter", "name=do"]), "done exited\n");
    assert_eq!(
        ps(&["-a", "--filter", "ancestor=bb:1", "--filter", "name=up"]),
        "up running\n"
    );
    assert_eq!(ps(&["-a", "--filter", "ancestor=other/name:2"]), "");
    let v: Value = serde_json::from_str(&uc_ok(root, &["ps", "-a", "--format", "json"])).unwrap();
    let done = v
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["Names"] == "done")
        .unwrap();
    assert_eq!(done["ExitCode"], 0);
    assert_eq!(done["Image"], "bb:1");
    uc_ok(root, &["rm", "-f", "up", "done"]);
}

#[test]
fn inspect_has_docker_s_shape() {
    let f = fixture();
    let root = &f.root;
    let host = f.dir.path().join("host");
    std::fs::create_dir(&host).unwrap();
    let vol = format!("{}:/data:ro", host.display());
    uc_ok(
        root,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "-v",
            &vol,
            "-e",
            "A=1",
            "bb:1",
            "/bin/busybox",
            "sleep",
            "60",
        ],
    );
    let v: Value = serde_json::from_str(&uc_ok(root, &["inspect", "web"])).unwrap();
    let c = &v[0];
    for key in [
        "Id",
        "Name",
        "Created",
        "Path",
        "Args",
        "State",
        "Image",
        "Config",
        "Mounts",
        "HostConfig",
        "GraphDriver",
    ] {
        assert!(c.get(key).is_some(), "no {key} in {c}");
    }
    assert_eq!(c["Name"], "/web");
    assert_eq!(c["Path"], "/bin/busybox");
    assert_eq!(c["Args"], serde_json::json!(["sleep", "60"]));
    assert_eq!(c["State"]["Status"], "running");
    assert_eq!(c["State"]["Running"], true);
    assert!(c["State"]["Pid"].as_i64().unwrap() > 0);
    assert_eq!(c["Config"]["Image"], "bb:1");
    assert!(
        c["Config"]["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "A=1")
    );
    assert_eq!(c["Mounts"][0]["Destination"], "/data");
    assert_eq!(c["Mounts"][0]["RW"], false);
    let data = &c["GraphDriver"]["Data"];
    for key in ["LowerDir", "UpperDir", "WorkDir", "MergedDir"] {
        assert!(
            data[key].as_str().is_some_and(|d| !d.is_empty()),
            "{key}: {data}"
        );
    }
    // The union's lowers: the init layer on the image's layers.
    let image_lowers = uc_ok(
        root,
        &[
            "image",
            "inspect",
            "-f",
            "{{.GraphDriver.Data.LowerDir}}",
            "bb:1",
        ],
    );
    let lowers = data["LowerDir"].as_str().unwrap();
    let (init, below) = lowers.split_once(':').unwrap_or((lowers, ""));
    assert!(init.ends_with("/init"), "{lowers}");
    assert_eq!(below, image_lowers.trim_end(), "{lowers}");
    // `container inspect` and `image inspect` look for one kind only.
    let same: Value = serde_json::from_str(&uc_ok(root, &["container", "inspect", "web"])).unwrap();
    assert_eq!(same[0]["Id"], c["Id"]);
    let id = uc_ok(root, &["image", "inspect", "-f", "{{.Id}}", "bb:1"]);
    assert!(id.starts_with("sha256:"), "{id}");
    for (args, want) in [
        (["image", "inspect", "web"], "image \"web\": no such image"),
        (
            ["container", "inspect", "bb:1"],
            "container \"bb:1\": no such container",
        ),
    ] {
        let r = uc(root, &args);
        assert_ne!(r.code, 0, "{args:?}: {}", r.stdout);
        assert!(r.stderr.contains(want), "{args:?}: {}", r.stderr);
    }
    let text = c.to_string();
    for internal in ["supervisor_pid", "pid_start", "union_mnt_ns", "cgroups"] {
        assert!(!text.contains(internal), "{internal} shown: {text}");
    }
    // Templates on inspect: nested fields and json.
    let out = uc_ok(
        root,
        &[
            "inspect",
            "-f",
            "{{.State.Status}} {{json .Config.Cmd}}",
            "web",
        ],
    );
    assert_eq!(out, "running [\"/bin/busybox\",\"sleep\",\"60\"]\n");
    uc_ok(root, &["stop", "-t", "1", "web"]);
    let out = uc_ok(
        root,
        &[
            "inspect",
            "--format",
            "{{.State.Status}} {{.State.Running}}",
            "web",
        ],
    );
    assert_eq!(out, "exited false\n");

    let v: Value = serde_json::from_str(&uc_ok(root, &["inspect", "bb:1"])).unwrap();
    let i = &v[0];
    for key in [
        "Id",
        "RepoTags",
        "RepoDigests",
        "Created",
        "Size",
        "Config",
        "RootFS",
        "Architecture",
        "Os",
    ] {
        assert!(i.get(key).is_some(), "no {key} in {i}");
    }
    assert_eq!(i["RepoTags"], serde_json::json!(["bb:1"]));
    assert_eq!(i["RootFS"]["Type"], "layers");
    assert_eq!(i["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    uc_ok(root, &["rm", "-f", "web"]);
}

#[test]
fn sizes_are_docker_s() {
    let f = fixture();
    let root = &f.root;
    let v: Value = serde_json::from_str(&uc_ok(root, &["inspect", "bb:1"])).unwrap();
    let bytes = v[0]["Size"].as_u64().unwrap();
    let shown = uc_ok(root, &["images", "--format", "{{.Size}}"]);
    // 3 significant digits in decimal units, as docker prints them.
    let (value, unit) = if bytes >= 1_000_000 {
        (bytes as f64 / 1e6, "MB")
    } else {
        (bytes as f64 / 1e3, "kB")
    };
    let digits = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    let want = format!("{value:.digits$}");
    let want = if want.contains('.') {
        want.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        want
    };
    assert_eq!(shown, format!("{want}{unit}\n"), "{bytes} bytes");
    let table = uc_ok(root, &["images"]);
    // docker's management-command spellings list the same (ids: the CREATED column's
    // "N seconds ago" may move between two listings).
    assert_eq!(
        uc_ok(root, &["image", "ls", "-q"]),
        uc_ok(root, &["images", "-q"])
    );
    assert_eq!(
        uc_ok(root, &["container", "ls", "-a", "-q"]),
        uc_ok(root, &["ps", "-a", "-q"])
    );
    assert!(table.contains(&format!("   {want}{unit}")), "{table}");
}

#[test]
fn completion_scripts_and_man_pages() {
    let root = tmpdir();
    for (shell, marker) in [
        ("bash", "complete -F _unionctl"),
        ("zsh", "#compdef unionctl"),
        ("fish", "complete -c unionctl"),
    ] {
        let out = uc_ok(root.path(), &["completion", shell]);
        assert!(out.contains(marker), "{shell}: {out}");
        assert!(
            out.contains("inspect") && out.contains("--format"),
            "{shell}"
        );
    }
    assert_eq!(uc(root.path(), &["completion", "tcsh"]).code, 2);
    let dir = root.path().join("man1");
    uc_ok(root.path(), &["man", dir.to_str().unwrap()]);
    let page = std::fs::read_to_string(dir.join("unionctl-run.1")).unwrap();
    assert!(page.contains(".TH unionctl-run 1"), "{page}");
    assert!(
        page.contains("Examples:") && page.contains("\\-\\-rm"),
        "{page}"
    );
    assert!(dir.join("unionctl.1").exists());
    assert!(dir.join("unionctl-images.1").exists());
    // run's help has -h once: it is the host name, help is --help only.
    let help = uc_ok(root.path(), &["run", "--help"]);
    assert_eq!(help.matches("-h,").count(), 1, "{help}");
    assert!(help.contains("-h, --hostname"), "{help}");
    assert!(!help.contains("--publish"), "{help}");
}

/// What run's flags record (labels, restart policy, capabilities, security options) shows
/// in `inspect` and `ps` as docker shows it; a container's name wins over an image id
/// prefix.
#[test]
fn inspect_and_ps_show_labels_restarts_and_privileges() {
    let f = fixture();
    let root = &f.root;
    let r = uc(
        root,
        &[
            "run",
            "--name",
            "lab",
            "--label",
            "tier=web",
            "--restart",
            "on-failure:2",
            "--cap-add",
            "SYS_ADMIN",
            "--cap-drop",
            "CHOWN",
            "--security-opt",
            "no-new-privileges=false",
            "bb:1",
            "sh",
            "-c",
            "exit 3",
        ],
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    let shown = uc_ok(
        root,
        &[
            "inspect",
            "-f",
            "{{.RestartCount}} {{json .Config.Labels}} {{json .HostConfig.RestartPolicy}} {{.HostConfig.Privileged}} {{json .HostConfig.CapAdd}} {{json .HostConfig.CapDrop}} {{json .HostConfig.SecurityOpt}}",
            "lab",
        ],
    );
    assert_eq!(
        shown.trim(),
        r#"2 {"tier":"web"} {"MaximumRetryCount":2,"Name":"on-failure"} false ["CAP_SYS_ADMIN"] ["CAP_CHOWN"] ["no-new-privileges=false"]"#
    );
    let listed = uc_ok(
        root,
        &[
            "ps",
            "-a",
            "--filter",
            "label=tier=web",
            "--format",
            "{{.Names}} {{.Labels}}",
        ],
    );
    assert_eq!(listed, "lab map[tier:web]\n");
    assert_eq!(
        uc_ok(root, &["ps", "-a", "-q", "--filter", "label=tier=db"]),
        ""
    );

    // A container named like the start of the image's id is the container.
    let image_id = uc_ok(root, &["images", "-q"]);
    let prefix = &image_id.trim()[..6];
    uc_ok(root, &["create", "--name", prefix, "bb:1", "true"]);
    let name = uc_ok(root, &["inspect", "-f", "{{.Name}}", prefix]);
    assert_eq!(name.trim(), format!("/{prefix}"));

    // volume ls takes --format as the other listings.
    uc_ok(root, &["volume", "create", "data"]);
    let vols = uc_ok(root, &["volume", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    assert_eq!(vols, "data local\n");
}
