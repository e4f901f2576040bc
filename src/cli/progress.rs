//! Shows the library's copy progress on stderr: a bar per item on a terminal, as podman
//! and skopeo draw them (`Copying blob sha256:0123456789ab  12.3MiB / 80.1MiB`), one line
//! per item when it is done otherwise, nothing with `-q`.
use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use unionctl::image::progress::{Item, Outcome, Progress};

enum Mode {
    Bars(MultiProgress),
    Lines,
    Quiet,
}

/// The binary's `Progress`: pick it with [`Shown::new`] and pass it to the library.
pub struct Shown {
    mode: Mode,
    /// The item under way: what it is called, its bar, the bytes so far.
    label: String,
    bar: Option<ProgressBar>,
    copied: u64,
}

impl Shown {
    /// Bars when stderr is a terminal, lines when not, nothing when `quiet`.
    pub fn new(quiet: bool) -> Shown {
        let mode = match (quiet, std::io::stderr().is_terminal()) {
            (true, _) => Mode::Quiet,
            (false, true) => {
                Mode::Bars(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
            }
            (false, false) => Mode::Lines,
        };
        Shown {
            mode,
            label: String::new(),
            bar: None,
            copied: 0,
        }
    }
}

/// `sha256:` and the first 12 hex digits, as podman shows a digest.
fn short(name: &str) -> &str {
    match name.strip_prefix("sha256:") {
        Some(hex) if hex.len() > 12 => name.get(..7 + 12).unwrap_or(name),
        _ => name,
    }
}

fn label(item: Item, name: &str) -> String {
    match item {
        Item::Blob => format!("Copying blob {}", short(name)),
        Item::Config => format!("Copying config {}", short(name)),
        Item::Manifest => format!("Writing manifest {}", short(name)),
        Item::Layer => format!("Writing layer from {name}"),
        Item::Filesystem => format!("Exporting {name}"),
    }
}

impl Progress for Shown {
    fn begin(&mut self, item: Item, name: &str, total: Option<u64>) {
        self.label = label(item, name);
        self.copied = 0;
        if let Mode::Bars(multi) = &self.mode {
            let (bar, template) = match total {
                Some(t) => (
                    ProgressBar::new(t),
                    "{msg} {binary_bytes:>10} / {binary_total_bytes:<10} [{bar:30}] {binary_bytes_per_sec}",
                ),
                None => (
                    ProgressBar::new_spinner(),
                    "{msg} {binary_bytes:>10} {spinner} {binary_bytes_per_sec}",
                ),
            };
            let style = ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            let bar = multi.add(bar.with_style(style).with_message(self.label.clone()));
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            self.bar = Some(bar);
        }
    }

    fn advance(&mut self, bytes: u64) {
        self.copied += bytes;
        if let Some(b) = &self.bar {
            b.inc(bytes);
        }
    }

    fn end(&mut self, outcome: Outcome) {
        let note = match outcome {
            Outcome::Done => format!("{} done", HumanBytes(self.copied)),
            Outcome::Exists => "skipped: already exists".to_string(),
        };
        match (&self.mode, self.bar.take()) {
            (Mode::Bars(_), Some(bar)) => {
                bar.set_style(ProgressStyle::with_template("{msg}").unwrap());
                bar.finish_with_message(format!("{} {note}", self.label));
            }
            (Mode::Lines, _) => eprintln!("{} {note}", self.label),
            _ => {}
        }
    }
}

impl Drop for Shown {
    /// A copy that failed mid-item leaves its bar where it stopped, not spinning.
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
    }
}
