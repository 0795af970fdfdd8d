//! The load probe: a child that writes megabytes still finishes; a timeout, a crash and a
//! refusal each say what happened; verdicts are kept across runs of `tabagent-host run` (a
//! second run starts no probe), and a touched file or one changed byte of its header is probed
//! again; hostile files stay refused on every run.

use crate::guests::CHAT;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tabagent_host::engine::llama::{LlamaEngine, ProbeConfig, ProbeMode};
use tabagent_tests::{host_bin, model_path};

/// A scratch folder of this test.
fn scratch(name: &str) -> PathBuf {
    let dir =
        tabagent_tests::scratch().join(format!("tabagent-probe-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A probe that runs `script` in `sh` (`$1` is the host binary, `$2` the model file).
fn shell_probe(script: &str, timeout: Duration) -> LlamaEngine {
    let mut config = ProbeConfig::new(
        "/bin/sh".into(),
        vec!["-c".into(), script.into(), "probe".into(), host_bin().display().to_string()],
    );
    config.timeout = timeout;
    config.cache_dir = None;
    LlamaEngine::with_probe_config(config)
}

#[test]
fn a_probe_that_writes_megabytes_to_stderr_still_finishes() {
    let engine = shell_probe(
        "head -c 8000000 /dev/zero | tr '\\0' x >&2; exec \"$1\" probe-model \"$2\"",
        Duration::from_secs(60),
    );
    let start = Instant::now();
    engine.probe(&model_path()).unwrap();
    assert!(start.elapsed() < Duration::from_secs(30), "{:?}", start.elapsed());
    assert_eq!(engine.probes_started(), 1);
}

#[test]
fn a_probe_that_hangs_is_stopped_and_says_it_timed_out_and_is_not_remembered() {
    let engine = shell_probe("echo loading >&2; sleep 60", Duration::from_secs(1));
    let start = Instant::now();
    let err = engine.probe(&model_path()).unwrap_err().to_string();
    assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
    assert!(err.contains("did not finish loading it within 1s"), "{err}");
    assert!(!err.contains("crashed"), "{err}");
    // A timeout says nothing about the file: the next load probes again.
    assert!(engine.probe(&model_path()).is_err());
    assert_eq!(engine.probes_started(), 2);
}

#[test]
fn a_probe_that_crashes_names_the_signal_and_its_last_words() {
    let engine = shell_probe(
        "echo 'GGML_ASSERT(n_layer <= 512) failed' >&2; kill -ABRT $$",
        Duration::from_secs(30),
    );
    let err = engine.probe(&model_path()).unwrap_err().to_string();
    assert!(err.contains("llama.cpp crashed (signal 6, SIGABRT)"), "{err}");
    assert!(err.ends_with("GGML_ASSERT(n_layer <= 512) failed"), "{err}");
    // A crash is a verdict on the file: remembered, not probed again in this process.
    assert_eq!(engine.probe(&model_path()).unwrap_err().to_string(), err);
    assert_eq!(engine.probes_started(), 1);
}

#[test]
fn a_probe_that_refuses_gives_its_reason() {
    let engine = shell_probe(
        "echo 'error: the tensor blk.0.q has the wrong shape' >&2; exit 1",
        Duration::from_secs(30),
    );
    let err = engine.probe(&model_path()).unwrap_err().to_string();
    assert!(
        err.contains(
            "could not load it in a probe process: the tensor blk.0.q has the wrong shape"
        ),
        "{err}"
    );
}

/// `tabagent-host run` of the chat example on `model` with verdicts in `cache`: whether it
/// generated, its stderr, and how many probe processes it started.
fn run_chat(model: &Path, cache: &Path, probe: &str) -> (bool, String, usize) {
    let out = Command::new(host_bin())
        .args(["--probe", probe, "run", CHAT.path().to_str().unwrap()])
        .arg("--model")
        .arg(format!("smollm2={}", model.display()))
        .args(["--", "--max-tokens", "2", "Hi"])
        .env("TABAGENT_CACHE_DIR", cache)
        .env("TABAGENT_LOG", "warn,tabagent_host::engine::llama::probe=debug")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let started = err.matches("starting a probe process").count();
    (out.status.success(), err, started)
}

#[test]
fn verdicts_are_kept_across_runs_until_the_file_changes() {
    let dir = scratch("runs");
    let cache = dir.join("cache");
    let model = dir.join("model.gguf");
    std::fs::copy(model_path(), &model).unwrap();

    let (ok, err, started) = run_chat(&model, &cache, "auto");
    assert!(ok && started == 1, "first run: {err}");
    let (ok, err, started) = run_chat(&model, &cache, "auto");
    assert!(ok && started == 0, "second run probed again: {err}");
    assert!(err.contains("judged by an earlier run"), "{err}");
    // `--probe always` ignores what earlier runs found; `never` starts no probe at all.
    let (ok, _, started) = run_chat(&model, &cache, "always");
    assert!(ok && started == 1);
    let (ok, _, started) = run_chat(&model, &dir.join("empty-cache"), "never");
    assert!(ok && started == 0);

    // Touched: a new modification time is another file.
    let file = std::fs::File::options().write(true).open(&model).unwrap();
    let modified = file.metadata().unwrap().modified().unwrap();
    file.set_modified(modified + Duration::from_secs(10)).unwrap();
    let (ok, err, started) = run_chat(&model, &cache, "auto");
    assert!(ok && started == 1, "after a touch: {err}");

    // One byte of the header changed (a letter of the model's name), size, inode and time
    // kept: the header's hash tells.
    let modified = std::fs::metadata(&model).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&model).unwrap();
    let name = b"general.name";
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap() + name.len() + 4 + 8;
    bytes[at] ^= 0x20; // the case of the name's first letter
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::File::options().write(true).open(&model).unwrap();
        f.seek(SeekFrom::Start(at as u64)).unwrap();
        f.write_all(&bytes[at..=at]).unwrap();
        f.set_modified(modified).unwrap();
    }
    assert_eq!(std::fs::metadata(&model).unwrap().modified().unwrap(), modified);
    let (ok, err, started) = run_chat(&model, &cache, "auto");
    assert!(ok && started == 1, "after a header byte changed: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hostile_files_stay_refused_on_every_run() {
    let dir = scratch("hostile");
    let cache = dir.join("cache");
    let original = std::fs::read(model_path()).unwrap();
    // llama.cpp refuses this one (no attention heads), past the Rust checks: the probe's
    // verdict is kept, and the second run is refused from it without a probe.
    let no_heads = dir.join("no-heads.gguf");
    std::fs::write(&no_heads, tabagent_tests::model_without_heads()).unwrap();
    let (ok, first, started) = run_chat(&no_heads, &cache, "auto");
    assert!(!ok && started == 1, "{first}");
    assert!(first.contains("could not load it in a probe process"), "{first}");
    let (ok, second, started) = run_chat(&no_heads, &cache, "auto");
    assert!(!ok && started == 0, "{second}");
    assert!(second.contains("could not load it in a probe process"), "{second}");
    assert!(second.contains("found by an earlier probe"), "{second}");

    // One the Rust checks refuse (513 layers, which would trip llama.cpp's assertion): refused
    // on every run before any probe.
    let mut layers = original;
    let key = b"llama.block_count";
    let at = layers.windows(key.len()).position(|w| w == key).unwrap() + key.len() + 4;
    layers[at..at + 4].copy_from_slice(&513u32.to_le_bytes());
    let too_deep = dir.join("too-deep.gguf");
    std::fs::write(&too_deep, &layers).unwrap();
    for _ in 0..2 {
        let (ok, err, started) = run_chat(&too_deep, &cache, "auto");
        assert!(!ok && started == 0, "{err}");
        assert!(err.contains("513"), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_probe_mode_always_engine_probes_each_file_once_per_process() {
    let cache = scratch("always");
    let mut config = ProbeConfig::new(host_bin(), vec!["probe-model".into()]);
    config.cache_dir = Some(cache.clone());
    let auto = LlamaEngine::with_probe_config(config.clone());
    auto.probe(&model_path()).unwrap();
    config.mode = ProbeMode::Always;
    let always = LlamaEngine::with_probe_config(config);
    always.probe(&model_path()).unwrap();
    always.probe(&model_path()).unwrap();
    assert_eq!((auto.probes_started(), always.probes_started()), (1, 1));
    let _ = std::fs::remove_dir_all(&cache);
}
