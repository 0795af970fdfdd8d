//! A model load's progress on stderr: a bar once a load has taken a while, on a terminal only
//! (nothing in logs, pipes and tests).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tabagent_host::engine::llama::LoadProgressFn;

/// Loads shorter than this show nothing.
const SHOW_AFTER: Duration = Duration::from_millis(500);

/// Steps of the bar (llama.cpp reports fractions).
const STEPS: u64 = 1000;

struct Load {
    started: Instant,
    bar: ProgressBar,
    shown: bool,
}

/// The progress function for the engine, or `None` when stderr is not a terminal.
pub fn load_progress() -> Option<Arc<LoadProgressFn>> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let loads: Mutex<HashMap<PathBuf, Load>> = Mutex::new(HashMap::new());
    Some(Arc::new(move |file: &Path, done: f32| {
        let mut loads = loads.lock().unwrap_or_else(|e| e.into_inner());
        let load = loads.entry(file.to_path_buf()).or_insert_with(|| Load {
            started: Instant::now(),
            bar: ProgressBar::with_draw_target(Some(STEPS), ProgressDrawTarget::hidden()),
            shown: false,
        });
        if !load.shown && load.started.elapsed() >= SHOW_AFTER && done < 1.0 {
            load.bar.set_style(
                ProgressStyle::with_template(
                    "loading {msg} [{elapsed_precise}] [{wide_bar}] {percent}%",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            let name = file
                .file_name()
                .map_or_else(|| file.display().to_string(), |n| n.to_string_lossy().into_owned());
            load.bar.set_message(name);
            load.bar.set_draw_target(ProgressDrawTarget::stderr());
            load.shown = true;
        }
        load.bar.set_position((f64::from(done.clamp(0.0, 1.0)) * STEPS as f64) as u64);
        if done >= 1.0
            && let Some(load) = loads.remove(file)
        {
            load.bar.finish_and_clear();
        }
    }))
}
