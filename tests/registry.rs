//! `pull`, `push`, `search`, `login` against a real registry (docker-registry on
//! 127.0.0.1), with skopeo and umoci as peers on the other side.
mod image_support;
mod registry_support;
use image_support::*;
use registry_support::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The image's layers in both stores are the same trees.
fn assert_same_layers(root_a: &Path, ref_a: &str, root_b: &Path, ref_b: &str) {
    let la = image_lowers(root_a, ref_a);
    let lb = image_lowers(root_b, ref_b);
    assert_eq!(la.len(), lb.len());
    for (a, b) in la.iter().zip(&lb) {
        assert_eq!(a.file_name(), b.file_name(), "diff ids differ");
        assert_same_tree(a, b, true);
    }
}

/// Asserts a failure with one line on stderr holding every `needles`; returns it.
fn fails_with(root: &Path, args: &[&str], needles: &[&str]) -> String {
    let r = uc(root, args);
    assert_eq!(
        r.code, 125,
        "{args:?} should fail: {}{}",
        r.stdout, r.stderr
    );
    let line = r.stderr.trim_end();
    assert!(
        !line.contains('\n'),
        "{args:?}: want one line, got:\n{line}"
    );
    assert!(!line.contains("panicked"), "{line}");
    for n in needles {
        assert!(line.contains(n), "{args:?}: {line:?} lacks {n:?}");
    }
    line.to_string()
}

/// Nothing an image needs was left in the store.
fn assert_store_empty(root: &Path) {
    assert_eq!(uc_ok(root, &["images", "-q"]), "");
    for d in ["blobs/sha256", "layers", "tmp"] {
        let n = fs::read_dir(root.join(d)).map(|r| r.count()).unwrap_or(0);
        assert_eq!(n, 0, "{d} of {} is not empty", root.display());
    }
}

/// Makes the two-layer image in `root` and pushes it to `reg` as `REPO:v1`; returns
/// that name and the digest push printed.
fn push_two_layer_image(reg: &Registry, dir: &Path, root: &Path, repo: &str) -> (String, String) {
    two_layer_image(dir, root);
    let name = format!("{}/{repo}:v1", reg.host);
    let digest = uc_ok(root, &["push", "two:layers", &name]);
    (name, digest)
}

#[test]
fn push_then_pull_into_an_empty_store_gives_the_same_image() {
    let reg = Registry::start();
    let t = tmpdir();
    let (one, two) = (t.path().join("one"), t.path().join("two"));
    let (name, digest) = push_two_layer_image(&reg, t.path(), &one, "team/two");
    let digest = digest.trim();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    // pushed again: every blob is there already, same manifest
    assert_eq!(uc_ok(&one, &["push", "two:layers", &name]).trim(), digest);
    // the registry serves it under that digest
    let js = sh_ok(
        "skopeo",
        &["inspect", "--tls-verify=false", &format!("docker://{name}")],
    );
    let v: serde_json::Value = serde_json::from_str(&js).unwrap();
    assert_eq!(v["Digest"], digest);

    let blob_gets = || {
        reg.log()
            .lines()
            .filter(|l| l.contains("\"GET /v2/team/two/blobs/sha256:"))
            .count()
    };
    let start = blob_gets();
    let id = uc_ok(&two, &["pull", &name]);
    assert_eq!(
        id.trim(),
        format!("sha256:{}", image_id(&one, "two:layers"))
    );
    assert_same_layers(&one, "two:layers", &two, &name);
    let images = uc_ok(&two, &["images"]);
    assert!(images.contains(&format!("{}/team/two", reg.host)) && images.contains("v1"));
    assert!(uc_ok(&two, &["history", &name]).contains("two"));
    // a container of the pulled image sees both layers; the config came along
    let out = uc_ok(&two, &["run", "--rm", &name]);
    assert_eq!(out, "changed\n");
    let out = uc_ok(
        &two,
        &[
            "run",
            "--rm",
            &name,
            "/bin/sh",
            "-c",
            "test -e /etc/remove-me || echo gone; ls /var/cache/app",
        ],
    );
    assert_eq!(out, "gone\nc\n");
    // pulled again (layers present) and by digest: the same image, and of the blobs
    // only the config is fetched again
    let before = blob_gets();
    assert_eq!(before, start + 3, "two layers and a config");
    assert_eq!(uc_ok(&two, &["pull", &name]), id);
    let by_digest = format!("{}/team/two@{digest}", reg.host);
    assert_eq!(uc_ok(&two, &["pull", &by_digest]), id);
    assert_eq!(
        blob_gets(),
        before + 2,
        "layers in the store were downloaded again"
    );
    // pulled by digest only, into an empty store: that reference names it (run, inspect)
    let four = t.path().join("four");
    assert_eq!(uc_ok(&four, &["pull", &by_digest]), id);
    assert_eq!(uc_ok(&four, &["run", "--rm", &by_digest]), "changed\n");
    assert_eq!(image_id(&four, &by_digest), image_id(&one, "two:layers"));
    // pushed on to another repository of that registry: its blobs are mounted, not sent
    let copy = format!("{}/team/copy:v1", reg.host);
    assert_eq!(uc_ok(&two, &["push", &name, &copy]).trim(), digest);
    let log = reg.log();
    let mounts: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("POST /v2/team/copy/blobs/uploads/?mount=") && l.contains("from=team/two")
        })
        .collect();
    assert_eq!(mounts.len(), 3, "two layers and a config to mount:\n{log}");
    assert!(mounts.iter().all(|l| l.contains("\" 201 ")), "{mounts:?}");
    assert!(!log.contains("PUT /v2/team/copy/blobs/uploads/"), "{log}");
    // and a save of the pulled image loads back as the same image elsewhere
    let ar = t.path().join("pulled.tar");
    uc_ok(&two, &["save", "-o", ar.to_str().unwrap(), &name]);
    let three = t.path().join("three");
    uc_ok(&three, &["load", "-i", ar.to_str().unwrap()]);
    assert_eq!(image_id(&three, &name), image_id(&one, "two:layers"));
}

/// `run` and `create` pull an image missing from the store when its name gives the
/// registry, as docker's `--pull missing`; present, it is not asked for again; `--pull
/// never` does not pull, `--pull always` does. A name without a registry is not looked
/// up (Docker Hub): the store's error.
#[test]
fn run_and_create_pull_a_missing_image_from_the_registry_its_name_gives() {
    let reg = Registry::start();
    let t = tmpdir();
    let one = t.path().join("one");
    let (name, _) = push_two_layer_image(&reg, t.path(), &one, "team/auto");
    let two = t.path().join("two");
    fails_with(
        &two,
        &["run", "--rm", "--pull", "never", &name],
        &["no such image"],
    );
    let manifest_gets = || reg.log().matches("GET /v2/team/auto/manifests/").count();
    let r = uc(&two, &["run", "--rm", &name]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stdout, "changed\n");
    let unable = format!("Unable to find image '{name}' locally");
    assert!(r.stderr.contains(&unable), "{}", r.stderr);
    assert_eq!(image_id(&two, &name), image_id(&one, "two:layers"));
    let before = manifest_gets();
    let r = uc(&two, &["run", "--rm", &name]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "changed\n"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("Unable"), "{}", r.stderr);
    assert_eq!(manifest_gets(), before, "a present image was pulled again");
    uc_ok(&two, &["run", "--rm", "--pull", "always", "-q", &name]);
    assert!(
        manifest_gets() > before,
        "--pull always did not ask the registry"
    );
    let three = t.path().join("three");
    uc_ok(&three, &["create", "--name", "made", &name]);
    assert_eq!(image_id(&three, &name), image_id(&one, "two:layers"));
    fails_with(
        &three,
        &["run", "--rm", "nosuch:1"],
        &["nosuch:1", "no such image"],
    );
    fails_with(
        &three,
        &["run", "--rm", "--pull", "always", "nosuch:1"],
        &["nosuch:1", "names no registry"],
    );
}

#[test]
fn skopeo_umoci_and_podman_read_what_we_pushed() {
    let reg = Registry::start();
    let t = tmpdir();
    let root = t.path().join("store");
    let (name, _) = push_two_layer_image(&reg, t.path(), &root, "peers/two");
    let layout = t.path().join("layout");
    check_two_layer_rootfs(&skopeo_copy_and_unpack(&name, &layout, "copied", t.path()));
    let cfg = sh_ok(
        "skopeo",
        &[
            "inspect",
            "--config",
            "--tls-verify=false",
            &format!("docker://{name}"),
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    assert_eq!(v["config"]["Cmd"][1], "/etc/motd");
    // podman pulls it into its own store: the same image id
    let id = podman(t.path(), &["pull", "-q", "--tls-verify=false", &name]);
    podman_cleanup(t.path());
    assert_eq!(id.trim(), image_id(&root, "two:layers"));
}

/// Puts an OCI index at HOST/sk/docker:multi whose s390x and host entries both point at
/// the schema2 manifest DRAW; returns that reference and the host's architecture name.
fn put_two_platform_index(host: &str, draw: &str, dir: &Path) -> (String, &'static str) {
    let host_arch = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    };
    let digest = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(draw.as_bytes()))
    );
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": digest,
             "size": draw.len(), "platform": {"architecture": "s390x", "os": "linux"}},
            {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": digest,
             "size": draw.len(), "platform": {"architecture": host_arch, "os": "linux"}}
        ]
    });
    let index_file = dir.join("index.json");
    fs::write(&index_file, serde_json::to_vec(&index).unwrap()).unwrap();
    sh_ok(
        "curl",
        &[
            "-sf",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/vnd.oci.image.index.v1+json",
            "--data-binary",
            &format!("@{}", index_file.display()),
            &format!("http://{}/v2/sk/docker/manifests/multi", host),
        ],
    );
    (format!("{host}/sk/docker:multi"), host_arch)
}

#[test]
fn we_pull_what_skopeo_pushed_gzip_zstd_docker_and_index() {
    let reg = Registry::start();
    let t = tmpdir();
    let ours = t.path().join("ours");
    two_layer_image(t.path(), &ours);
    let ar = t.path().join("two.oci.tar");
    uc_ok(
        &ours,
        &[
            "save",
            "--format",
            "oci-archive",
            "-o",
            ar.to_str().unwrap(),
            "two:layers",
        ],
    );
    let src = format!("oci-archive:{}", ar.display());
    // skopeo reuses blobs a registry already has in another compression (and then
    // fails on a schema2 image): the zstd image goes to a registry of its own.
    let zreg = Registry::start();
    let zstd = format!("{}/sk/zstd:1", zreg.host);
    let docker = format!("{}/sk/docker:1", reg.host);
    sh_ok(
        "skopeo",
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            "--dest-compress",
            "--dest-compress-format",
            "zstd",
            &src,
            &format!("docker://{zstd}"),
        ],
    );
    sh_ok(
        "skopeo",
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            "--format",
            "v2s2",
            &src,
            &format!("docker://{docker}"),
        ],
    );
    let raw = |n: &str| {
        sh_ok(
            "skopeo",
            &[
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!("docker://{n}"),
            ],
        )
    };
    let zraw = raw(&zstd);
    assert!(
        zraw.contains("tar+zstd"),
        "skopeo did not push zstd layers: {zraw}"
    );
    let draw = raw(&docker);
    assert!(
        draw.contains("distribution.manifest.v2+json") && draw.contains("diff.tar.gzip"),
        "skopeo did not push a gzip schema2 image: {draw}"
    );
    let want = image_id(&ours, "two:layers");
    for n in [&zstd, &docker] {
        let root = t.path().join(n.replace(['/', ':'], "_"));
        assert_eq!(
            uc_ok(&root, &["pull", n]).trim(),
            format!("sha256:{want}"),
            "{n}"
        );
        assert_same_layers(&ours, "two:layers", &root, n);
    }

    // an OCI index with two platforms, the host's pointing at the schema2 manifest
    let (multi, host_arch) = put_two_platform_index(&reg.host, &draw, t.path());
    let root = t.path().join("from-index");
    assert_eq!(
        uc_ok(&root, &["pull", &multi]).trim(),
        format!("sha256:{want}")
    );
    assert_same_layers(&ours, "two:layers", &root, &multi);
    let other = t.path().join("s390x");
    uc_ok(&other, &["pull", "--platform", "linux/s390x", &multi]);
    // a single-platform image of another platform than the one asked for: refused
    let single = docker.as_str();
    fails_with(
        &other,
        &["pull", "--platform", "linux/s390x", single],
        &[&format!("is for linux/{host_arch}"), "linux/s390x"],
    );
    uc_ok(
        &other,
        &["pull", "--platform", &format!("linux/{host_arch}"), single],
    );
    fails_with(
        &other,
        &["pull", "--platform", "linux/riscv64", &multi],
        &[
            "no image for linux/riscv64",
            "linux/s390x",
            &format!("linux/{host_arch}"),
        ],
    );
}

#[test]
fn search_lists_repositories_across_catalog_pages_and_tags() {
    let reg = Registry::start(); // one repository per catalog page
    let t = tmpdir();
    let root = t.path().join("store");
    import_busybox(t.path(), &root, "bb");
    for n in ["alpha/one:1", "alpha/one:2", "beta/two:1", "alpha/three:x"] {
        uc_ok(&root, &["push", "bb", &format!("{}/{n}", reg.host)]);
    }
    let all = uc_ok(&root, &["search", &reg.host]);
    let h = &reg.host;
    assert_eq!(
        all,
        format!("NAME\n{h}/alpha/one\n{h}/alpha/three\n{h}/beta/two\n")
    );
    let some = uc_ok(&root, &["search", &format!("{h}/alpha")]);
    assert_eq!(some, format!("NAME\n{h}/alpha/one\n{h}/alpha/three\n"));
    let js = uc_ok(&root, &["search", "--json", &format!("{h}/two")]);
    let v: serde_json::Value = serde_json::from_str(&js).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["Name"], format!("{h}/beta/two"));
    let tags = uc_ok(&root, &["search", "--list-tags", &format!("{h}/alpha/one")]);
    let tags: Vec<&str> = tags
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(tags, ["1", "2"]);
    fails_with(
        &root,
        &["search", "--list-tags", &format!("{h}/no/such")],
        &["no/such"],
    );
}

#[test]
fn basic_auth_login_creds_and_clear_401() {
    let t = tmpdir();
    let pw = htpasswd(t.path(), "alice", "s3cret:pw");
    let reg = Registry::start_with(Some(&pw));
    let root = t.path().join("store");
    import_busybox(t.path(), &root, "bb");
    let name = format!("{}/private/bb:1", reg.host);
    let h = reg.host.as_str();

    // no credentials: one clear line that says what to do
    fails_with(
        &root,
        &["push", "bb", &name],
        &["401", "--creds", "login", h],
    );
    fails_with(
        &root,
        &["push", "--creds", "alice:wrong", "bb", &name],
        &["alice", "refused", "401"],
    );
    uc_ok(&root, &["push", "--creds", "alice:s3cret:pw", "bb", &name]);

    // login checks the password before saving it
    let auth = root.join("auth.json");
    fails_with(
        &root,
        &["login", "-u", "alice", "-p", "nope", h],
        &["alice", "401"],
    );
    assert!(!auth.exists(), "a refused login must not be saved");
    let out = uc_ok(&root, &["login", "-u", "alice", "-p", "s3cret:pw", h]);
    assert!(out.contains("Login Succeeded"));
    assert_eq!(
        fs::metadata(&auth).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // saved credentials serve pull and search; skopeo reads the same file
    let other = t.path().join("other");
    let r = uc(
        &other,
        &["pull", "--authfile", auth.to_str().unwrap(), &name],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        uc_ok(&root, &["search", h]),
        format!("NAME\n{h}/private/bb\n")
    );
    sh_ok(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            "--authfile",
            auth.to_str().unwrap(),
            &format!("docker://{name}"),
        ],
    );
    // password from stdin into another auth file
    let file2 = t.path().join("auth2.json");
    let o = std::process::Command::new(bin())
        .args([
            "--root",
            root.to_str().unwrap(),
            "login",
            "--authfile",
            file2.to_str().unwrap(),
        ])
        .args(["-u", "alice", "--password-stdin", h])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"s3cret:pw\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(o.status.success());
    assert!(fs::read_to_string(&file2).unwrap().contains(h));

    uc_ok(&root, &["logout", h]);
    fails_with(&root, &["logout", h], &["not logged in"]);
    fails_with(&root, &["pull", &name], &["401", "login"]);
}

#[test]
fn a_corrupt_blob_is_refused_and_nothing_is_stored() {
    let reg = Registry::start();
    let t = tmpdir();
    let one = t.path().join("one");
    let (name, _) = push_two_layer_image(&reg, t.path(), &one, "bad/two");
    // flip one byte of the top layer's data in the registry's storage (same size)
    let top = image_lowers(&one, "two:layers")[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let data: PathBuf = reg.blob_data(&top);
    let mut bytes = fs::read(&data).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&data, bytes).unwrap();

    let two = t.path().join("two");
    // (-q: the layers that came right are not listed before the error.)
    fails_with(
        &two,
        &["pull", "-q", &name],
        &["digest mismatch", &top, &name],
    );
    assert_store_empty(&two);
}

#[test]
fn errors_are_one_clear_line() {
    let reg = Registry::start();
    let t = tmpdir();
    let root = t.path().join("store");
    let h = &reg.host;
    let missing = format!("{h}/no/such:tag");
    fails_with(&root, &["pull", &missing], &["manifest unknown", &missing]);
    fails_with(
        &root,
        &["pull", "127.0.0.1:1/x/y"],
        &["127.0.0.1:1", "unreachable"],
    );
    fails_with(
        &root,
        &["pull", &format!("{h}/Bad/Name")],
        &["invalid reference", "Bad/Name"],
    );
    fails_with(
        &root,
        &["push", "nothere", &format!("{h}/x:1")],
        &["nothere", "no such image"],
    );
    fails_with(
        &root,
        &["pull", "--creds", "nocolon", &missing],
        &["USER:PASS"],
    );
    assert!(!reg.log().contains("panic"));
}

#[test]
fn bearer_tokens_over_https() {
    let t = tmpdir();
    let (cert, key) = self_signed(t.path());
    let tokens = TokenServer::start(&cert, &key, "unionctl-issuer", "bob", "pw");
    let auth = format!(
        "auth:\n  token:\n    realm: {}\n    service: unionctl-registry\n    issuer: unionctl-issuer\n    rootcertbundle: {}\n",
        tokens.realm,
        cert.display()
    );
    let reg = Registry::start_custom(&auth, Some((&cert, &key)));
    let h = reg.host.as_str();
    let root = t.path().join("store");
    import_busybox(t.path(), &root, "bb");
    let public = format!("{h}/public/bb:1");
    let private = format!("{h}/private/bb:1");

    // anonymous tokens carry no push: refused with the way out named
    fails_with(&root, &["push", "bb", &public], &["401", "login"]);
    fails_with(
        &root,
        &["push", "--creds", "bob:bad", "bb", &public],
        &["bob", "refused"],
    );
    for n in [&public, &private] {
        uc_ok(&root, &["push", "--creds", "bob:pw", "bb", n]);
    }
    // anonymous pull of public/ works, of private/ does not
    let other = t.path().join("other");
    let id = uc_ok(&other, &["pull", &public]);
    assert_eq!(id.trim(), format!("sha256:{}", image_id(&root, "bb")));
    fails_with(&other, &["pull", &private], &["401", "login"]);
    // login asks the token server; saved credentials then serve pull and search
    fails_with(
        &other,
        &["login", "-u", "bob", "-p", "nope", h],
        &["bob", "refused"],
    );
    uc_ok(&other, &["login", "-u", "bob", "-p", "pw", h]);
    assert_eq!(uc_ok(&other, &["pull", &private]), id);
    assert_eq!(
        uc_ok(&other, &["search", h]),
        format!("NAME\n{h}/private/bb\n{h}/public/bb\n")
    );
    // the registry speaks https only: skopeo agrees on what we pushed
    sh_ok(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            "--creds",
            "bob:pw",
            &format!("docker://{private}"),
        ],
    );
}

#[test]
fn rootless_pull_and_push() {
    let reg = Registry::start();
    let t = tmpdir();
    let root = t.path().join("store");
    let (name, _) = push_two_layer_image(&reg, t.path(), &root, "team/two");
    let user_root = user_store(t.path());
    let id = uc_as_user_ok(&user_root, &["pull", &name]);
    assert_eq!(
        id.trim(),
        format!("sha256:{}", image_id(&root, "two:layers"))
    );
    let listed = uc_as_user_ok(&user_root, &["images", "-q"]);
    assert_eq!(listed.trim(), &image_id(&root, "two:layers")[..12]);
    let again = format!("{}/user/two:v2", reg.host);
    let digest = uc_as_user_ok(&user_root, &["push", &name, &again]);
    assert_eq!(digest, uc_ok(&root, &["push", "two:layers", &again]));
}

#[test]
fn certificates_of_remote_registries_are_checked() {
    let t = tmpdir();
    let ip = outside_ipv4();
    let (ca, cert, key) = ca_and_server_cert(t.path(), &ip);
    let reg = Registry::start_on(&ip, "", Some((&cert, &key)));
    let root = t.path().join("store");
    import_busybox(t.path(), &root, "bb");
    let name = format!("{}/tls/bb:1", reg.host);
    // not a local registry: an unknown CA is refused, with the ways out named
    fails_with(
        &root,
        &["push", "bb", &name],
        &[&reg.host, "certificate", "--tls-verify=false", "--cert-dir"],
    );
    uc_ok(&root, &["push", "--tls-verify=false", "bb", &name]);
    // with the CA in a cert dir the certificate is checked and accepted
    let certs = t.path().join("certs.d");
    fs::create_dir_all(&certs).unwrap();
    fs::copy(&ca, certs.join("ca.crt")).unwrap();
    let other = t.path().join("other");
    let cd = certs.to_str().unwrap();
    assert_eq!(
        uc_ok(&other, &["pull", "--cert-dir", cd, &name]).trim(),
        format!("sha256:{}", image_id(&root, "bb"))
    );
    let empty = t.path().join("empty");
    fs::create_dir_all(&empty).unwrap();
    fails_with(
        &other,
        &["pull", "--cert-dir", empty.to_str().unwrap(), &name],
        &["--cert-dir", "empty"],
    );
}

#[test]
fn compressed_push_is_read_by_skopeo_and_by_us() {
    let reg = Registry::start();
    let t = tmpdir();
    let root = t.path().join("store");
    two_layer_image(t.path(), &root);
    let want = format!("sha256:{}", image_id(&root, "two:layers"));
    let mut gzip_digest = String::new();
    for (how, media) in [("gzip", "tar+gzip"), ("zstd", "tar+zstd")] {
        let name = format!("{}/packed/{how}:1", reg.host);
        let digest = uc_ok(
            &root,
            &["push", "--compression-format", how, "two:layers", &name],
        );
        // deterministic compression: a second push finds every blob there already
        assert_eq!(
            uc_ok(
                &root,
                &["push", "--compression-format", how, "two:layers", &name]
            ),
            digest
        );
        let raw = sh_ok(
            "skopeo",
            &[
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!("docker://{name}"),
            ],
        );
        assert_eq!(raw.matches(media).count(), 2, "{raw}");
        let v: serde_json::Value = serde_json::from_str(&sh_ok(
            "skopeo",
            &["inspect", "--tls-verify=false", &format!("docker://{name}")],
        ))
        .unwrap();
        assert_eq!(v["Digest"], digest.trim());
        let other = t.path().join(how);
        assert_eq!(uc_ok(&other, &["pull", &name]).trim(), want);
        assert_same_layers(&root, "two:layers", &other, &name);
        if how == "gzip" {
            gzip_digest = digest.trim().to_string();
        }
    }
    // Pulled by the registry's digest (not the stored manifest's: the store keeps layers
    // uncompressed): that reference names the image for run and inspect, images shows
    // `REPO <none>`, image prune keeps it, rmi by it removes it.
    let by_digest = format!("{}/packed/gzip@{gzip_digest}", reg.host);
    let fresh = t.path().join("by-digest");
    assert_eq!(uc_ok(&fresh, &["pull", &by_digest]).trim(), want);
    assert_eq!(uc_ok(&fresh, &["run", "--rm", &by_digest]), "changed\n");
    let v: serde_json::Value =
        serde_json::from_str(&uc_ok(&fresh, &["image", "inspect", &by_digest])).unwrap();
    assert_eq!(v[0]["RepoDigests"], serde_json::json!([by_digest]));
    assert_eq!(v[0]["RepoTags"], serde_json::json!([]));
    let listed = format!("{}/packed/gzip <none> {}\n", reg.host, &want[7..19]);
    let images = ["images", "--format", "{{.Repository}} {{.Tag}} {{.ID}}"];
    assert_eq!(uc_ok(&fresh, &images), listed);
    let table = uc_ok(&fresh, &["images", "--digests"]);
    assert!(
        table.starts_with("REPOSITORY") && table.contains(" DIGEST "),
        "{table}"
    );
    assert!(table.contains(&gzip_digest), "{table}");
    uc_ok(&fresh, &["image", "prune", "-f"]);
    assert_eq!(uc_ok(&fresh, &images), listed);
    let removed = uc_ok(&fresh, &["rmi", &by_digest]);
    assert!(
        removed.contains(&format!("Untagged: {by_digest}")),
        "{removed}"
    );
    assert_store_empty(&fresh);
    let layout = t.path().join("layout");
    let name = format!("{}/packed/gzip:1", reg.host);
    check_two_layer_rootfs(&skopeo_copy_and_unpack(&name, &layout, "gz", t.path()));
}

/// The peers' view of an image in a registry: skopeo copies NAME into the OCI layout
/// LAYOUT as TAG, umoci unpacks it under DIR; returns the unpacked rootfs.
fn skopeo_copy_and_unpack(name: &str, layout: &Path, tag: &str, dir: &Path) -> PathBuf {
    sh_ok(
        "skopeo",
        &[
            "copy",
            "-q",
            "--src-tls-verify=false",
            &format!("docker://{name}"),
            &format!("oci:{}:{tag}", layout.display()),
        ],
    );
    let bundle = dir.join("bundle");
    sh_ok(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:{tag}", layout.display()),
            bundle.to_str().unwrap(),
        ],
    );
    bundle.join("rootfs")
}
