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
    Logs(CtrArgs),
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
    /// Create a container without starting it (`start` runs it)
    #[command(
        after_help = "Examples:\n  unionctl create --name web bb:1 httpd -f\n  unionctl start web"
    )]
    Create(RunArgs),
    /// Send a signal to containers' main process
    #[command(after_help = "Examples:\n  unionctl kill web\n  unionctl kill -s HUP web")]
    Kill(KillArgs),
    /// Wait for containers to stop and print their exit codes
    #[command(after_help = "Examples:\n  unionctl wait web")]
    Wait(CtrNames),
    /// Freeze every process of running containers
    #[command(after_help = "Examples:\n  unionctl pause web")]
    Pause(CtrNames),
    /// Resume paused containers
    #[command(after_help = "Examples:\n  unionctl unpause web")]
    Unpause(CtrNames),
    /// Show the processes of a running container
    #[command(after_help = "Examples:\n  unionctl top web")]
    Top(TopArgs),
    /// Show containers' CPU, memory and process counts
    #[command(after_help = "Examples:\n  unionctl stats --no-stream\n  unionctl stats web")]
    Stats(StatsArgs),
    /// Copy files between a container and the host
    #[command(
        after_help = "Examples:\n  unionctl cp web:/etc/hostname ./hostname\n  unionctl cp ./site web:/srv/\n  unionctl cp web:/var/log/. ./logs"
    )]
    Cp(CpArgs),
    /// Give a container a new name
    #[command(after_help = "Examples:\n  unionctl rename web web-old")]
    Rename(RenameArgs),
    /// Manage containers
    #[command(subcommand, after_help = "Examples:\n  unionctl container prune")]
    Container(ContainerCmd),
    /// Manage images
    #[command(subcommand, after_help = "Examples:\n  unionctl image prune -a")]
    Image(ImageCmd),
    /// Manage named volumes
    #[command(
        subcommand,
        after_help = "Examples:\n  unionctl volume create data\n  unionctl run -v data:/data bb:1 ls /data"
    )]
    Volume(VolumeCmd),
    /// Disk usage and clean-up of the whole store
    #[command(
        subcommand,
        after_help = "Examples:\n  unionctl system df\n  unionctl system prune --volumes"
    )]
    System(SystemCmd),
    /// Show the store, the host and what they hold
    #[command(after_help = "Examples:\n  unionctl info")]
    Info,
    /// Show unionctl's version and platform
    #[command(after_help = "Examples:\n  unionctl version")]
    Version,
}

#[derive(Args, Debug, Clone)]
pub struct KillArgs {
    /// Signal to send, by name (KILL, SIGHUP) or number
    #[arg(short = 's', long = "signal", default_value = "KILL", value_parser = parse_signal)]
    pub signal: i32,
    /// Containers (name or id)
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct CtrNames {
    /// Containers (name or id)
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct TopArgs {
    /// Container (name or id)
    pub container: String,
}

#[derive(Args, Debug, Clone)]
pub struct StatsArgs {
    /// Print one sample and exit
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// Show stopped containers too
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Containers (default: every running one)
    pub containers: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct CpArgs {
    /// CONTAINER:PATH or a host path (`SRC/.` copies a dir's content)
    pub source: String,
    /// CONTAINER:PATH or a host path
    pub destination: String,
}

#[derive(Args, Debug, Clone)]
pub struct RenameArgs {
    /// Container (name or id)
    pub container: String,
    /// New name
    pub new_name: String,
}

#[derive(Subcommand, Debug, Clone)]
pub enum ContainerCmd {
    /// Remove every container that is not running
    #[command(after_help = "Examples:\n  unionctl container prune -f")]
    Prune(PruneArgs),
}

#[derive(Subcommand, Debug, Clone)]
pub enum ImageCmd {
    /// Remove images without a name that no container uses (-a: every unused image)
    #[command(after_help = "Examples:\n  unionctl image prune\n  unionctl image prune -a -f")]
    Prune(ImagePruneArgs),
}

#[derive(Args, Debug, Clone)]
pub struct PruneArgs {
    /// Do not ask (unionctl never asks; accepted for docker scripts)
    #[arg(short = 'f', long)]
    pub force: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ImagePruneArgs {
    /// Every image no container uses, not only those without a name
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Do not ask (unionctl never asks; accepted for docker scripts)
    #[arg(short = 'f', long)]
    pub force: bool,
}

#[derive(Subcommand, Debug, Clone)]
pub enum VolumeCmd {
    /// Create a named volume (a random name when none is given)
    #[command(
        after_help = "Examples:\n  unionctl volume create data\n  unionctl volume create --label team=web cache"
    )]
    Create(VolumeCreateArgs),
    /// List named volumes
    #[command(after_help = "Examples:\n  unionctl volume ls\n  unionctl volume ls -q")]
    Ls(VolumeLsArgs),
    /// Show volumes as JSON
    #[command(after_help = "Examples:\n  unionctl volume inspect data")]
    Inspect(VolumeNames),
    /// Remove volumes that no container uses
    #[command(after_help = "Examples:\n  unionctl volume rm data")]
    Rm(VolumeRmArgs),
    /// Remove every volume no container uses
    #[command(after_help = "Examples:\n  unionctl volume prune -f")]
    Prune(PruneArgs),
}

#[derive(Args, Debug, Clone)]
pub struct VolumeCreateArgs {
    /// Label KEY=VALUE (repeatable)
    #[arg(long = "label", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// Volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]+)
    pub name: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct VolumeLsArgs {
    /// Only the names
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Args, Debug, Clone)]
pub struct VolumeNames {
    /// Volume names
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct VolumeRmArgs {
    /// Accepted for docker scripts; a volume in use is still refused
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Volume names
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Subcommand, Debug, Clone)]
pub enum SystemCmd {
    /// Show the disk space used by images, containers and volumes
    #[command(after_help = "Examples:\n  unionctl system df")]
    Df,
    /// Remove stopped containers and images without a name (and more with -a, --volumes)
    #[command(
        after_help = "Examples:\n  unionctl system prune -f\n  unionctl system prune -a --volumes -f"
    )]
    Prune(SystemPruneArgs),
}

#[derive(Args, Debug, Clone)]
pub struct SystemPruneArgs {
    /// Every image no container uses, not only those without a name
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Also volumes no container uses
    #[arg(long)]
    pub volumes: bool,
    /// Do not ask (unionctl never asks; accepted for docker scripts)
    #[arg(short = 'f', long)]
    pub force: bool,
}

/// The library's parsers as clap value parsers: the message names the value; clap adds
/// the flag.
fn lib_parse<T: std::str::FromStr<Err = unionctl::runner::Error>>(s: &str) -> Result<T, String> {
    s.parse::<T>().map_err(|e| e.chain())
}

fn parse_signal(s: &str) -> Result<i32, String> {
    unionctl::runner::flags::parse_signal(s).map_err(|e| e.chain())
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    unionctl::runner::flags::parse_label(s).map_err(|e| e.chain())
}

fn parse_size(s: &str) -> Result<u64, String> {
    unionctl::runner::spec::parse_bytes(s).map_err(|e| e.chain())
}

fn parse_ip(s: &str) -> Result<std::net::IpAddr, String> {
    s.parse().map_err(|_| format!("{s:?} is not an IP address"))
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
    /// Program to run instead of the image's entrypoint (its cmd is dropped; "" clears)
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// File of KEY=VALUE lines to add to the environment (repeatable)
    #[arg(long = "env-file")]
    pub env_files: Vec<PathBuf>,
    /// Restart policy: no, on-failure[:MAX], always, unless-stopped
    #[arg(long, default_value = "no", value_parser = lib_parse::<unionctl::runner::flags::RestartPolicy>)]
    pub restart: unionctl::runner::flags::RestartPolicy,
    /// Mount the container's root file system read-only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Mount a tmpfs: PATH[:OPTIONS] (size=, mode=, ro, exec, ...)
    #[arg(long, value_parser = lib_parse::<unionctl::runner::flags::Tmpfs>)]
    pub tmpfs: Vec<unionctl::runner::flags::Tmpfs>,
    /// type=bind|volume|tmpfs,source=SRC,target=DST[,readonly]
    #[arg(long = "mount", value_parser = lib_parse::<unionctl::runner::flags::MountSpec>)]
    pub mounts: Vec<unionctl::runner::flags::MountSpec>,
    /// Resource limit NAME=SOFT[:HARD] (nofile, nproc, core, ...; -1 for none)
    #[arg(long = "ulimit", value_parser = lib_parse::<unionctl::runner::flags::Ulimit>)]
    pub ulimits: Vec<unionctl::runner::flags::Ulimit>,
    /// Signal `stop` sends first (default SIGTERM)
    #[arg(long = "stop-signal", value_parser = parse_signal)]
    pub stop_signal: Option<i32>,
    /// Seconds `stop` waits before SIGKILL (default 10)
    #[arg(long = "stop-timeout")]
    pub stop_timeout: Option<u64>,
    /// Label KEY=VALUE on the container (repeatable)
    #[arg(long = "label", short = 'l', value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// Extra /etc/hosts line NAME:IP (repeatable)
    #[arg(long = "add-host", value_parser = lib_parse::<unionctl::runner::flags::HostEntry>)]
    pub add_hosts: Vec<unionctl::runner::flags::HostEntry>,
    /// Name server for /etc/resolv.conf (repeatable; default the host's)
    #[arg(long, value_parser = parse_ip)]
    pub dns: Vec<std::net::IpAddr>,
    /// Size of /dev/shm (e.g. 128m; default 64m)
    #[arg(long = "shm-size", value_parser = parse_size)]
    pub shm_size: Option<u64>,
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
    /// Seconds to wait after the stop signal before SIGKILL (default: the container's
    /// --stop-timeout, else 10)
    #[arg(short = 't', long = "time")]
    pub time: Option<u64>,
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
    pub container: String,
    pub reference: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct SaveArgs {
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    #[arg(long, default_value = "docker-archive", value_parser = ["docker-archive", "oci-archive"])]
    pub format: String,
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    #[arg(short = 'i', long)]
    pub input: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct ExportArgs {
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    pub container: String,
}

#[derive(Args, Debug, Clone)]
pub struct ImportArgs {
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
    /// No summary line on a terminal (the image id is printed still)
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
            args: a.args,
            entrypoint: a.entrypoint,
            env_files: a.env_files,
            restart: a.restart,
            read_only: a.read_only,
            tmpfs: a.tmpfs,
            mounts: a.mounts,
            ulimits: a.ulimits,
            stop_signal: a.stop_signal,
            stop_timeout: a.stop_timeout,
            labels: a.labels,
            add_hosts: a.add_hosts,
            dns: a.dns,
            shm_size: a.shm_size,
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
