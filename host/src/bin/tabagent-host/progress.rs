//! A pull's progress on stderr: a progress bar (bytes, rate, time left) on a terminal, plain
//! lines every few seconds otherwise (logs, CI, pipes).

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tabagent_host::hub::{
    HubRef, PullObserver, PullState, PullStatus, PullTracker, TrackerFactory,
};

/// How often a plain line is written while bytes arrive.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

struct Plain {
    last: Option<Instant>,
    state: Option<PullState>,
    started: Instant,
    resumed_at: Option<u64>,
    received: bool,
}

/// Shows one pull.
pub struct Display {
    label: String,
    bar: Option<ProgressBar>,
    plain: Mutex<Plain>,
}

impl Display {
    /// A display for a pull of `reference`; a bar when stderr is a terminal.
    pub fn new(reference: &HubRef) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            // Drawn once the size is known (no empty 0 B/0 B bar while the hub is asked).
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} ({eta})",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.set_message(format!("pulling {reference}"));
            bar
        });
        let plain = Plain {
            last: None,
            state: None,
            started: Instant::now(),
            resumed_at: None,
            received: false,
        };
        Self { label: reference.to_string(), bar, plain: Mutex::new(plain) }
    }

    /// A tracker that shows on this display.
    pub fn tracker(reference: &HubRef) -> PullTracker {
        PullTracker::observed(Self::new(reference))
    }

    /// Trackers for the pulls loads start.
    pub fn factory() -> TrackerFactory {
        Arc::new(Self::tracker)
    }
}

fn percent(s: &PullStatus) -> String {
    match s.bytes_total {
        Some(t) if t > 0 => format!(" ({:.0}%)", s.bytes_done as f64 * 100.0 / t as f64),
        _ => String::new(),
    }
}

impl PullObserver for Display {
    fn update(&self, s: &PullStatus) {
        let received = {
            let mut p = self.plain.lock().unwrap_or_else(|e| e.into_inner());
            p.received |= s.state == PullState::Downloading;
            p.received
        };
        if s.state == PullState::Done && !received {
            if let Some(bar) = &self.bar {
                bar.finish_and_clear();
            }
            eprintln!("{} is in the cache", self.label);
            return;
        }
        if let Some(bar) = &self.bar {
            if let Some(t) = s.bytes_total
                && bar.is_hidden()
                && !s.state.is_final()
            {
                bar.set_length(t);
                bar.set_position(s.bytes_done);
                bar.reset_eta();
                bar.set_draw_target(ProgressDrawTarget::stderr());
            }
            bar.set_position(s.bytes_done);
            if let Some(f) = &s.file {
                bar.set_message(format!("pulling {}", f.rsplit('/').next().unwrap_or(f)));
            }
            match s.state {
                PullState::Waiting => {
                    bar.set_message(format!("waiting for another pull of {}", self.label))
                }
                PullState::Verifying => bar.set_message("verifying sha256".to_string()),
                PullState::Done => {
                    bar.finish_and_clear();
                    let size = HumanBytes(s.bytes_total.unwrap_or(s.bytes_done));
                    eprintln!("pulled {}: {size}, verified", self.label);
                }
                PullState::Failed => bar.abandon(),
                _ => {}
            }
            return;
        }
        let mut p = self.plain.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let changed = p.state != Some(s.state);
        let due = p.last.is_none_or(|t| now - t >= PLAIN_EVERY);
        if !(changed || (s.state == PullState::Downloading && due)) {
            return;
        }
        if p.resumed_at.is_none() && s.state == PullState::Downloading {
            p.resumed_at = Some(s.bytes_done);
            p.started = now;
        }
        p.last = Some(now);
        p.state = Some(s.state);
        let file = s.file.as_deref().unwrap_or(&self.label);
        let line = match s.state {
            PullState::Queued | PullState::Checking => {
                format!("pull {}: asking the hub", self.label)
            }
            PullState::Waiting => {
                format!("pull {}: waiting for another pull of the same file", self.label)
            }
            PullState::Downloading => {
                let secs = (now - p.started).as_secs_f64();
                let rate = (s.bytes_done - p.resumed_at.unwrap_or(0)) as f64 / secs.max(0.001);
                let left =
                    s.bytes_total.map(|t| t.saturating_sub(s.bytes_done) as f64 / rate.max(1.0));
                format!(
                    "pull {file}: {} of {}{}, {}/s{}",
                    HumanBytes(s.bytes_done),
                    s.bytes_total.map_or("?".into(), |t| HumanBytes(t).to_string()),
                    percent(s),
                    HumanBytes(rate as u64),
                    left.filter(|_| secs > 0.5)
                        .map_or(String::new(), |l| format!(", {l:.0} s left"))
                )
            }
            PullState::Verifying => format!("pull {file}: verifying sha256"),
            PullState::Done => format!(
                "pull {}: done, {} in the cache",
                self.label,
                HumanBytes(s.bytes_total.unwrap_or(s.bytes_done))
            ),
            PullState::Failed => format!("pull {}: failed", self.label),
        };
        eprintln!("{line}");
    }
}
