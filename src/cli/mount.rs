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
