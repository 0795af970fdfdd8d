//! The `tabagent-host` binary: `run` with grants and args, exit codes, `hw`, `inspect`, help and
//! errors. Needs the binary built (`cargo build --release -p tabagent-host`, which the test
//! script does first); `TABAGENT_HOST_BIN` overrides where it is looked for.

use crate::guests::CHAT;
use std::process::{Command, Output, Stdio};
use tabagent_tests::model_path;

fn host(args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(tabagent_tests::host_bin());
    cmd.args(args).stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn model_grant() -> String {
    format!("smollm2={}", model_path().display())
}

#[test]
fn run_streams_a_reply_and_reports_usage() {
    let chat = CHAT.path();
    let grant = model_grant();
    let out = host(
        &[
            "run",
            chat.to_str().unwrap(),
            "--model",
            &grant,
            "--",
            "--temperature",
            "0",
            "--max-tokens",
            "24",
            "What",
            "is",
            "2+2?",
        ],
        None,
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let reply = text(&out.stdout);
    assert!(reply.trim().len() > 2, "empty reply: {reply:?}");
    let err = text(&out.stderr);
    assert!(err.contains("tok/s") && err.contains("generated"), "{err}");
}

#[test]
fn with_trace_logs_on_a_model_still_loads_and_generates() {
    // The load probe's child once inherited the log level and blocked on a full stderr pipe.
    let chat = CHAT.path();
    let grant = model_grant();
    let start = std::time::Instant::now();
    let out = Command::new(tabagent_tests::host_bin())
        .args(["run", chat.to_str().unwrap(), "--model", &grant, "--", "--max-tokens", "4", "Hi"])
        .env("TABAGENT_LOG", "trace")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "stderr tail: {}", tail(&text(&out.stderr)));
    assert!(!text(&out.stdout).trim().is_empty());
    assert!(text(&out.stderr).contains("TRACE"), "trace logs were on");
    assert!(start.elapsed() < std::time::Duration::from_secs(60), "{:?}", start.elapsed());
}

fn tail(s: &str) -> &str {
    let mut at = s.len().saturating_sub(2000);
    while !s.is_char_boundary(at) {
        at += 1;
    }
    &s[at..]
}

#[test]
fn run_reads_the_prompt_from_stdin() {
    let chat = CHAT.path();
    let grant = model_grant();
    let out = host(
        &["run", chat.to_str().unwrap(), "--model", &grant, "--", "--max-tokens", "8"],
        Some("Say hello."),
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(!text(&out.stdout).trim().is_empty());
}

#[test]
fn the_guest_exit_code_is_the_host_exit_code() {
    let chat = CHAT.path();
    // No model granted: the app fails with its own exit code 1 and says why.
    let out = host(&["run", chat.to_str().unwrap(), "--", "hello"], None);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("not granted"), "{}", text(&out.stderr));
    // Bad app arguments: the app's exit code 2 (through wasi:cli/exit.exit-with-code).
    let grant = model_grant();
    let out = host(&["run", chat.to_str().unwrap(), "--model", &grant, "--", "--max-tokens"], None);
    assert_eq!(out.status.code(), Some(2), "stderr: {}", text(&out.stderr));
}

#[test]
fn host_errors_are_one_readable_line() {
    let missing = host(&["run", "/nonexistent/app.wasm"], None);
    assert_eq!(missing.status.code(), Some(126));
    let err = text(&missing.stderr);
    assert!(err.starts_with("error: ") && err.contains("/nonexistent/app.wasm"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let chat = CHAT.path();
    let bad_grant = host(&["run", chat.to_str().unwrap(), "--model", "nopath"], None);
    assert_eq!(bad_grant.status.code(), Some(126));
    assert!(text(&bad_grant.stderr).contains("NAME=PATH"));

    let missing_model =
        host(&["run", chat.to_str().unwrap(), "--model", "x=/nonexistent.gguf"], None);
    assert_eq!(missing_model.status.code(), Some(126));
    assert!(text(&missing_model.stderr).contains("not a file"));

    let not_wasm =
        tabagent_tests::scratch().join(format!("tabagent-not-wasm-{}.wasm", std::process::id()));
    std::fs::write(&not_wasm, b"hello").unwrap();
    let out = host(&["run", not_wasm.to_str().unwrap()], None);
    std::fs::remove_file(&not_wasm).unwrap();
    assert_eq!(out.status.code(), Some(126));
    assert!(text(&out.stderr).contains("not a valid component"), "{}", text(&out.stderr));
}

/// A reader that goes away (`tabagent-host hw | head -1`) ends the command quietly: no panic,
/// a clean exit.
#[test]
fn a_closed_stdout_is_not_a_panic() {
    for args in [&["hw"][..], &["hw", "--json"], &["inspect", model_path().to_str().unwrap()]] {
        let mut child = Command::new(tabagent_tests::host_bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Close our end of stdout before the host writes anything.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = text(&out.stderr);
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{args:?}: {err}");
        assert!(out.status.success(), "{args:?}: {:?} {err}", out.status);
    }
}

#[test]
fn help_describes_every_subcommand() {
    let out = host(&["--help"], None);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for word in ["run", "hw", "inspect", "pull", "models"] {
        assert!(help.contains(word), "{help}");
    }
    let run_help = text(&host(&["run", "--help"], None).stdout);
    for word in [
        "--model",
        "--dir",
        "--env",
        "--config",
        "NAME=PATH|REPO",
        "--pull",
        "--allow-pull",
        "Exit codes",
    ] {
        assert!(run_help.contains(word), "{run_help}");
    }
    let usage = host(&["frobnicate"], None);
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn hw_prints_a_table_and_json() {
    let table = host(&["hw"], None);
    assert!(table.status.success());
    assert!(text(&table.stdout).contains("CPU") && text(&table.stdout).contains("Memory"));
    let json = host(&["hw", "--json"], None);
    assert!(json.status.success());
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let cpu = tabagent_host::hardware::cpu();
    assert_eq!(v["cpu"]["vendor"], cpu.vendor);
    assert_eq!(v["cpu"]["variant"], cpu.variant);
    assert_eq!(v["cpu"]["features"], serde_json::json!(cpu.features));
    assert!(text(&table.stdout).contains(&cpu.variant));
    assert!(v["memory"]["total"].as_u64().unwrap() > 0);
    assert!(v["gpus"].is_array());
    // The CPU kernels: the best-scoring variant of those built, loaded from a file.
    let k = &v["kernels"];
    let variant = k["variant"].as_str().unwrap();
    let available = k["available"].as_array().unwrap();
    assert!(available.len() >= 10, "{k}");
    // The best of those the host picks by itself (variants known to crash are not).
    let best = available
        .iter()
        .filter(|a| a["notPicked"].is_null())
        .map(|a| a["score"].as_u64().unwrap())
        .max()
        .unwrap();
    let chosen = available.iter().find(|a| a["name"] == variant).unwrap();
    assert_eq!(chosen["score"].as_u64().unwrap(), best, "{k}");
    assert_eq!(k["forced"], false);
    assert!(k["path"].as_str().unwrap().ends_with(&format!("libggml-cpu-{variant}.so")), "{k}");
    assert!(text(&table.stdout).contains(&format!("Kernels  {variant} (best for this CPU)")));
    // On an AVX2 machine the kernels use AVX2; with AVX-512 they use that too.
    let built_for = k["features"].as_array().unwrap();
    let has = |f: &str| built_for.iter().any(|x| x == f);
    assert_eq!(has("AVX2"), cpu.features.iter().any(|f| f == "avx2"), "{k}");
    assert_eq!(has("AVX512"), cpu.features.iter().any(|f| f == "avx512f"), "{k}");
}

#[test]
fn a_cpu_variant_can_be_forced_and_a_bad_one_is_refused() {
    let out = host(&["hw", "--json", "--cpu-variant", "x64"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kernels"]["variant"], "x64");
    assert_eq!(v["kernels"]["forced"], true);
    assert!(!v["kernels"]["features"].as_array().unwrap().iter().any(|f| f == "AVX"), "{v}");
    // The environment variable does the same.
    let env = Command::new(tabagent_tests::host_bin())
        .args(["hw", "--json"])
        .env("TABAGENT_CPU_VARIANT", "sse42")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&env.stdout).unwrap();
    assert_eq!(v["kernels"]["variant"], "sse42");

    let unknown = host(&["hw", "--cpu-variant", "zen9"], None);
    assert_eq!(unknown.status.code(), Some(126));
    let err = text(&unknown.stderr);
    assert!(err.contains("no CPU variant 'zen9'") && err.contains("x64"), "{err}");
    // A variant this CPU cannot run is refused rather than crashing with an illegal instruction.
    let v =
        serde_json::from_slice::<serde_json::Value>(&host(&["hw", "--json"], None).stdout).unwrap();
    if let Some(never) =
        v["kernels"]["available"].as_array().unwrap().iter().find(|a| a["score"] == 0)
    {
        let name = never["name"].as_str().unwrap();
        let out = host(&["hw", "--cpu-variant", name], None);
        assert_eq!(out.status.code(), Some(126));
        assert!(text(&out.stderr).contains("needs instructions this CPU lacks"), "{out:?}");
    }
    let missing = host(&["hw", "--backends-dir", "/nonexistent"], None);
    assert_eq!(missing.status.code(), Some(126));
    assert!(text(&missing.stderr).contains("no llama.cpp CPU backend"), "{missing:?}");
    // The rest of the machine is still described.
    let table = text(&missing.stdout);
    assert!(table.contains("CPU ") && table.contains("Kernels  unavailable"), "{table}");
}

/// The same binary on a CPU without AVX (an emulated Nehalem: SSE4.2 at most) picks the
/// `sse42` kernels instead of dying with an illegal instruction, and generates the same greedy
/// reply as the `sse42` kernels forced natively (other variants round differently and may pick
/// other tokens). Needs `qemu-x86_64` (scripts/setup.sh installs qemu-user).
#[cfg(target_arch = "x86_64")]
#[test]
fn on_a_cpu_without_avx_the_host_picks_sse42_kernels_and_still_generates() {
    let qemu = |args: &[&str]| {
        let out = Command::new("qemu-x86_64")
            .args(["-cpu", "Nehalem"])
            .arg(tabagent_tests::host_bin())
            .args(args)
            .env("TABAGENT_LOG", "off")
            .env_remove("TABAGENT_CPU_VARIANT")
            .output()
            .expect("qemu-x86_64 runs (scripts/setup.sh installs qemu-user)");
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        out
    };
    let v: serde_json::Value = serde_json::from_slice(&qemu(&["hw", "--json"]).stdout).unwrap();
    assert_eq!(v["cpu"]["features"], serde_json::json!(["sse4.2"]), "{v}");
    assert_eq!(v["kernels"]["variant"], "sse42", "{v}");
    let runnable: Vec<_> = v["kernels"]["available"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["score"].as_u64() > Some(0))
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(runnable, ["sse42", "x64"]);

    let chat = CHAT.path();
    let grant = model_grant();
    let args = ["--", "--temperature", "0", "--max-tokens", "6", "Name", "a", "color."];
    let mut run = vec!["run", chat.to_str().unwrap(), "--model", &grant];
    run.extend(args);
    let emulated = text(&qemu(&run).stdout);
    run.splice(2..2, ["--cpu-variant", "sse42"]);
    let native = host(&run, None);
    assert!(native.status.success(), "{}", text(&native.stderr));
    assert!(emulated.trim().len() > 2, "{emulated:?}");
    assert_eq!(emulated, text(&native.stdout));
}

/// `scripts/package.sh` puts the binary, its libraries and the CPU variants in one folder that
/// runs on its own: no build tree, no LD_LIBRARY_PATH.
#[test]
fn the_package_runs_from_its_own_folder() {
    let dir = tabagent_tests::scratch().join(format!("tabagent-package-{}", std::process::id()));
    let pkg = dir.join("tabagent-host");
    let script = tabagent_tests::repo_root().join("scripts/package.sh");
    let out = Command::new(&script)
        .arg(&pkg)
        .env("TABAGENT_HOST_BIN", tabagent_tests::host_bin())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let run = |args: &[&str]| {
        Command::new(pkg.join("tabagent-host"))
            .args(args)
            .env_remove("LD_LIBRARY_PATH")
            .env_remove("TABAGENT_BACKENDS_DIR")
            .env_remove("TABAGENT_CPU_VARIANT")
            .output()
            .unwrap()
    };
    let hw = run(&["hw", "--json"]);
    assert!(hw.status.success(), "{}", text(&hw.stderr));
    let v: serde_json::Value = serde_json::from_slice(&hw.stdout).unwrap();
    let path = v["kernels"]["path"].as_str().unwrap();
    assert!(path.starts_with(pkg.join("backends").to_str().unwrap()), "{path}");
    let ldd = Command::new("ldd")
        .arg(pkg.join("tabagent-host"))
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    let ldd = text(&ldd.stdout);
    let llama = ldd.lines().find(|l| l.contains("libllama.so")).unwrap_or_default().to_string();
    assert!(llama.contains(pkg.join("lib").to_str().unwrap()), "{ldd}");
    let chat = CHAT.path();
    let grant = model_grant();
    let reply =
        run(&["run", chat.to_str().unwrap(), "--model", &grant, "--", "--max-tokens", "8", "Hi"]);
    assert!(reply.status.success(), "{}", text(&reply.stderr));
    assert!(!text(&reply.stdout).trim().is_empty());
    assert!(dir.join("tabagent-host.tar.gz").is_file());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inspect_prints_metadata() {
    let out = host(&["inspect", model_path().to_str().unwrap(), "--json", "--load"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["loaded"]["vocabSize"], 49152);
    assert_eq!(v["loaded"]["layerCount"], 30);
    assert_eq!(v["loaded"]["loadedTo"]["device"], "CPU");
    assert_eq!(v["loaded"]["loadedTo"]["cpuLayers"], 31);
    // Without --load: the header alone.
    let out = host(&["inspect", model_path().to_str().unwrap(), "--json"], None);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["format"].as_str(), v["layerCount"].as_u64()), (Some("gguf"), Some(30)));
    assert!(v.get("loaded").is_none());
    let bad = host(&["inspect", "/nonexistent.gguf"], None);
    assert_eq!(bad.status.code(), Some(126));
    assert!(text(&bad.stderr).contains("not found"));
}
