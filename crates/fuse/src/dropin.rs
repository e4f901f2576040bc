//! fuse-overlayfs' command line, so unionctl can be its drop-in (`unionctl-overlay`):
//! containers-storage runs `PROG -o LABEL MERGED`, and mount.fuse3 (for
//! `mount -t fuse.PROG SOURCE MERGED -o OPTS`) runs `PROG SOURCE MERGED -o OPTS`. Read as
//! libfuse reads a file system's argv: `-o OPTS` (or `-oOPTS`, repeated), `-f`, `-d`,
//! `--debug`, `-s`, `-h`/`--help`, `-V`/`--version`, `--`; the last of at most two
//! words is the mount point (a SOURCE before it is mount's, and means nothing here).
use crate::error::Result;
use crate::{MountRequest, whiteout::Format};
use std::ffi::OsString;
use std::path::PathBuf;

/// The program's name as libfuse takes it: argv[0]'s file name (it names the file system
/// in the mount table).
pub fn program_name(arg0: &std::ffi::OsStr) -> String {
    std::path::Path::new(arg0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The whole drop-in command: runs ARGS as PROG (argv[0]'s file name) and returns the
/// exit status, printing help, the version or one error line. Both `unionctl` called
/// through a `unionctl-overlay` symlink and the small `unionctl-overlay` binary (which
/// starts faster: it holds only the file system) run this.
pub fn main(prog: &str, args: &[OsString]) -> i32 {
    unionctl_union::logging::to_stderr();
    match run(prog, args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{prog}: {}", unionctl_union::errors::chain(&e));
            1
        }
    }
}

fn run(prog: &str, args: &[OsString]) -> Result<()> {
    match parse(prog, args)? {
        DropIn::Help => print!("{}", help(prog)),
        DropIn::Version => {
            println!("{prog}: version {}", env!("CARGO_PKG_VERSION"));
            println!("unionctl: a FUSE drop-in for fuse-overlayfs (kernel overlayfs format)");
        }
        DropIn::Mount {
            options,
            merged,
            foreground,
        } => {
            // fuse-overlayfs' switch to `.wh.` whiteout files (where a character device
            // cannot be made): the aufs format, read by it and by us.
            let format = match std::env::var_os(AUFS_WHITEOUTS) {
                Some(_) => Format::Aufs,
                None => Format::Overlay,
            };
            let mut req = MountRequest::new(Vec::new(), None, None, format, &options, merged)?;
            // Serve the layers fuse-overlayfs wrote as it reads them.
            req.spec.fuse_overlayfs = true;
            if foreground {
                // This process becomes the daemon: it must not keep its caller's files
                // open (a directory fd would keep another mount busy).
                unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
                crate::mount_foreground(&req)?;
            } else {
                crate::mount(&req)?;
            }
        }
    }
    Ok(())
}

/// The environment variable that makes fuse-overlayfs write `.wh.` whiteout files.
const AUFS_WHITEOUTS: &str = "FUSE_OVERLAYFS_DISABLE_OVL_WHITEOUT";

fn help(prog: &str) -> String {
    format!(
        "usage: {prog} [-f] [-d] [-o OPTS]... [SOURCE] MOUNTPOINT

unionctl's stand-in for fuse-overlayfs (containers-storage's mount_program, or
mount -t fuse.{prog}). Unmount with `umount MOUNTPOINT` or `unionctl umount`.

Options:
    -o lowerdir=DIR[:DIR...]   lower layers, top first (\\: escapes a colon)
    -o lowerdir+=DIR           one more lower layer, below the others
    -o upperdir=DIR            upper layer (without it the union is read-only)
    -o workdir=DIR             work dir, on the upper's file system
    -o volatile, fsync=0       no fsync of the upper (volatile also marks the work dir)
    -o auto_unmount            unmount when the daemon dies
    -o xattr_permissions=1|2   owners and modes kept in an xattr, not in the inodes
    -o timeout=SECS, static_nlink, noacl, noxattrs=1, xino=auto|on|off, userxattr,
       ro, allow_other, allow_root, nodev, nosuid, noexec, noatime, ...
    -f                         stay in the foreground
    -d, --debug                foreground, and log every request
    -s                         one serving thread
    -h, --help                 this help
    -V, --version              the version

Environment:
    FUSE_OVERLAYFS_DISABLE_OVL_WHITEOUT   (set) write whiteouts as `.wh.NAME` files and
                                          opaque dirs with `.wh..wh..opq` (aufs format)
"
    )
}

/// What a fuse-overlayfs command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropIn {
    Help,
    Version,
    Mount {
        /// The `-o` strings, after fuse-overlayfs' defaults.
        options: Vec<String>,
        merged: PathBuf,
        /// `-f`, `-d`, `--debug`, `-o debug`: serve in this process (libfuse's rule).
        foreground: bool,
    },
}

/// Parses ARGS (without argv[0]) as fuse-overlayfs does; PROG (argv[0]'s file name)
/// names the file system in the mount table, as libfuse names it.
pub fn parse(prog: &str, args: &[OsString]) -> Result<DropIn> {
    let root = nix::unistd::geteuid().is_root();
    // fuse-overlayfs' own defaults, before the caller's options so these win.
    let mut options = vec![format!(
        "fsname={prog},subtype={prog},default_permissions,noatime{}",
        if root { ",allow_other,suid" } else { "" }
    )];
    let mut words = Vec::new();
    let mut foreground = false;
    let mut it = args.iter();
    let mut only_words = false;
    while let Some(arg) = it.next() {
        let Some(a) = arg.to_str() else {
            if only_words || !arg.as_encoded_bytes().starts_with(b"-") {
                words.push(PathBuf::from(arg));
                continue;
            }
            bail!("{}: not valid UTF-8", arg.to_string_lossy());
        };
        if only_words || !a.starts_with('-') || a == "-" {
            words.push(PathBuf::from(arg));
            continue;
        }
        match a {
            "--" => only_words = true,
            "-h" | "--help" => return Ok(DropIn::Help),
            "-V" | "--version" => return Ok(DropIn::Version),
            "-f" => foreground = true,
            "-d" | "--debug" => {
                foreground = true;
                options.push("debug".into());
            }
            "-s" => options.push("threads=1".into()),
            "-o" => match it.next().and_then(|o| o.to_str()) {
                Some(o) => options.push(o.to_string()),
                None => bail!("-o: missing or invalid argument"),
            },
            o if o.starts_with("-o") => options.push(o[2..].to_string()),
            o => bail!("{o}: unknown option"),
        }
    }
    if options
        .iter()
        .flat_map(|o| crate::options::split_options(o))
        .any(|o| o == "debug")
    {
        foreground = true;
    }
    let merged = match words.len() {
        0 => bail!("no mountpoint specified"),
        1 | 2 => words.pop().unwrap(),
        _ => bail!(
            "{}: too many arguments (want [SOURCE] MOUNTPOINT)",
            words[2].display()
        ),
    };
    Ok(DropIn::Mount {
        options,
        merged,
        foreground,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    fn mount(a: &[&str]) -> (Vec<String>, PathBuf, bool) {
        match parse("unionctl-overlay", &args(a)).unwrap() {
            DropIn::Mount {
                options,
                merged,
                foreground,
            } => (options[1..].to_vec(), merged, foreground),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn containers_storage_and_mount_fuse3_forms() {
        let (o, m, f) = mount(&["-o", "lowerdir=/a:/b,upperdir=/u,workdir=/w", "/m"]);
        assert_eq!(o, ["lowerdir=/a:/b,upperdir=/u,workdir=/w"]);
        assert_eq!(m, PathBuf::from("/m"));
        assert!(!f);
        let (o, m, _) = mount(&["src", "/m", "-o", "rw,lowerdir=/a", "-ofsync=0"]);
        assert_eq!(o, ["rw,lowerdir=/a", "fsync=0"]);
        assert_eq!(m, PathBuf::from("/m"));
        let (_, _, f) = mount(&["-f", "-o", "lowerdir=/a", "/m"]);
        assert!(f);
        let (o, _, f) = mount(&["-d", "-o", "lowerdir=/a", "/m"]);
        assert!(f && o.contains(&"debug".to_string()));
        let (_, _, f) = mount(&["-o", "lowerdir=/a,debug", "/m"]);
        assert!(f);
        let (_, m, _) = mount(&["-o", "lowerdir=/a", "--", "-m"]);
        assert_eq!(m, PathBuf::from("-m"));
    }

    #[test]
    fn help_version_and_errors() {
        assert_eq!(parse("p", &args(&["--version"])).unwrap(), DropIn::Version);
        assert_eq!(parse("p", &args(&["-h", "/m"])).unwrap(), DropIn::Help);
        for bad in [
            &["-o"][..],
            &["-x", "/m"],
            &["-o", "lowerdir=/a"],
            &["a", "b", "c"],
        ] {
            assert!(parse("p", &args(bad)).is_err(), "{bad:?} accepted");
        }
    }
}
