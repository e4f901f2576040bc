//! `mount`, `umount`, `layers`, `which`.
use super::args::{LayersArgs, MountArgs, UmountArgs, WhichArgs};
use unionctl::fuse::{self, MountRequest};

pub fn mount(a: MountArgs) -> anyhow::Result<i32> {
    let format = a.format.parse().map_err(anyhow::Error::msg)?;
    let lowers = match &a.lower {
        Some(l) => fuse::options::lower_list(l)?,
        None => Vec::new(),
    };
    let req = MountRequest::new(lowers, a.upper, a.work, format, &a.options, a.merged)?;
    serve(&req, a.foreground)
}

/// Mounts REQ: in a background daemon (returning once the mount is ready) or, with
/// FOREGROUND, serving in this process until unmounted.
fn serve(req: &MountRequest, foreground: bool) -> anyhow::Result<i32> {
    if foreground {
        // The daemon may live long: it must not keep files of whoever started it open
        // (a directory fd inherited from a test would keep another mount busy).
        unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
        fuse::mount_foreground(req)?;
    } else {
        fuse::mount(req)?;
    }
    Ok(0)
}

/// `unionctl-overlay ARGS`: fuse-overlayfs' command line (see `fuse::dropin`).
pub fn overlay(prog: &str, args: &[std::ffi::OsString]) -> anyhow::Result<i32> {
    match fuse::dropin::parse(prog, args)? {
        fuse::dropin::DropIn::Help => {
            print!("{}", overlay_help(prog));
            Ok(0)
        }
        fuse::dropin::DropIn::Version => {
            println!("{prog}: version {}", env!("CARGO_PKG_VERSION"));
            println!("unionctl: a FUSE drop-in for fuse-overlayfs (kernel overlayfs format)");
            Ok(0)
        }
        fuse::dropin::DropIn::Mount {
            options,
            merged,
            foreground,
        } => {
            let req = MountRequest::new(
                Vec::new(),
                None,
                None,
                unionctl::whiteout::Format::Overlay,
                &options,
                merged,
            )?;
            serve(&req, foreground)
        }
    }
}

fn overlay_help(prog: &str) -> String {
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
    -o timeout=SECS, static_nlink, noacl, noxattrs=1, xino=auto|on|off, userxattr,
       ro, allow_other, allow_root, nodev, nosuid, noexec, noatime, ...
    -f                         stay in the foreground
    -d, --debug                foreground, and log every request
    -s                         one serving thread
    -h, --help                 this help
    -V, --version              the version
"
    )
}

pub fn umount(a: UmountArgs) -> anyhow::Result<i32> {
    fuse::umount_and_wait(&a.merged)?;
    Ok(0)
}

pub fn layers(a: LayersArgs) -> anyhow::Result<i32> {
    let layers = fuse::layers(&a.merged)?;
    let format = fuse::whiteout_format(&a.merged)?;
    if a.json {
        let layers: Vec<serde_json::Value> = layers
            .iter()
            .map(|l| serde_json::json!({"Role": l.role, "Path": l.path}))
            .collect();
        let v = serde_json::json!({"Format": format, "Layers": layers});
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for l in layers {
            println!("{}\t{}", l.role, l.path);
        }
        println!("format\t{format}");
    }
    Ok(0)
}

pub fn which(a: WhichArgs) -> anyhow::Result<i32> {
    print!("{}", fuse::which(&a.path)?);
    Ok(0)
}
