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
    #[command(
        after_help = "Examples:\n  unionctl mount --lower /l/top:/l/base --upper /u/up /mnt/merged\n  unionctl mount --lower /l/base -o ro /mnt/view"
    )]
    Mount(MountArgs),
    /// Unmount a union mount (also one whose daemon died)
    #[command(after_help = "Examples:\n  unionctl umount /mnt/merged")]
    Umount(UmountArgs),
    /// Show which layers make up a mounted union
    #[command(
        after_help = "Examples:\n  unionctl layers /mnt/merged\n  unionctl layers --json /mnt/merged"
    )]
    Layers(LayersArgs),
    /// Show which layer supplies a path of a mounted union
    #[command(after_help = "Examples:\n  unionctl which /mnt/merged/etc/hosts")]
    Which(WhichArgs),
    /// Run a command in a new container
    #[command(
        after_help = "Examples:\n  unionctl run --rm busybox:1 echo hello\n  unionctl run -d --name web -v /srv:/srv:ro busybox:1 httpd -f\n  unionctl run --rm -it --rootfs /var/tmp/rootfs sh\n  unionctl run --rm --device /dev/fuse busybox:1 ls -l /dev/fuse"
    )]
    Run(Box<RunArgs>),
    /// List containers
    #[command(
        after_help = "Examples:\n  unionctl ps -a\n  unionctl ps --filter status=exited -q\n  unionctl ps --format '{{.ID}}\t{{.Names}}\t{{.Status}}'"
    )]
    Ps(PsArgs),
    /// Start stopped containers
    #[command(after_help = "Examples:\n  unionctl start web\n  unionctl start -a job")]
    Start(StartArgs),
    /// Stop running containers
    #[command(after_help = "Examples:\n  unionctl stop -t 2 web")]
    Stop(StopArgs),
    /// Restart containers
    #[command(after_help = "Examples:\n  unionctl restart web")]
    Restart(StopArgs),
    /// Attach to a running container's console
    #[command(after_help = "Examples:\n  unionctl attach web")]
    Attach(AttachArgs),
    /// Run a command in a running container
    #[command(
        after_help = "Examples:\n  unionctl exec web cat /etc/hostname\n  unionctl exec -it -u 1000 web sh"
    )]
    Exec(ExecArgs),
    /// Show a container's output
    #[command(after_help = "Examples:
  unionctl logs web                      # everything, stdout and stderr apart
  unionctl logs -f --tail 10 web         # the last 10 lines, then follow until it exits
  unionctl logs --since 10m -t web       # the last ten minutes, with times")]
    Logs(LogsArgs),
    /// Remove containers
    #[command(after_help = "Examples:\n  unionctl rm web\n  unionctl rm -f -v web db")]
    Rm(RmArgs),
    /// List images
    #[command(
        after_help = "Examples:\n  unionctl images\n  unionctl images --filter dangling=true -q\n  unionctl images --format '{{.Repository}}:{{.Tag}} {{.Size}}'"
    )]
    Images(ImagesArgs),
    /// Give an image another name
    #[command(
        after_help = "Examples:\n  unionctl tag busybox:1 registry.example.com:5000/team/busybox:1"
    )]
    Tag(TagArgs),
    /// Remove images
    #[command(after_help = "Examples:\n  unionctl rmi busybox:1\n  unionctl rmi -f 045ba799ccf4")]
    Rmi(RmiArgs),
    /// Show the layers of an image
    #[command(
        after_help = "Examples:\n  unionctl history busybox:1\n  unionctl history --format '{{.CreatedBy}}' busybox:1"
    )]
    History(HistoryArgs),
    /// Show an image or a container as JSON
    #[command(
        after_help = "Examples:\n  unionctl inspect busybox:1\n  unionctl inspect --format '{{.State.Status}}' web\n  unionctl inspect -f '{{json .Config.Env}}' web"
    )]
    Inspect(InspectArgs),
    /// Turn a container's changes into a new image
    #[command(
        after_help = "Examples:\n  unionctl commit -m 'add curl' -c 'CMD [\"sh\"]' web web:2"
    )]
    Commit(CommitArgs),
    /// Show a container's changes (A/C/D)
    #[command(after_help = "Examples:\n  unionctl diff web")]
    Diff(CtrArgs),
    /// Write images to an archive
    #[command(
        after_help = "Examples:\n  unionctl save -o bb.tar busybox:1\n  unionctl save --format oci-archive busybox:1 | gzip > bb.oci.tar.gz"
    )]
    Save(SaveArgs),
    /// Read images from an archive
    #[command(
        after_help = "Examples:\n  unionctl load -i bb.tar\n  gunzip -c bb.oci.tar.gz | unionctl load"
    )]
    Load(LoadArgs),
    /// Write a container's flattened file system as a tar
    #[command(after_help = "Examples:\n  unionctl export -o web.tar web")]
    Export(ExportArgs),
    /// Make a one-layer image from a rootfs tar
    #[command(
        after_help = "Examples:\n  unionctl import rootfs.tar.gz mybase:1\n  tar -C rootfs -c . | unionctl import - mybase:2"
    )]
    Import(ImportArgs),
    /// Pull an image from a registry (Docker Registry HTTP API v2)
    #[command(
        after_help = "Examples:\n  unionctl pull docker.io/library/busybox:1.36\n  unionctl pull --tls-verify=false 127.0.0.1:5000/team/app:v1"
    )]
    Pull(PullArgs),
    /// Push an image to a registry
    #[command(
        after_help = "Examples:\n  unionctl push myapp:1 registry.example.com/team/myapp:1\n  unionctl push --compression-format zstd myapp:1 localhost:5000/myapp:1"
    )]
    Push(PushArgs),
    /// List a registry's repositories matching a term, or a repository's tags
    #[command(
        after_help = "Examples:\n  unionctl search localhost:5000/app\n  unionctl search --list-tags localhost:5000/team/app"
    )]
    Search(SearchArgs),
    /// Check and save credentials for a registry
    #[command(
        after_help = "Examples:\n  unionctl login -u alice registry.example.com\n  echo \"$PASS\" | unionctl login -u alice --password-stdin localhost:5000"
    )]
    Login(LoginArgs),
    /// Forget saved credentials
    #[command(
        after_help = "Examples:\n  unionctl logout registry.example.com\n  unionctl logout --all"
    )]
    Logout(LogoutArgs),
    /// Print a shell completion script
    #[command(
        after_help = "Examples:\n  unionctl completion bash > /etc/bash_completion.d/unionctl\n  unionctl completion zsh > /usr/local/share/zsh/site-functions/_unionctl\n  unionctl completion fish > ~/.config/fish/completions/unionctl.fish"
    )]
    Completion(CompletionArgs),
    /// Write the man pages (unionctl.1, unionctl-run.1, ...) into a directory
    #[command(
        after_help = "Examples:\n  unionctl man /usr/local/share/man/man1 && mandb -q\n  unionctl man /tmp/man && man -l /tmp/man/unionctl-run.1"
    )]
    Man(ManArgs),
    /// Create a container without starting it (`start` runs it)
    #[command(
        after_help = "Examples:\n  unionctl create --name web bb:1 httpd -f\n  unionctl start web"
    )]
    Create(Box<RunArgs>),
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
    /// List containers (as `ps`)
    #[command(
        visible_alias = "list",
        visible_alias = "ps",
        after_help = "Examples:\n  unionctl container ls -a"
    )]
    Ls(PsArgs),
    /// Remove containers (as `rm`)
    #[command(after_help = "Examples:\n  unionctl container rm -f web")]
    Rm(RmArgs),
    /// Show containers as JSON (as `inspect`, containers only)
    #[command(after_help = "Examples:\n  unionctl container inspect -f '{{.State.Status}}' web")]
    Inspect(InspectArgs),
}

#[derive(Subcommand, Debug, Clone)]
pub enum ImageCmd {
    /// Remove images without a name that no container uses (-a: every unused image)
    #[command(after_help = "Examples:\n  unionctl image prune\n  unionctl image prune -a -f")]
    Prune(ImagePruneArgs),
    /// List images (as `images`)
    #[command(visible_alias = "list", after_help = "Examples:\n  unionctl image ls")]
    Ls(ImagesArgs),
    /// Remove images (as `rmi`)
    #[command(after_help = "Examples:\n  unionctl image rm bb:1")]
    Rm(RmiArgs),
    /// Show images as JSON (as `inspect`, images only)
    #[command(after_help = "Examples:\n  unionctl image inspect -f '{{.Id}}' bb:1")]
    Inspect(InspectArgs),
    /// Show the layers of an image (as `history`)
    #[command(after_help = "Examples:\n  unionctl image history bb:1")]
    History(HistoryArgs),
    /// Give an image another name (as `tag`)
    #[command(after_help = "Examples:\n  unionctl image tag bb:1 bb:stable")]
    Tag(TagArgs),
    /// Write images to an archive (as `save`)
    #[command(after_help = "Examples:\n  unionctl image save -o bb.tar bb:1")]
    Save(SaveArgs),
    /// Read images from an archive (as `load`)
    #[command(after_help = "Examples:\n  unionctl image load -i bb.tar")]
    Load(LoadArgs),
    /// Make a one-layer image from a rootfs tar (as `import`)
    #[command(after_help = "Examples:\n  unionctl image import rootfs.tar mybase:1")]
    Import(ImportArgs),
    /// Pull an image from a registry (as `pull`)
    #[command(after_help = "Examples:\n  unionctl image pull localhost:5000/team/app:v1")]
    Pull(PullArgs),
    /// Push an image to a registry (as `push`)
    #[command(after_help = "Examples:\n  unionctl image push app:1 localhost:5000/team/app:1")]
    Push(PushArgs),
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
    #[command(
        after_help = "Examples:\n  unionctl volume ls\n  unionctl volume ls -q\n  unionctl volume ls --format '{{.Name}}\t{{.Mountpoint}}'"
    )]
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
    #[command(flatten)]
    pub format: FormatArgs,
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
    /// Lower layers, leftmost on top, separated by ':' (or `-o lowerdir=...`)
    #[arg(long, required_unless_present = "options")]
    pub lower: Option<String>,
    /// Writable upper layer; without it the union is read-only
    #[arg(long)]
    pub upper: Option<PathBuf>,
    /// Work dir on the upper's file system (default: sibling .NAME.work of the upper)
    #[arg(long)]
    pub work: Option<PathBuf>,
    /// On-disk whiteout format written to the upper layer
    #[arg(long, default_value = "overlay", value_parser = ["overlay", "aufs"])]
    pub format: String,
    /// Mount options, comma separated (ro, allow_other, lowerdir=A:B, upperdir=U, workdir=W, volatile, auto_unmount, ...)
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
    /// Mount point of the union to unmount
    pub merged: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct LayersArgs {
    /// Mount point of a union
    pub merged: PathBuf,
    /// Print as JSON: the whiteout format and the layers
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct WhichArgs {
    /// A path inside a mounted union
    pub path: PathBuf,
}

// `-h` is the host name, as in docker: help is `--help` only.
#[derive(Args, Debug, Clone)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Print help
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Remove the container (its upper layer and record) when it exits
    #[arg(long)]
    pub rm: bool,
    /// Run in the background and print the container id
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep stdin open and pass it to the container
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Give the container a terminal
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Run a tiny init as pid 1 that reaps zombies and forwards signals
    #[arg(long)]
    pub init: bool,
    /// Container name (default: a random id)
    #[arg(long)]
    pub name: Option<String>,
    /// HOST:CTR[:ro]
    #[arg(short = 'v', long = "volume")]
    pub volumes: Vec<String>,
    /// K=V
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// UID[:GID]
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Host name inside the container (default: the short id)
    #[arg(short = 'h', long = "hostname")]
    pub hostname: Option<String>,
    /// none (only loopback) or host (the host network)
    #[arg(long, visible_alias = "net", default_value = "none")]
    pub network: String,
    /// Not supported: ports are published with a bridge network, which unionctl has not
    /// (with --network host the container's ports are the host's)
    #[arg(
        short = 'p',
        long = "publish",
        value_name = "[IP:]HOST:CONTAINER",
        hide = true
    )]
    pub publish: Vec<String>,
    /// Memory limit: BYTES, or a number with k, m or g
    #[arg(long)]
    pub memory: Option<String>,
    /// CPU limit, in CPUs (0.5 is half a CPU)
    #[arg(long)]
    pub cpus: Option<String>,
    /// Most processes the container may have
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    /// Use DIR as the only lower layer instead of an image
    #[arg(long)]
    pub rootfs: Option<PathBuf>,
    /// Pull the image first: missing (when it is not in the store and its name says from
    /// which registry: HOST[:PORT]/REPO), always, never
    #[arg(long, default_value = "missing", value_parser = ["missing", "always", "never"])]
    pub pull: String,
    /// OS/ARCH[/VARIANT] of the image to pull (default linux/<this machine>)
    #[arg(long)]
    pub platform: Option<String>,
    /// No pull progress
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[command(flatten)]
    pub security: SecurityArgs,
    /// Log file limits as docker's: max-size=SIZE (one file, default 10m), max-file=N
    /// (files kept, default 2)
    #[arg(long = "log-opt", value_name = "KEY=VALUE")]
    pub log_opts: Vec<String>,
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
    /// Give the container a host device: HOST[:CONTAINER[:PERMS]], PERMS of r, w, m
    /// (default rwm) (repeatable)
    #[arg(long = "device", value_name = "HOST[:CONTAINER[:PERMS]]")]
    pub devices: Vec<String>,
    /// Allow more devices in the device cgroup: 'TYPE MAJOR:MINOR PERMS', as 'c 1:3 mr'
    /// (TYPE a, b or c; * for any number) (repeatable)
    #[arg(long = "device-cgroup-rule", value_name = "RULE")]
    pub device_cgroup_rules: Vec<String>,
    /// IMAGE (unless --rootfs) then CMD ARG...
    #[arg(trailing_var_arg = true, required_unless_present = "rootfs")]
    pub args: Vec<String>,
}

/// Capabilities, seccomp and privileges of a new container (docker's flags).
#[derive(Args, Debug, Clone)]
pub struct SecurityArgs {
    /// seccomp=PROFILE.json (docker/OCI JSON), seccomp=unconfined, no-new-privileges[=true|false]
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// Add a capability (SYS_ADMIN or CAP_SYS_ADMIN, or ALL)
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a capability (CHOWN or CAP_CHOWN, or ALL)
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Every capability and device, no seccomp filter, no masked paths, writable /sys
    /// and /proc/sys
    #[arg(long)]
    pub privileged: bool,
}

/// How a listing or `inspect` prints.
#[derive(Args, Debug, Clone)]
pub struct FormatArgs {
    /// Print as `json`, or through a Go template: '{{.Field}}', '{{.A.B}}',
    /// '{{json .Field}}', '\t'; a 'table ' prefix adds a header row
    #[arg(long, value_name = "json|TEMPLATE")]
    pub format: Option<String>,
    /// Same as --format json
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct PsArgs {
    /// Show every container (default: running ones)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Print container ids only
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Only containers matching KEY=VALUE: status=created|running|paused|exited,
    /// name=PART, id=PREFIX, ancestor=IMAGE, label=KEY[=VALUE] (repeatable)
    #[arg(short = 'f', long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
    #[command(flatten)]
    pub format: FormatArgs,
}

#[derive(Args, Debug, Clone)]
pub struct ImagesArgs {
    /// Only images of this repository (and tag), as --filter reference=
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
    /// Every image, named or not (what images lists anyway: there are no intermediate images)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Print image ids only
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Show the digest each image was pulled by (DIGEST column)
    #[arg(long)]
    pub digests: bool,
    /// Only images matching KEY=VALUE: dangling=true|false, reference=PATTERN ('*'
    /// and '?'), label=KEY[=VALUE] (repeatable)
    #[arg(short = 'f', long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
    #[command(flatten)]
    pub format: FormatArgs,
}

#[derive(Args, Debug, Clone)]
pub struct CtrArgs {
    /// Container name or id
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
    /// Container name or id
    pub container: String,
}

#[derive(Args, Debug, Clone)]
pub struct StartArgs {
    /// Stay connected to the container's output and return its exit status (one
    /// container)
    #[arg(short = 'a', long)]
    pub attach: bool,
    /// With -a: keys that detach without stopping the container (as `attach`)
    #[arg(long, default_value = "ctrl-p,ctrl-q")]
    pub detach_keys: String,
    /// Container names or ids
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct StopArgs {
    /// Seconds to wait after the stop signal before SIGKILL (default: the container's
    /// --stop-timeout, else 10)
    #[arg(short = 't', long = "time")]
    pub time: Option<u64>,
    /// Container names or ids
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct ExecArgs {
    /// Keep stdin open and pass it to the command
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Give the command a terminal
    #[arg(short = 't', long)]
    pub tty: bool,
    /// K=V, or K to take this shell's value (repeatable)
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Working directory for the command
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// UID[:GID] or NAME[:GROUP] to run the command as
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Container name or id
    pub container: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, required = true)]
    pub cmd: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct RmArgs {
    /// Kill and remove running containers too
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Also remove the anonymous volumes (-v /path) the container made
    #[arg(short = 'v', long)]
    pub volumes: bool,
    /// Container names or ids
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct TagArgs {
    /// Image name or id
    pub source: String,
    /// New name: [HOST[:PORT]/]NAME[:TAG]
    pub target: String,
}

#[derive(Args, Debug, Clone)]
pub struct RmiArgs {
    /// Remove images that containers use, or that have several names, too
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Image names or ids
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct HistoryArgs {
    /// Image name or id
    pub image: String,
    /// Show each step's whole command and the full image id
    #[arg(long)]
    pub no_trunc: bool,
    /// Print sizes in bytes (accepted for docker's sake: `-H=false`)
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", require_equals = true, hide = true)]
    pub human: bool,
    #[command(flatten)]
    pub format: FormatArgs,
}

#[derive(Args, Debug, Clone)]
pub struct InspectArgs {
    /// Print through a Go template ('{{.State.Status}}', '{{json .Config}}') or as json
    #[arg(short = 'f', long, value_name = "json|TEMPLATE")]
    pub format: Option<String>,
    /// Images or containers (names or ids); an image is looked for first
    #[arg(required = true)]
    pub targets: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct CommitArgs {
    /// Author recorded in the image
    #[arg(short = 'a', long)]
    pub author: Option<String>,
    /// Commit message, recorded in the image history
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
    /// Container name or id
    pub container: String,
    /// Name for the new image: [HOST[:PORT]/]NAME[:TAG] (default: no name)
    pub reference: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct SaveArgs {
    /// Write to FILE instead of stdout
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// Archive format: docker-archive (docker load) or oci-archive (OCI layout)
    #[arg(long, default_value = "docker-archive", value_parser = ["docker-archive", "oci-archive"])]
    pub format: String,
    /// No progress (bars on a terminal, a line per layer otherwise)
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Image names or ids
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// Read from FILE instead of stdin (plain, gzip or zstd)
    #[arg(short = 'i', long)]
    pub input: Option<PathBuf>,
    /// No progress (bars on a terminal, a line per layer otherwise)
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ExportArgs {
    /// Write to FILE instead of stdout
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// No progress (bars on a terminal, a line per layer otherwise)
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Container name or id
    pub container: String,
}

#[derive(Args, Debug, Clone)]
pub struct ImportArgs {
    /// No progress (bars on a terminal, a line per layer otherwise)
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Rootfs tar, or '-' for stdin
    pub file: String,
    /// Name for the image: [HOST[:PORT]/]NAME[:TAG] (default: no name)
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
    /// Print as JSON
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
    /// User name at the registry
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Password (visible to other users in the process list: prefer --password-stdin)
    #[arg(short = 'p', long)]
    pub password: Option<String>,
    /// Read the password from stdin
    #[arg(long = "password-stdin", conflicts_with = "password")]
    pub password_stdin: bool,
    /// HOST[:PORT]
    pub registry: String,
}

#[derive(Args, Debug, Clone)]
pub struct LogoutArgs {
    /// Credentials file (default $REGISTRY_AUTH_FILE, else ROOT/auth.json)
    #[arg(long)]
    pub authfile: Option<PathBuf>,
    /// Forget every registry's credentials
    #[arg(short = 'a', long)]
    pub all: bool,
    /// HOST[:PORT] of the registry to forget
    pub registry: Option<String>,
}

impl RunArgs {
    /// What `run` and `create` refuse before anything is made.
    pub fn refuse_unsupported(&self) -> anyhow::Result<()> {
        if let Some(p) = self.publish.first() {
            if self.network == "host" {
                // docker's warning: the container's ports are the host's already.
                eprintln!("unionctl: -p {p}: published ports are discarded with --network host");
                return Ok(());
            }
            anyhow::bail!(
                "-p {p}: publishing ports needs a bridge network, which unionctl does not have: \
                 use --network host (the container's ports are then the host's)"
            );
        }
        Ok(())
    }
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
            memory: a.memory,
            cpus: a.cpus,
            pids_limit: a.pids_limit,
            rootfs: a.rootfs,
            log_opts: a.log_opts,
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
            devices: a.devices,
            device_cgroup_rules: a.device_cgroup_rules,
            security: a.security.into(),
        }
    }
}

impl From<SecurityArgs> for unionctl::runner::SecurityOptions {
    fn from(a: SecurityArgs) -> Self {
        unionctl::runner::SecurityOptions {
            security_opt: a.security_opt,
            cap_add: a.cap_add,
            cap_drop: a.cap_drop,
            privileged: a.privileged,
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

#[derive(Args, Debug, Clone)]
pub struct CompletionArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Args, Debug, Clone)]
pub struct ManArgs {
    /// Directory to write the pages into (made if missing)
    pub dir: PathBuf,
}
