//! The hub from the command line: `pull` with progress, a pull killed with SIGKILL, `run` with
//! a repository grant, and `models list/show/rm` on the resulting cache — the real binary
//! against the local hub server.

use crate::guests::CHAT;
use crate::hub::{C1, FILE, REPO, smol_server, temp_dir};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tabagent_tests::hub_server::{HubServer, sha256_hex};

fn host_cmd(server: &HubServer, cache: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(tabagent_tests::host_bin());
    cmd.args(args)
        .env("HF_ENDPOINT", server.endpoint())
        .env("HF_HUB_CACHE", cache)
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("HF_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn host(server: &HubServer, cache: &Path, args: &[&str]) -> Output {
    host_cmd(server, cache, args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn blob(cache: &Path, sha: &str) -> std::path::PathBuf {
    cache.join("models--HuggingFaceTB--SmolLM2-135M-Instruct-GGUF/blobs").join(sha)
}

#[test]
fn pull_shows_progress_then_run_list_show_and_rm_use_the_cache() {
    let server = smol_server();
    server.throttle(Some(60 << 20));
    let cache = temp_dir("cli-pull");
    let reference = format!("{REPO}:Q4_1");
    let out = host(&server, &cache, &["pull", &reference]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    let path = text(&out.stdout).trim().to_string();
    assert!(path.ends_with(&format!("snapshots/{C1}/{FILE}")), "{path}");
    // Not a terminal: plain progress lines with bytes, percentage and rate, then done.
    assert!(
        err.lines().any(|l| l.contains(" of ") && l.contains("%)") && l.contains("/s")),
        "{err}"
    );
    assert!(err.contains("done"), "{err}");

    // `run` loads the repository grant from the cache without the network.
    server.clear_log();
    let chat = CHAT.path();
    let grant = format!("smol={reference}");
    let out = host(
        &server,
        &cache,
        &[
            "run",
            chat.to_str().unwrap(),
            "--model",
            &grant,
            "--pull",
            "never",
            "--",
            "--max-tokens",
            "8",
            "Hi",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).trim().is_empty());
    assert_eq!(server.requests(), []);

    let out = host(&server, &cache, &["models", "list"]);
    let table = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        table.contains(&format!("{REPO}:{FILE}"))
            && table.contains("Q4_1")
            && table.contains("llama"),
        "{table}"
    );
    let out = host(&server, &cache, &["models", "list", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["repo"], REPO);
    assert_eq!(rows[0]["file"], FILE);
    assert_eq!(rows[0]["quantization"], "Q4_1");
    assert_eq!(rows[0]["architecture"], "llama");
    assert_eq!(rows[0]["revisions"], serde_json::json!(["main"]));
    assert_eq!(rows[0]["path"], path);
    let out = host(&server, &cache, &["models", "show", &reference, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["architecture"], "llama");
    assert_eq!(shown["fileType"], "Q4_1");
    assert_eq!(shown["loaded"]["vocabSize"], 49152);
    // `inspect` finds a cached model by its reference, without the network.
    let out = host(&server, &cache, &["--offline", "inspect", &reference, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((r["format"].as_str(), r["bitnet"].as_bool()), (Some("gguf"), Some(false)));
    assert_eq!(r["route"]["kind"], "llama");
    assert_eq!(r["path"], path);

    let out = host(&server, &cache, &["models", "rm", REPO]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("freed"), "{}", text(&out.stdout));
    assert!(!cache.join("models--HuggingFaceTB--SmolLM2-135M-Instruct-GGUF").exists());
    let out = host(&server, &cache, &["models", "show", &reference]);
    assert_eq!(out.status.code(), Some(126));
    assert!(text(&out.stderr).contains("not in the Hugging Face cache"), "{}", text(&out.stderr));
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn a_pull_killed_mid_way_shows_nothing_and_the_next_pull_resumes() {
    let server = smol_server();
    server.throttle(Some(16 << 20));
    let cache = temp_dir("cli-kill");
    let reference = format!("{REPO}:{FILE}");
    let sha = sha256_hex(&crate::hub::smol());
    let part = blob(&cache, &format!("{sha}.part"));
    let mut child = host_cmd(&server, &cache, &["pull", &reference]).spawn().unwrap();
    let start = Instant::now();
    while std::fs::metadata(&part).map_or(0, |m| m.len()) < 8 << 20 {
        assert!(start.elapsed() < Duration::from_secs(60), "the pull never got going");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = host(&server, &cache, &["models", "ps", "--json"]);
    let ps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (ps[0]["repo"].as_str(), ps[0]["active"].as_bool()),
        (Some(REPO), Some(true)),
        "{ps}"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let out = host(&server, &cache, &["models", "ps"]);
    assert!(text(&out.stdout).contains("interrupted (pull resumes it)"), "{}", text(&out.stdout));
    let kept = std::fs::metadata(&part).unwrap().len();
    let snapshot = cache.join("models--HuggingFaceTB--SmolLM2-135M-Instruct-GGUF/snapshots");
    assert!(!snapshot.exists() && !blob(&cache, &sha).exists(), "nothing visible after SIGKILL");
    server.throttle(None);
    let out = host(&server, &cache, &["pull", &reference]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let d = server.downloads();
    let range = d.last().unwrap().range.clone().unwrap();
    let from: u64 = range.trim_start_matches("bytes=").trim_end_matches('-').parse().unwrap();
    assert!(from >= kept && from > 0, "resumed from {from}, {kept} were kept");
    let path = text(&out.stdout).trim().to_string();
    assert_eq!(sha256_hex(&std::fs::read(path).unwrap()), sha);
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn models_rm_frees_only_blobs_no_other_file_uses() {
    let server = HubServer::start();
    let same = Arc::new(b"GGUF the same bytes".to_vec());
    server.add_file("org/m", C1, "a-Q4_0.gguf", Arc::clone(&same));
    server.add_file("org/m", C1, "b-Q4_0.gguf", Arc::clone(&same));
    let cache = temp_dir("cli-rm");
    for f in ["org/m:a-Q4_0.gguf", "org/m:b-Q4_0.gguf"] {
        let out = host(&server, &cache, &["pull", f]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let blob = cache.join("models--org--m/blobs").join(sha256_hex(&same));
    let out = host(&server, &cache, &["models", "rm", "org/m:a-Q4_0.gguf"]);
    assert!(text(&out.stdout).contains("kept 1 blobs"), "{}", text(&out.stdout));
    assert!(blob.exists());
    let out = host(&server, &cache, &["--offline", "pull", "org/m:b-Q4_0.gguf"]);
    assert!(out.status.success(), "b is still there: {}", text(&out.stderr));
    let out = host(&server, &cache, &["models", "rm", "org/m:b-Q4_0.gguf"]);
    assert!(text(&out.stdout).contains("freed 19 B (1 blobs)"), "{}", text(&out.stdout));
    assert!(!blob.exists() && !cache.join("models--org--m").exists());
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn bad_references_and_offline_misses_are_one_clear_line() {
    let server = smol_server();
    let cache = temp_dir("cli-bad");
    let chat = CHAT.path();
    for (args, says) in [
        (vec!["pull", "../etc/passwd"], "bad model reference"),
        (vec!["pull", "org/m:../../x.gguf"], "bad model reference"),
        (vec!["run", chat.to_str().unwrap(), "--model", "x=hf:a/b@../c"], "bad revision"),
        (
            vec!["run", chat.to_str().unwrap(), "--model", "x=a/b", "--pull", "sometimes"],
            "missing, never",
        ),
        (
            vec!["--offline", "pull", "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF:Q4_1"],
            "not in the Hugging Face cache",
        ),
        (
            vec!["pull", "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF:Q2_K"],
            "choices: SmolLM2-135M-Instruct",
        ),
    ] {
        let out = host(&server, &cache, &args);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(server.downloads().is_empty());
    std::fs::remove_dir_all(&cache).unwrap();
}
