//! The command line: clap definitions, and their conversion to the library's options.
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "unionctl",
    version,
    about = "Union file system, container runner and image store"
)]
pub struct Cli {
    /// Store root for containers and images (default /var/lib/unionctl as root,
    /// $XDG_DATA_HOME/unionctl otherwise)
    #[arg(long, global = true, env = "UNIONCTL_ROOT")]
    pub root: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Mount a union of read-only lower layers and one writable upper layer
    Mount(MountArgs),
    /// Unmount a union mount (also one whose daemon died)
    Umount(UmountArgs),
    /// Show which layers make up a mounted union
    Layers(LayersArgs),
    /// Show which layer supplies a path of a mounted union
    Which(WhichArgs),
    /// Run a command in a new container
    Run(RunArgs),
    /// List containers
    Ps(ListArgs),
    /// Start stopped containers
    Start(CtrListArgs),
    /// Stop running containers
    Stop(StopArgs),
    /// Restart containers
    Restart(StopArgs),
    /// Attach to a running container's console
    Attach(AttachArgs),
    /// Run a command in a running container
    Exec(ExecArgs),
    /// Show a container's output
    #[command(after_help = "Examples:
  unionctl logs web                      # everything, stdout and stderr apart
  unionctl logs -f --tail 10 web         # the last 10 lines, then follow until it exits
  unionctl logs --since 10m -t web       # the last ten minutes, with times")]
    Logs(LogsArgs),
    /// Remove containers
    Rm(RmArgs),
    /// List images
    Images(ListArgs),
    /// Give an image another name
    Tag(TagArgs),
    /// Remove images
    Rmi(RmiArgs),
    /// Show the layers of an image
    History(ImgArgs),
    /// Show an image or a container as JSON
    Inspect(InspectArgs),
    /// Turn a container's changes into a new image
    Commit(CommitArgs),
    /// Show a container's changes (A/C/D)
    Diff(CtrArgs),
    /// Write images to an archive
    Save(SaveArgs),
    /// Read images from an archive
    Load(LoadArgs),
    /// Write a container's flattened file system as a tar
    Export(ExportArgs),
    /// Make a one-layer image from a rootfs tar
    Import(ImportArgs),
    /// Pull an image from a registry (Docker Registry HTTP API v2)
    Pull(PullArgs),
    /// Push an image to a registry
    Push(PushArgs),
    /// List a registry's repositories matching a term, or a repository's tags
    Search(SearchArgs),
    /// Check and save credentials for a registry
    Login(LoginArgs),
    /// Forget saved credentials
    Logout(LogoutArgs),
}

#[derive(Args, Debug, Clone)]
pub struct MountArgs {
    /// Lower layers, leftmost on top, separated by ':'
    #[arg(long, required = true)]
    pub lower: String,
    /// Writable upper layer; without it the union is read-only
    #[arg(long)]
    pub upper: Option<PathBuf>,
    /// Work dir on the upper's file system (default: sibling .NAME.work of the upper)
    #[arg(long)]
    pub work: Option<PathBuf>,
    /// On-disk whiteout format written to the upper layer
    #[arg(long, default_value = "overlay", value_parser = ["overlay", "aufs"])]
    pub format: String,
    /// Mount options, comma separated (ro, allow_other, ...)
    #[arg(short = 'o', action = clap::ArgAction::Append)]
    pub options: Vec<String>,
    /// Stay in the foreground
    #[arg(short = 'f', long)]
    pub foreground: bool,
    /// Mount point
    pub merged: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct UmountArgs {
    pub merged: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct LayersArgs {
    pub merged: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct WhichArgs {
    pub path: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    #[arg(long)]
    pub rm: bool,
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[arg(short = 'i', long)]
    pub interactive: bool,
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Run a tiny init as pid 1 that reaps zombies and forwards signals
    #[arg(long)]
    pub init: bool,
    #[arg(long)]
    pub name: Option<String>,
    /// HOST:CTR[:ro]
    #[arg(short = 'v', long = "volume")]
    pub volumes: Vec<String>,
    /// K=V
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// UID[:GID]
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    #[arg(short = 'h', long = "hostname")]
    pub hostname: Option<String>,
    #[arg(long, default_value = "none")]
    pub network: String,
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    #[arg(long)]
    pub memory: Option<String>,
    #[arg(long)]
    pub cpus: Option<String>,
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    /// Use DIR as the only lower layer instead of an image
    #[arg(long)]
    pub rootfs: Option<PathBuf>,
    /// Log file limits as docker's: max-size=SIZE (one file, default 10m), max-file=N
    /// (files kept, default 2)
    #[arg(long = "log-opt", value_name = "KEY=VALUE")]
    pub log_opts: Vec<String>,
    /// IMAGE (unless --rootfs) then CMD ARG...
    #[arg(trailing_var_arg = true)]
    pub args: Vec<String>,
}

/// The options of the listings, `ps` and `images`.
#[derive(Args, Debug, Clone)]
pub struct ListArgs {
    #[arg(short = 'a', long)]
    pub all: bool,
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct CtrArgs {
    pub container: String,
}

#[derive(Args, Debug, Clone)]
pub struct LogsArgs {
    /// Keep printing new output until the container exits
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the last N lines ("all": everything)
    #[arg(short = 'n', long, value_name = "N|all", default_value = "all")]
    pub tail: String,
    /// Only output since a time: RFC 3339 (2026-01-02T15:04:05Z), Unix seconds, or a
    /// duration back from now (10m, 2h, 1h30m)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only output before a time (as --since)
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Start each line with the time it was written (RFC 3339, nanoseconds)
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Container name or id
    pub container: String,
}

#[derive(Args, Debug, Clone)]
pub struct AttachArgs {
    /// Keys that detach without stopping the container: comma-separated, each `ctrl-X` or
    /// one character; "" for none
    #[arg(long, default_value = "ctrl-p,ctrl-q")]
    pub detach_keys: String,
    pub container: String,
}

#[derive(Args, Debug, Clone)]
pub struct CtrListArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct StopArgs {
    /// Seconds to wait after SIGTERM before SIGKILL
    #[arg(short = 't', long = "time", default_value_t = 10)]
    pub time: u64,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct ExecArgs {
    #[arg(short = 'i', long)]
    pub interactive: bool,
    #[arg(short = 't', long)]
    pub tty: bool,
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    pub container: String,
    #[arg(trailing_var_arg = true, required = true)]
    pub cmd: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct RmArgs {
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(short = 'v', long)]
    pub volumes: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct TagArgs {
    pub source: String,
    pub target: String,
}

#[derive(Args, Debug, Clone)]
pub struct RmiArgs {
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct ImgArgs {
    pub image: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct InspectArgs {
    #[arg(required = true)]
    pub targets: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct CommitArgs {
    #[arg(short = 'a', long)]
    pub author: Option<String>,
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Dockerfile-like change: CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL
    #[arg(short = 'c', long = "change")]
    pub changes: Vec<String>,
    /// Pause the container during the commit
    #[arg(short = 'p', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub pause: bool,
    /// No progress (bars on a terminal, a line per layer otherwise)
    #[arg(short = 'q', long)]
    pub quiet: bool,
    pub container: String,
    pub reference: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct SaveArgs {
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    #[arg(long, default_value = "docker-archive", value_parser = ["docker-archive", "oci-archive"])]
    pub format: String,
    /// No progress (bars on a terminal, a line per layer otherwise)
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    #[arg(short = 'i', long)]
    pub input: Option<PathBuf>,
    /// No progress (bars on a terminal, a line per layer otherwise)
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ExportArgs {
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// No progress (bars on a terminal, a line per layer otherwise)
    #[arg(short = 'q', long)]
    pub quiet: bool,
    pub container: String,
}

#[derive(Args, Debug, Clone)]
pub struct ImportArgs {
    /// No progress (bars on a terminal, a line per layer otherwise)
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Rootfs tar, or '-' for stdin
    pub file: String,
    pub reference: Option<String>,
}

/// How to reach a registry: TLS and where saved credentials live.
#[derive(Args, Debug, Clone)]
pub struct RegistryAccess {
    /// Check TLS certificates; false also allows plain http (always for localhost)
    #[arg(long = "tls-verify", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub tls_verify: bool,
    /// Credentials file (default $REGISTRY_AUTH_FILE, else ROOT/auth.json)
    #[arg(long)]
    pub authfile: Option<PathBuf>,
    /// CA certificates (*.crt) and client certificate (*.cert + *.key) for the registry
    /// (default /etc/containers/certs.d/HOST, /etc/docker/certs.d/HOST)
    #[arg(long = "cert-dir")]
    pub cert_dir: Option<PathBuf>,
}

/// How to reach a registry and who to be there.
#[derive(Args, Debug, Clone)]
pub struct RegistryOpts {
    #[command(flatten)]
    pub access: RegistryAccess,
    /// USER:PASS (else the credentials `login` saved)
    #[arg(long)]
    pub creds: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct PullArgs {
    #[command(flatten)]
    pub registry: RegistryOpts,
    /// No progress and no summary line (the image id is printed still)
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// OS/ARCH[/VARIANT] to take from a manifest list (default linux/<this machine>)
    #[arg(long)]
    pub platform: Option<String>,
    /// HOST[:PORT]/REPO[:TAG|@sha256:DIGEST]
    pub reference: String,
}

#[derive(Args, Debug, Clone)]
pub struct PushArgs {
    #[command(flatten)]
    pub registry: RegistryOpts,
    /// Layers as stored (none: the pushed manifest is the stored one) or compressed
    #[arg(long = "compression-format", default_value = "none", value_parser = ["none", "gzip", "zstd"])]
    pub compression_format: String,
    /// No progress (bars on a terminal, a line per layer otherwise)
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Local image (name or id)
    pub image: String,
    /// HOST[:PORT]/REPO[:TAG] (default: the image name)
    pub destination: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct SearchArgs {
    #[command(flatten)]
    pub registry: RegistryOpts,
    #[arg(long)]
    pub json: bool,
    /// List the tags of REGISTRY/REPO
    #[arg(long = "list-tags")]
    pub list_tags: bool,
    /// REGISTRY[/TERM], or REGISTRY/REPO with --list-tags
    pub term: String,
}

#[derive(Args, Debug, Clone)]
pub struct LoginArgs {
    #[command(flatten)]
    pub access: RegistryAccess,
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    #[arg(short = 'p', long)]
    pub password: Option<String>,
    /// Read the password from stdin
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    /// HOST[:PORT]
    pub registry: String,
}

#[derive(Args, Debug, Clone)]
pub struct LogoutArgs {
    #[arg(long)]
    pub authfile: Option<PathBuf>,
    /// Forget every registry's credentials
    #[arg(short = 'a', long)]
    pub all: bool,
    pub registry: Option<String>,
}

impl From<RunArgs> for unionctl::runner::RunOptions {
    fn from(a: RunArgs) -> Self {
        unionctl::runner::RunOptions {
            rm: a.rm,
            detach: a.detach,
            interactive: a.interactive,
            tty: a.tty,
            init: a.init,
            name: a.name,
            volumes: a.volumes,
            env: a.env,
            workdir: a.workdir,
            user: a.user,
            hostname: a.hostname,
            network: a.network,
            publish: a.publish,
            memory: a.memory,
            cpus: a.cpus,
            pids_limit: a.pids_limit,
            rootfs: a.rootfs,
            log_opts: a.log_opts,
            args: a.args,
        }
    }
}

impl From<ExecArgs> for unionctl::runner::ExecOptions {
    fn from(a: ExecArgs) -> Self {
        unionctl::runner::ExecOptions {
            interactive: a.interactive,
            tty: a.tty,
            env: a.env,
            workdir: a.workdir,
            user: a.user,
            container: a.container,
            cmd: a.cmd,
        }
    }
}

impl RegistryOpts {
    pub fn access(&self) -> unionctl::registry::Access {
        self.access.with_creds(self.creds.clone())
    }
}

impl RegistryAccess {
    pub fn with_creds(&self, creds: Option<String>) -> unionctl::registry::Access {
        unionctl::registry::Access {
            tls_verify: self.tls_verify,
            authfile: self.authfile.clone(),
            cert_dir: self.cert_dir.clone(),
            creds,
        }
    }
}
