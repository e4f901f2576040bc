//! Images made by other tools load, pull, run and export here: umoci (`insert` at `/`,
//! whose layer has a member named `/` and ends right after its last file's data, and
//! `repack`), buildah (`from scratch` + `copy` + `commit`), podman (`save` in both
//! formats, `push`), skopeo (`copy` between formats and to a registry) and docker's
//! `save` layout (OCI layout + manifest.json, docker 25 and later).
mod image_support;
mod registry_support;
use image_support::*;
use registry_support::Registry;
use sha2::Digest;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// What each image shows: a changed file, an added one, the listing without the
/// deleted `etc/remove-me` (hostname, hosts and resolv.conf are the runner's).
const SHOW: &str = "cat /etc/motd /opt/new; ls /etc";
const SHOWN: &str =
    "changed\nadded\ngroup\nhostname\nhosts\nmotd\nmotd.link\npasswd\nresolv.conf\n";

/// The mode umoci's `/` member gives the layer's root.
const ROOT_MODE: u32 = 0o751;

/// The busybox rootfs as one layer, and a second layer that changes, adds and deletes.
fn second_layer_changes(rootfs: &Path) {
    fs::write(rootfs.join("etc/motd"), "changed\n").unwrap();
    fs::remove_file(rootfs.join("etc/remove-me")).unwrap();
    fs::create_dir_all(rootfs.join("opt")).unwrap();
    fs::write(rootfs.join("opt/new"), "added\n").unwrap();
}

/// An OCI layout `L:two` made by umoci: `insert` of the rootfs at `/`, then `unpack`,
/// changes and `repack`.
fn umoci_layout(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    busybox_rootfs(&rootfs);
    fs::set_permissions(&rootfs, fs::Permissions::from_mode(ROOT_MODE)).unwrap();
    let layout = dir.join("umoci-layout");
    let l = layout.to_str().unwrap();
    sh_ok("umoci", &["init", "--layout", l]);
    sh_ok("umoci", &["new", "--image", &format!("{l}:base")]);
    sh_ok(
        "umoci",
        &[
            "insert",
            "--image",
            &format!("{l}:base"),
            rootfs.to_str().unwrap(),
            "/",
        ],
    );
    let bundle = dir.join("bundle");
    sh_ok(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{l}:base"),
            bundle.to_str().unwrap(),
        ],
    );
    second_layer_changes(&bundle.join("rootfs"));
    sh_ok(
        "umoci",
        &[
            "repack",
            "--image",
            &format!("{l}:two"),
            bundle.to_str().unwrap(),
        ],
    );
    layout
}

/// buildah with a private vfs store under `dir`.
fn buildah(dir: &Path, args: &[&str]) -> String {
    let root = dir.join("buildah-root");
    let runroot = dir.join("buildah-run");
    let mut all = vec![
        "--root",
        root.to_str().unwrap(),
        "--runroot",
        runroot.to_str().unwrap(),
        "--storage-driver",
        "vfs",
    ];
    all.extend_from_slice(args);
    sh_ok("buildah", &all).trim().to_string()
}

/// A two-layer image `b2` made by buildah: `from scratch` + `copy` + `commit`, then
/// `from` it, changes through `mount`, `commit`.
fn buildah_image(dir: &Path) {
    let rootfs = dir.join("b-rootfs");
    busybox_rootfs(&rootfs);
    let c1 = buildah(dir, &["from", "scratch"]);
    buildah(dir, &["copy", &c1, rootfs.to_str().unwrap(), "/"]);
    buildah(dir, &["commit", "-q", &c1, "b1"]);
    let c2 = buildah(dir, &["from", "b1"]);
    let mnt = buildah(dir, &["mount", &c2]);
    second_layer_changes(Path::new(&mnt));
    buildah(dir, &["umount", &c2]);
    buildah(dir, &["commit", "-q", &c2, "b2"]);
}

/// docker 25's `docker save`: an OCI layout with uncompressed layers plus docker's
/// manifest.json naming blobs, made from a docker-archive's layers and config.
fn docker_save_layout(dir: &Path, docker_archive: &Path, tag: &str) -> PathBuf {
    let x = dir.join("docker-archive-x");
    fs::create_dir(&x).unwrap();
    sh_ok(
        "tar",
        &[
            "-C",
            x.to_str().unwrap(),
            "-xf",
            docker_archive.to_str().unwrap(),
        ],
    );
    let m: serde_json::Value =
        serde_json::from_slice(&fs::read(x.join("manifest.json")).unwrap()).unwrap();
    let out = dir.join("docker-save");
    let blobs = out.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| -> (String, usize) {
        let hex = hex::encode(sha2::Sha256::digest(data));
        fs::write(blobs.join(&hex), data).unwrap();
        (hex, data.len())
    };
    let (cfg, cfg_size) = put(&fs::read(x.join(m[0]["Config"].as_str().unwrap())).unwrap());
    let mut layers = Vec::new();
    let mut descs = Vec::new();
    for l in m[0]["Layers"].as_array().unwrap() {
        let (hex, size) = put(&fs::read(x.join(l.as_str().unwrap())).unwrap());
        layers.push(format!("blobs/sha256/{hex}"));
        descs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": format!("sha256:{hex}"),
            "size": size,
        }));
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{cfg}"),
            "size": cfg_size,
        },
        "layers": descs,
    });
    let (mhex, msize) = put(&serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{mhex}"),
            "size": msize,
            "annotations": {
                "io.containerd.image.name": format!("docker.io/library/{tag}"),
                "org.opencontainers.image.ref.name": tag.rsplit(':').next().unwrap(),
            },
        }],
    });
    fs::write(out.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    fs::write(out.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let dm = serde_json::json!([{
        "Config": format!("blobs/sha256/{cfg}"),
        "RepoTags": [tag],
        "Layers": layers,
    }]);
    fs::write(out.join("manifest.json"), serde_json::to_vec(&dm).unwrap()).unwrap();
    let tar = dir.join("docker-save.tar");
    sh_ok(
        "tar",
        &[
            "-C",
            out.to_str().unwrap(),
            "-cf",
            tar.to_str().unwrap(),
            ".",
        ],
    );
    tar
}

/// Runs the image in a fresh container and checks what it shows.
fn check_runs(root: &Path, name: &str, what: &str) {
    let out = uc_ok(root, &["run", "--rm", name, "/bin/sh", "-c", SHOW]);
    assert_eq!(out, SHOWN, "{what}");
}

/// The bottom layer's root carries the mode of umoci's `/` member.
fn check_root_member_applied(root: &Path, name: &str, what: &str) {
    let lowers = image_lowers(root, name);
    let mode = fs::metadata(lowers.last().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, ROOT_MODE, "{what}: mode of the layer's root");
}

#[test]
fn archives_from_umoci_buildah_podman_skopeo_and_docker_load_and_run() {
    let t = tmpdir();
    let dir = t.path();
    let layout = umoci_layout(dir);
    let l = layout.display().to_string();
    let mut archives: Vec<(PathBuf, &str, &str, bool)> = Vec::new();

    // umoci's layout as an oci-archive, both of its tags
    let umoci_tar = dir.join("umoci.tar");
    sh_ok("tar", &["-C", &l, "-cf", umoci_tar.to_str().unwrap(), "."]);
    archives.push((umoci_tar, "two:latest", "umoci", true));

    // skopeo copies it into both archive formats
    let sk_oci = dir.join("skopeo-oci.tar");
    let sk_docker = dir.join("skopeo-docker.tar");
    for dest in [
        format!("oci-archive:{}:sk/two:1", sk_oci.display()),
        format!("docker-archive:{}:sk/dock:1", sk_docker.display()),
    ] {
        sh_ok("skopeo", &["copy", "-q", &format!("oci:{l}:two"), &dest]);
    }
    archives.push((sk_oci.clone(), "sk/two:1", "skopeo oci-archive", true));
    archives.push((
        sk_docker.clone(),
        "sk/dock:1",
        "skopeo docker-archive",
        true,
    ));

    // podman loads skopeo's archive and saves it in both formats
    let pdir = dir.join("podman");
    podman(&pdir, &["load", "-i", sk_oci.to_str().unwrap()]);
    let p_docker = dir.join("podman-docker.tar");
    let p_oci = dir.join("podman-oci.tar");
    podman(
        &pdir,
        &[
            "save",
            "-o",
            p_docker.to_str().unwrap(),
            "localhost/sk/two:1",
        ],
    );
    podman(
        &pdir,
        &[
            "save",
            "--format",
            "oci-archive",
            "-o",
            p_oci.to_str().unwrap(),
            "localhost/sk/two:1",
        ],
    );
    podman_cleanup(&pdir);
    archives.push((
        p_docker,
        "localhost/sk/two:1",
        "podman docker-archive",
        true,
    ));
    archives.push((p_oci, "localhost/sk/two:1", "podman oci-archive", true));

    // buildah commits to both archive formats
    buildah_image(dir);
    let b_oci = dir.join("buildah-oci.tar");
    let b_docker = dir.join("buildah-docker.tar");
    buildah(
        dir,
        &[
            "push",
            "-q",
            "b2",
            &format!("oci-archive:{}:b/two:1", b_oci.display()),
        ],
    );
    buildah(
        dir,
        &[
            "push",
            "-q",
            "b2",
            &format!("docker-archive:{}:b/dock:1", b_docker.display()),
        ],
    );
    archives.push((b_oci, "b/two:1", "buildah oci-archive", false));
    archives.push((b_docker, "b/dock:1", "buildah docker-archive", false));

    // docker save's layout (OCI layout + manifest.json, uncompressed layers)
    let dk = docker_save_layout(dir, &sk_docker, "dk:1");
    archives.push((dk, "dk:1", "docker save layout", true));

    for (i, (f, name, what, from_umoci)) in archives.iter().enumerate() {
        let root = dir.join(format!("store-{i}"));
        let out = uc(&root, &["load", "-i", f.to_str().unwrap()]);
        assert_eq!(out.code, 0, "{what}: {}", out.stderr);
        assert!(out.stdout.contains(name), "{what}: {}", out.stdout);
        check_runs(&root, name, what);
        if *from_umoci {
            check_root_member_applied(&root, name, what);
        }
    }
}

#[test]
fn images_pushed_by_skopeo_buildah_and_podman_pull_run_and_export() {
    let reg = Registry::start();
    let t = tmpdir();
    let dir = t.path();
    let layout = umoci_layout(dir);
    let src = format!("oci:{}:two", layout.display());
    let h = &reg.host;
    // umoci's image through skopeo, as docker schema2 and as OCI
    sh_ok(
        "skopeo",
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            "--format",
            "v2s2",
            &src,
            &format!("docker://{h}/sk/v2s2:1"),
        ],
    );
    sh_ok(
        "skopeo",
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &src,
            &format!("docker://{h}/sk/oci:1"),
        ],
    );
    // buildah's and podman's own pushes
    buildah_image(dir);
    buildah(
        dir,
        &[
            "push",
            "-q",
            "--tls-verify=false",
            "b2",
            &format!("docker://{h}/b/two:1"),
        ],
    );
    let pdir = dir.join("podman");
    let archive = dir.join("for-podman.tar");
    let dest = format!("oci-archive:{}:sk/two:1", archive.display());
    sh_ok("skopeo", &["copy", "-q", &src, &dest]);
    podman(&pdir, &["load", "-q", "-i", archive.to_str().unwrap()]);
    podman(
        &pdir,
        &[
            "push",
            "-q",
            "--tls-verify=false",
            "localhost/sk/two:1",
            &format!("docker://{h}/p/two:1"),
        ],
    );
    podman_cleanup(&pdir);

    for (repo, from_umoci) in [
        ("sk/v2s2:1", true),
        ("sk/oci:1", true),
        ("b/two:1", false),
        ("p/two:1", true),
    ] {
        let name = format!("{h}/{repo}");
        let root = dir.join(format!("store-{}", repo.replace(['/', ':'], "_")));
        uc_ok(&root, &["pull", &name]);
        check_runs(&root, &name, repo);
        if from_umoci {
            check_root_member_applied(&root, &name, repo);
        }
    }

    // export of a container of umoci's image: the flattened tree
    let root = dir.join("store-sk_v2s2_1");
    let name = format!("{h}/sk/v2s2:1");
    uc_ok(&root, &["run", "--name", "c", &name, "/bin/true"]);
    let exp = dir.join("export.tar");
    uc_ok(&root, &["export", "-o", exp.to_str().unwrap(), "c"]);
    let x = dir.join("exported");
    fs::create_dir(&x).unwrap();
    sh_ok(
        "tar",
        &["-C", x.to_str().unwrap(), "-xf", exp.to_str().unwrap()],
    );
    assert_eq!(fs::read_to_string(x.join("etc/motd")).unwrap(), "changed\n");
    assert_eq!(fs::read_to_string(x.join("opt/new")).unwrap(), "added\n");
    assert!(!x.join("etc/remove-me").exists());
    assert!(x.join("bin/busybox").is_file());
    uc_ok(&root, &["rm", "c"]);
}
