//! `unionctl-overlay`: the fuse-overlayfs drop-in alone (see `unionctl_fuse::dropin`).
//! `unionctl` called through a symlink of this name does the same; this binary holds
//! only the file system, so it starts in a fraction of the time (podman and buildah
//! start it for every mount).
fn main() {
    let mut argv = std::env::args_os();
    let arg0 = argv.next().unwrap_or_default();
    let prog = match unionctl_fuse::dropin::program_name(&arg0) {
        p if p.is_empty() => "unionctl-overlay".into(),
        p => p,
    };
    let args: Vec<_> = argv.collect();
    std::process::exit(unionctl_fuse::dropin::main(&prog, &args));
}
