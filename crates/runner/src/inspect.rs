//! Containers as docker shows them: `inspect` (docker's shape and PascalCase keys) and the
//! rows of `ps`. Records' internals (supervisor and pid start times, namespaces, cgroup
//! dirs) stay out: they are the runner's, not the user's.
use crate::error::Result;
use crate::flags::RestartPolicy;
use crate::image::listing::{GraphDriver, GraphDriverData};
use crate::state::{self, Container, Security, Status};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// `docker inspect CONTAINER`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerInspect {
    pub id: String,
    /// `/NAME`, as docker writes it.
    pub name: String,
    pub created: String,
    /// The program the container runs, and its arguments.
    pub path: String,
    pub args: Vec<String>,
    pub state: StateView,
    /// Restarts the `--restart` policy made since the last `start`.
    pub restart_count: u32,
    /// `sha256:` and the image id ("" for a `--rootfs` container).
    pub image: String,
    pub config: ConfigView,
    pub mounts: Vec<MountView>,
    pub host_config: HostConfigView,
    pub graph_driver: GraphDriver,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StateView {
    /// `created`, `running`, `paused` or `exited`.
    pub status: String,
    pub running: bool,
    pub paused: bool,
    /// Host pid of the container's pid 1 while it runs, else 0.
    pub pid: i32,
    pub exit_code: i32,
    pub started_at: String,
    pub finished_at: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConfigView {
    /// The image as it was asked for (`bb:1`), or `rootfs:DIR`.
    pub image: String,
    pub cmd: Vec<String>,
    pub entrypoint: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub hostname: String,
    pub labels: BTreeMap<String, String>,
    pub tty: bool,
    pub open_stdin: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MountView {
    /// `bind`, or `volume` for one unionctl made (`-v /path`).
    pub r#type: String,
    pub source: String,
    pub destination: String,
    /// `ro` or `rw`.
    pub mode: String,
    #[serde(rename = "RW")]
    pub rw: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostConfigView {
    /// `HOST:CTR[:ro]` of each bind mount.
    pub binds: Vec<String>,
    pub network_mode: String,
    pub auto_remove: bool,
    pub init: bool,
    /// Bytes; 0 for no limit.
    pub memory: u64,
    /// CPUs in billionths; 0 for no limit.
    pub nano_cpus: u64,
    pub pids_limit: i64,
    pub restart_policy: RestartPolicyView,
    #[serde(flatten)]
    pub security: SecurityView,
    /// `--device`s, as docker shows them (`[]` when none).
    pub devices: Vec<DeviceView>,
    /// `--device-cgroup-rule`s; null when none.
    pub device_cgroup_rules: Option<Vec<String>>,
}

/// docker's `HostConfig.Devices` entry.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeviceView {
    pub path_on_host: String,
    pub path_in_container: String,
    pub cgroup_permissions: String,
}

/// `HostConfig`'s Privileged, CapAdd, CapDrop and SecurityOpt.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecurityView {
    pub privileged: bool,
    /// Capabilities beyond docker's default set; null when none.
    pub cap_add: Option<Vec<String>>,
    /// Capabilities of docker's default set taken away; null when none.
    pub cap_drop: Option<Vec<String>>,
    /// `seccomp=PROFILE|unconfined`, `no-new-privileges=false` when not the defaults; null
    /// when none.
    pub security_opt: Option<Vec<String>>,
}

/// docker's `HostConfig.RestartPolicy`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RestartPolicyView {
    /// `no`, `on-failure`, `always` or `unless-stopped`.
    pub name: String,
    /// on-failure's limit; 0 for none.
    pub maximum_retry_count: u32,
}

fn restart_policy_view(p: RestartPolicy) -> RestartPolicyView {
    let (name, max) = match p {
        RestartPolicy::No => ("no", 0),
        RestartPolicy::OnFailure(n) => ("on-failure", n.unwrap_or(0)),
        RestartPolicy::Always => ("always", 0),
        RestartPolicy::UnlessStopped => ("unless-stopped", 0),
    };
    RestartPolicyView {
        name: name.into(),
        maximum_retry_count: max,
    }
}

/// `HostConfig`'s Privileged, CapAdd, CapDrop and SecurityOpt from `config.security`
/// (records from before it was kept show docker's defaults).
fn security_view(s: Option<&Security>) -> SecurityView {
    let Some(s) = s else {
        return SecurityView::default();
    };
    let some = |v: Vec<String>| (!v.is_empty()).then_some(v);
    if s.privileged {
        return SecurityView {
            privileged: true,
            ..SecurityView::default()
        };
    }
    let default = crate::capabilities::names(&crate::linux::DEFAULT_CAPS);
    let added = s
        .capabilities
        .iter()
        .filter(|c| !default.contains(c))
        .cloned()
        .collect();
    let dropped = default
        .iter()
        .filter(|c| !s.capabilities.contains(c))
        .cloned()
        .collect();
    let mut opts = Vec::new();
    if s.seccomp != crate::seccomp::BUILTIN_NAME && s.seccomp != crate::seccomp::SYSTEM_PROFILE {
        opts.push(format!("seccomp={}", s.seccomp));
    }
    if !s.no_new_privileges {
        opts.push("no-new-privileges=false".into());
    }
    SecurityView {
        privileged: false,
        cap_add: some(added),
        cap_drop: some(dropped),
        security_opt: some(opts),
    }
}

/// One row of `ps`: what docker's `ps --format` fields are made of.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerSummary {
    pub id: String,
    pub names: String,
    /// The image as asked for, a short image id, or `rootfs:DIR`.
    pub image: String,
    /// The image id (`sha256:...`), "" for a `--rootfs` container.
    pub image_id: String,
    pub command: String,
    pub created_at: String,
    /// `created`, `running`, `paused` or `exited`.
    pub state: String,
    pub exit_code: Option<i32>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// Mount destinations.
    pub mounts: Vec<String>,
}

/// docker's status word: a running container that is frozen is `paused`.
fn status_word(c: &Container) -> &'static str {
    match c.status {
        Status::Running if c.paused => "paused",
        s => s.as_str(),
    }
}

fn image_display(c: &Container) -> String {
    match (&c.image_ref, &c.image, &c.rootfs) {
        (Some(r), _, _) => r.clone(),
        (None, Some(i), _) => i.trim_start_matches("sha256:").chars().take(12).collect(),
        (None, None, Some(r)) => format!("rootfs:{}", r.display()),
        _ => String::new(),
    }
}

fn image_id(c: &Container) -> String {
    c.image
        .as_deref()
        .map(|i| format!("sha256:{}", i.trim_start_matches("sha256:")))
        .unwrap_or_default()
}

/// The store's images as `ps` names them: the index is read once per listing.
pub struct StoreImages {
    store: crate::image::store::Store,
    list: Vec<crate::image::store::ImageRef>,
}

impl StoreImages {
    pub fn read(root: &Path) -> StoreImages {
        let store = crate::image::store::Store::open_existing(root);
        let list = store.list().unwrap_or_default();
        StoreImages { store, list }
    }

    /// docker's IMAGE column: the name the container was made from while that name
    /// still gives its image (not after `rmi`, or a tag moved to another image), else
    /// the image's short id.
    fn shown(&self, c: &Container) -> String {
        if let (Some(name), Some(id)) = (&c.image_ref, &c.image) {
            let id = id.trim_start_matches("sha256:");
            let named_now = self
                .store
                .resolve_in(&self.list, name)
                .and_then(|i| self.store.image_id(&i));
            if !named_now.is_ok_and(|now| now == id) {
                return id.chars().take(12).collect();
            }
        }
        image_display(c)
    }
}

/// A container's `ps` row; `c.status` should be its live status.
pub fn summary(images: &StoreImages, c: &Container) -> ContainerSummary {
    ContainerSummary {
        id: c.id.clone(),
        names: c.name.clone(),
        image: images.shown(c),
        image_id: image_id(c),
        command: c.config.argv().join(" "),
        created_at: c.created.clone(),
        state: status_word(c).into(),
        exit_code: c.exit_code,
        started_at: c.started_at.clone(),
        finished_at: c.finished_at.clone(),
        labels: c.config.labels.clone(),
        mounts: c
            .config
            .volumes
            .iter()
            .map(|v| v.container.clone())
            .collect(),
    }
}

/// A container as `docker inspect` shows it; `c.status` should be its live status.
pub fn inspect_view(c: &Container) -> ContainerInspect {
    let argv = c.config.argv();
    let running = c.status == Status::Running;
    let cfg = &c.config;
    let mode = |ro: bool| if ro { "ro" } else { "rw" }.to_string();
    // The union's lowers: the init layer (once the container has started) on the image's.
    let init = super::initlayer::dir(c);
    let lowers: Vec<String> = init
        .is_dir()
        .then_some(&init)
        .into_iter()
        .chain(&c.lowers)
        .map(|l| l.display().to_string())
        .collect();
    ContainerInspect {
        id: c.id.clone(),
        name: format!("/{}", c.name),
        created: c.created.clone(),
        path: argv.first().cloned().unwrap_or_default(),
        args: argv.iter().skip(1).cloned().collect(),
        state: StateView {
            status: status_word(c).into(),
            running,
            paused: running && c.paused,
            pid: if running { c.pid.unwrap_or(0) } else { 0 },
            exit_code: c.exit_code.unwrap_or(0),
            started_at: c.started_at.clone().unwrap_or_default(),
            finished_at: c.finished_at.clone().unwrap_or_default(),
        },
        restart_count: c.restart_count,
        image: image_id(c),
        config: ConfigView {
            image: image_display(c),
            cmd: cfg.cmd.clone(),
            entrypoint: cfg.entrypoint.clone(),
            env: cfg.env.clone(),
            working_dir: cfg.workdir.clone(),
            user: cfg.user.clone().unwrap_or_default(),
            hostname: cfg.hostname.clone(),
            labels: cfg.labels.clone(),
            tty: cfg.tty,
            open_stdin: cfg.interactive,
        },
        mounts: cfg
            .volumes
            .iter()
            .map(|v| MountView {
                r#type: if v.anonymous { "volume" } else { "bind" }.into(),
                source: v.host.display().to_string(),
                destination: v.container.clone(),
                mode: mode(v.readonly),
                rw: !v.readonly,
            })
            .collect(),
        host_config: HostConfigView {
            binds: cfg
                .volumes
                .iter()
                .filter(|v| !v.anonymous)
                .map(|v| {
                    let ro = if v.readonly { ":ro" } else { "" };
                    format!("{}:{}{ro}", v.host.display(), v.container)
                })
                .collect(),
            network_mode: cfg.network.clone(),
            auto_remove: cfg.auto_remove,
            init: cfg.init,
            memory: cfg.memory.unwrap_or(0),
            nano_cpus: cfg.cpus.map(|c| (c * 1e9) as u64).unwrap_or(0),
            pids_limit: cfg.pids_limit.unwrap_or(0),
            restart_policy: restart_policy_view(cfg.restart),
            devices: cfg
                .devices
                .iter()
                .map(|d| DeviceView {
                    path_on_host: d.path_on_host.clone(),
                    path_in_container: d.path_in_container.clone(),
                    cgroup_permissions: d.cgroup_permissions.clone(),
                })
                .collect(),
            device_cgroup_rules: (!cfg.device_cgroup_rules.is_empty()).then(|| {
                cfg.device_cgroup_rules
                    .iter()
                    .map(|r| r.to_string())
                    .collect()
            }),
            security: security_view(cfg.security.as_ref()),
        },
        graph_driver: GraphDriver::new(GraphDriverData {
            lower_dir: lowers.join(":"),
            upper_dir: Some(c.upper().display().to_string()),
            work_dir: Some(c.work().display().to_string()),
            merged_dir: Some(c.merged().display().to_string()),
        }),
    }
}

/// `docker inspect` of the container NAME (name, id or unique id prefix).
pub fn inspect(root: &Path, name: &str) -> Result<ContainerInspect> {
    let mut c = state::find_container(root, name)?;
    c.status = c.live_status();
    Ok(inspect_view(&c))
}
