//! Lookups over many lower layers (after a dir's second lookup the lower index answers
//! which layers may hold a name) resolve as kernel overlayfs resolves them: names in any
//! layer, whiteouts and opaque dirs in both formats, a file hiding a dir below it, dirs
//! merged across every layer, names missing everywhere.
mod common;

use common::Scratch;
use common::layers::{Format, Layer};
use common::mounts::{UnionDirs, mount_kernel, mount_unionctl};
use std::path::{Path, PathBuf};

const LAYERS: usize = 40;

/// The same layers in either format, top first.
fn layers(base: &Path, format: Format) -> Vec<PathBuf> {
    (0..LAYERS)
        .map(|i| {
            let l = Layer::with_format(&base.join(format!("l{i:02}")), format);
            l.file(&format!("d/own{i}"), format!("own {i}").as_bytes(), 0o644)
                .file("d/shared", format!("shared {i}").as_bytes(), 0o644)
                .file(&format!("d/merged/m{i}"), b"m", 0o644);
            if i % 5 == 0 && i + 1 < LAYERS {
                l.whiteout(&format!("d/own{}", i + 1));
            }
            match i {
                0..=2 => {
                    l.file(&format!("d/sub/above{i}"), b"above", 0o644);
                }
                3 => {
                    l.opaque("d/sub", 0o755).file("d/sub/top", b"top", 0o644);
                }
                _ => {
                    l.file(&format!("d/sub/deep{i}"), b"hidden", 0o644);
                }
            }
            if i == 7 {
                l.file("d/mixed", b"a file over a dir", 0o644);
            }
            if i == 20 {
                l.file("d/mixed/inside", b"hidden", 0o644);
            }
            if i == 30 {
                l.whiteout("d/merged/m35");
            }
            l.root.clone()
        })
        .collect()
}

/// What a path shows: its type and content, its sorted listing, or the errno.
fn describe(p: &Path) -> String {
    match std::fs::symlink_metadata(p) {
        Err(e) => format!("errno {}", e.raw_os_error().unwrap_or(0)),
        Ok(m) if m.is_dir() => {
            let mut names: Vec<String> = std::fs::read_dir(p)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            format!("dir [{}]", names.join(" "))
        }
        Ok(_) => format!(
            "file {}",
            String::from_utf8_lossy(&std::fs::read(p).unwrap())
        ),
    }
}

fn names() -> Vec<String> {
    let mut v: Vec<String> = (0..60).map(|k| format!("d/missing{k}")).collect();
    v.extend((0..LAYERS).map(|i| format!("d/own{i}")));
    v.extend(
        [
            "d/shared",
            "d/sub",
            "d/sub/top",
            "d/sub/above0",
            "d/sub/above2",
            "d/sub/deep4",
            "d/sub/deep39",
            "d/sub/nothing",
            "d/mixed",
            "d/mixed/inside",
            "d/merged/m0",
            "d/merged/m35",
            "d/merged/m39",
            "d/merged/none",
            "d/.wh.own1",
            "d",
        ]
        .map(String::from),
    );
    v.extend((0..LAYERS).map(|i| format!("d/merged/m{i}")));
    v
}

/// Each name looked up once per mount (the kernel keeps what it learnt): every lookup
/// after a dir's second one is answered through the index.
fn views(merged: &Path) -> Vec<(String, String)> {
    names()
        .into_iter()
        .map(|n| {
            let d = describe(&merged.join(&n));
            (n, d)
        })
        .collect()
}

#[test]
fn many_lower_layers_resolve_as_the_kernel_does() {
    assert!(
        common::is_root(),
        "mounts FUSE and kernel overlayfs: run as root"
    );
    common::mounts::ensure_fusectl();
    let s = Scratch::new("many-lowers");
    let overlay = layers(&s.mkdir("overlay"), Format::Overlay);
    let aufs = layers(&s.mkdir("aufs"), Format::Aufs);
    let mut seen = Vec::new();
    for (what, lowers) in [
        ("kernel", &overlay),
        ("unionctl", &overlay),
        ("unionctl, aufs lowers", &aufs),
    ] {
        let tag = what.replace([' ', ','], "-");
        let dirs = UnionDirs {
            lowers: lowers.clone(),
            upper: Some(s.mkdir(&format!("upper-{tag}"))),
            work: Some(s.mkdir(&format!("work-{tag}"))),
        };
        let merged = s.mkdir(&format!("merged-{tag}"));
        let mut m = if what == "kernel" {
            mount_kernel(&dirs, &merged).expect("kernel overlayfs mount")
        } else {
            mount_unionctl(&dirs, &merged, &[]).expect("unionctl mount")
        };
        seen.push((what, views(&merged)));
        m.unmount().unwrap();
    }
    let (_, want) = &seen[0];
    assert!(
        want.iter()
            .any(|(n, d)| n == "d/own1" && d.starts_with("errno")),
        "the layers are not what this test means: {want:?}"
    );
    for (what, got) in &seen[1..] {
        for ((name, w), (_, g)) in want.iter().zip(got) {
            assert_eq!(g, w, "{what}: {name}");
        }
    }
}
