//! Builds layer directories the way an image or kernel overlayfs would have left them:
//! files, links, and whiteouts / opaque dirs in kernel (char 0/0, trusted.overlay.opaque)
//! or aufs (.wh.NAME, .wh..wh..opq) format.
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A fixed, old timestamp for everything in a layer, so copy-up that loses times shows.
pub const LAYER_MTIME: i64 = 1_000_000_000;

/// How whiteouts and opaque dirs are written in a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Kernel overlayfs: char 0/0 whiteouts, trusted.overlay.opaque=y.
    Overlay,
    /// aufs: `.wh.NAME` files and `.wh..wh..opq`.
    Aufs,
}

pub struct Layer {
    pub root: PathBuf,
    pub format: Format,
}

impl Layer {
    pub fn new(root: &Path) -> Layer {
        Layer::with_format(root, Format::Overlay)
    }

    pub fn with_format(root: &Path, format: Format) -> Layer {
        std::fs::create_dir_all(root).unwrap();
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
        Layer {
            root: root.to_path_buf(),
            format,
        }
    }

    fn at(&self, rel: &str) -> PathBuf {
        let p = self.root.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        p
    }

    pub fn dir(&self, rel: &str, mode: u32) -> &Self {
        let p = self.at(rel);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        self
    }

    pub fn file(&self, rel: &str, content: &[u8], mode: u32) -> &Self {
        let p = self.at(rel);
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        self
    }

    /// A file with a hole: `data` at offset `at`, size `at + data.len()`.
    pub fn sparse_file(&self, rel: &str, at: u64, data: &[u8]) -> &Self {
        use std::os::unix::fs::FileExt;
        let p = self.at(rel);
        let f = std::fs::File::create(&p).unwrap();
        f.write_all_at(data, at).unwrap();
        self
    }

    pub fn symlink(&self, rel: &str, target: &str) -> &Self {
        std::os::unix::fs::symlink(target, self.at(rel)).unwrap();
        self
    }

    pub fn hardlink(&self, existing: &str, rel: &str) -> &Self {
        std::fs::hard_link(self.root.join(existing), self.at(rel)).unwrap();
        self
    }

    pub fn owner(&self, rel: &str, uid: u32, gid: u32) -> &Self {
        std::os::unix::fs::lchown(self.root.join(rel), Some(uid), Some(gid)).unwrap();
        self
    }

    pub fn xattr(&self, rel: &str, name: &str, value: &[u8]) -> &Self {
        xattr::set(self.root.join(rel), name, value)
            .unwrap_or_else(|e| panic!("setxattr {name} on {rel}: {e}"));
        self
    }

    pub fn fifo(&self, rel: &str) -> &Self {
        mknod(&self.at(rel), libc::S_IFIFO | 0o644, 0);
        self
    }

    /// A whiteout in the layer's format; kernel: a char device 0/0.
    pub fn whiteout(&self, rel: &str) -> &Self {
        if self.format == Format::Aufs {
            return self.aufs_whiteout(rel);
        }
        mknod(&self.at(rel), libc::S_IFCHR, 0);
        self
    }

    /// An opaque dir in the layer's format; kernel (as root): trusted.overlay.opaque=y.
    pub fn opaque(&self, rel: &str, mode: u32) -> &Self {
        if self.format == Format::Aufs {
            return self.aufs_opaque(rel, mode);
        }
        self.dir(rel, mode);
        self.xattr(rel, "trusted.overlay.opaque", b"y")
    }

    /// aufs-format whiteout: an empty file `.wh.NAME` beside the hidden name.
    pub fn aufs_whiteout(&self, rel: &str) -> &Self {
        let p = Path::new(rel);
        let name = p.file_name().unwrap().to_string_lossy();
        let wh = p.with_file_name(format!(".wh.{name}"));
        self.file(wh.to_str().unwrap(), b"", 0o444)
    }

    /// aufs-format opaque dir: it holds `.wh..wh..opq`.
    pub fn aufs_opaque(&self, rel: &str, mode: u32) -> &Self {
        self.dir(rel, mode);
        self.file(&format!("{rel}/.wh..wh..opq"), b"", 0o444);
        self.dir(rel, mode)
    }

    /// Sets every entry's atime and mtime to LAYER_MTIME (deepest first, so parents keep it).
    pub fn freeze_times(&self) -> &Self {
        let mut paths: Vec<PathBuf> = walkdir::WalkDir::new(&self.root)
            .into_iter()
            .map(|e| e.unwrap().into_path())
            .collect();
        paths.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for p in paths {
            set_times_nofollow(&p, LAYER_MTIME);
        }
        self
    }
}

fn mknod(path: &Path, mode: libc::mode_t, dev: libc::dev_t) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: c is a valid NUL-terminated path.
    let r = unsafe { libc::mknod(c.as_ptr(), mode, dev) };
    assert_eq!(
        r,
        0,
        "mknod {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

pub fn set_times_nofollow(path: &Path, secs: i64) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    let ts = libc::timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let times = [ts, ts];
    // SAFETY: valid path and a two-element timespec array.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(r, 0, "utimensat {}", path.display());
}

/// Copies a directory tree exactly (types, modes, owners, times, xattrs including
/// trusted.*, hard links, device nodes): for making private copies of layers.
pub fn copy_tree(from: &Path, to: &Path) {
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg("--preserve=all")
        .arg(from)
        .arg(to)
        .status()
        .expect("run cp");
    assert!(st.success(), "cp -a {} {}", from.display(), to.display());
}

/// The layer set shared by the differential and interop tests: three lowers (top first)
/// with nested dirs, hard links, symlinks, xattrs, a sparse file, and kernel-format
/// whiteouts and opaque dirs hiding names in the layers below.
pub fn standard_lowers(base: &Path) -> Vec<PathBuf> {
    standard_lowers_in(base, Format::Overlay)
}

/// The same layer set with whiteouts and opaque dirs written in `format`.
pub fn standard_lowers_in(base: &Path, format: Format) -> Vec<PathBuf> {
    let l0 = Layer::with_format(&base.join("l0"), format);
    let l1 = Layer::with_format(&base.join("l1"), format);
    let l2 = Layer::with_format(&base.join("l2"), format);

    // Bottom layer: the "base image".
    l2.dir("etc", 0o755)
        .file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n", 0o644)
        .file("etc/hosts", b"127.0.0.1 localhost\n", 0o644)
        .file("etc/secret", b"hidden by a whiteout above\n", 0o600)
        .dir("usr/lib/deep/er", 0o755)
        .file("usr/lib/deep/er/leaf", b"leaf", 0o644)
        .file("usr/lib/libx.so", &[7u8; 5000], 0o755)
        .dir("var/cache", 0o755)
        .file("var/cache/old1", b"old cache 1", 0o644)
        .file("var/cache/old2", b"old cache 2", 0o644)
        .dir("data", 0o775)
        .file("data/a", b"a from l2", 0o644)
        .file("data/b", b"b from l2", 0o640)
        .dir("gone", 0o755)
        .file("gone/x", b"x", 0o644)
        .file("shadowdir", b"a file that a dir above hides", 0o644)
        .dir("dirhidden/inner", 0o755)
        .file("dirhidden/inner/f", b"f", 0o644)
        .owner("data/b", 1000, 1000)
        .xattr("data/a", "user.origin", b"l2");
    // Middle layer.
    l1.dir("etc", 0o755)
        .file("etc/hosts", b"127.0.0.1 localhost l1\n", 0o644)
        .dir("hl", 0o755)
        .file("hl/one", b"hard linked in a lower layer\n", 0o644)
        .hardlink("hl/one", "hl/two")
        .hardlink("hl/one", "hl/three")
        .dir("data", 0o755)
        .file("data/c", b"c from l1", 0o644)
        .symlink("data/link-a", "a")
        .symlink("data/dangling", "nowhere")
        .dir("usr/lib/deep", 0o755)
        .file("usr/lib/deep/mid", b"mid", 0o644)
        .sparse_file("sparse", 1 << 20, b"tail")
        .whiteout("gone")
        .dir("shadowdir", 0o755)
        .file("shadowdir/in", b"dir over file", 0o644)
        .file("dirhidden", b"a file hides the dir below", 0o644)
        .fifo("fifo")
        .xattr("data/c", "user.layer", b"l1");
    // Top lower layer.
    l0.dir("etc", 0o755)
        .file("etc/motd", b"welcome\n", 0o644)
        .whiteout("etc/secret")
        .opaque("var/cache", 0o755)
        .file("var/cache/new", b"only this is visible", 0o644)
        .dir("data", 0o755)
        .file("data/a", b"a from l0, overrides l2", 0o644)
        .dir("app/bin", 0o755)
        .file("app/bin/run", b"#!/bin/sh\necho hi\n", 0o755)
        .symlink("app/current", "bin")
        .dir("empty", 0o700);
    for l in [&l0, &l1, &l2] {
        l.freeze_times();
    }
    vec![l0.root.clone(), l1.root.clone(), l2.root.clone()]
}
