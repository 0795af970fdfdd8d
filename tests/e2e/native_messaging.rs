//! `tabagent-host native-messaging` driven exactly as a browser drives it: 32-bit native-endian
//! lengths and UTF-8 JSON on the host's stdin and stdout, the router component answering every
//! action of TabAgent's protocol against the real model.

use crate::guests::ROUTER;
use crate::hub::{REPO, smol_server, temp_dir};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tabagent_tests::model_path;

/// A host process and the frames it sends back.
pub struct Browser {
    child: Child,
    stdin: Option<ChildStdin>,
    frames: mpsc::Receiver<Result<Value, String>>,
    /// Frames read but not yet asked for.
    pending: Vec<Value>,
}

impl Browser {
    pub fn start(extra: &[&str], env: &[(&str, &str)]) -> Self {
        let router = ROUTER.path();
        let grant = format!("smollm2={}", model_path().display());
        let mut cmd = Command::new(tabagent_tests::host_bin());
        cmd.args(["native-messaging", router.to_str().unwrap(), "--model", &grant]);
        cmd.args(extra).arg("chrome-extension://abcdefghijklmnopabcdefghijklmnop/");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = cmd.spawn().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let (tx, frames) = mpsc::channel();
        std::thread::spawn(move || {
            loop {
                let mut len = [0u8; 4];
                if stdout.read_exact(&mut len).is_err() {
                    return;
                }
                let len = u32::from_ne_bytes(len) as usize;
                let mut body = vec![0u8; len];
                let r = stdout.read_exact(&mut body).map_err(|e| format!("truncated frame: {e}"));
                let r = r.and_then(|()| {
                    assert!(len <= 1 << 20, "a frame over the browser's 1 MiB limit: {len}");
                    serde_json::from_slice(&body).map_err(|e| format!("stray bytes on stdout: {e}"))
                });
                if tx.send(r).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        Self { child, stdin, frames, pending: Vec::new() }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    pub fn send(&mut self, v: &Value) {
        let text = v.to_string();
        let mut frame = (text.len() as u32).to_ne_bytes().to_vec();
        frame.extend(text.as_bytes());
        self.send_raw(&frame);
    }

    fn next_frame(&mut self, timeout: Duration) -> Value {
        match self.frames.recv_timeout(timeout) {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => panic!("{e}"),
            Err(e) => panic!("no frame from the host within {timeout:?}: {e}"),
        }
    }

    /// The next frame answering `id` whose status is final (success or error); the frames
    /// before it for that id are returned too, in order.
    pub fn until_final(&mut self, id: &Value) -> (Vec<Value>, Value) {
        let mut before = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let v = if let Some(i) = self.pending.iter().position(|v| &v["id"] == id) {
                self.pending.remove(i)
            } else {
                let left = deadline.saturating_duration_since(Instant::now());
                let v = self.next_frame(left);
                if &v["id"] != id {
                    self.pending.push(v);
                    continue;
                }
                v
            };
            match v["status"].as_str() {
                Some("success" | "error") => return (before, v),
                _ => before.push(v),
            }
        }
    }

    /// Send a request and wait for its final answer.
    pub fn call(&mut self, v: Value) -> Value {
        let id = v["id"].clone();
        self.send(&v);
        self.until_final(&id).1
    }

    /// Send a request whose answer has no id (it could not be read) and wait for it.
    pub fn call_anonymous(&mut self, v: Value) -> Value {
        self.send(&v);
        self.until_final(&Value::Null).1
    }

    /// The next frame with no id (the host's own errors).
    pub fn host_error(&mut self) -> Value {
        if let Some(i) = self.pending.iter().position(|v| v["id"].is_null()) {
            return self.pending.remove(i);
        }
        loop {
            let v = self.next_frame(Duration::from_secs(30));
            if v["id"].is_null() {
                return v;
            }
            self.pending.push(v);
        }
    }

    /// Close stdin and wait for the exit; the exit status and how long it took. Fails on any
    /// frame left unread.
    pub fn close(mut self) -> (std::process::ExitStatus, Duration) {
        drop(self.stdin.take());
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let took = start.elapsed();
                let rest: Vec<_> = self.frames.iter().collect();
                assert!(
                    rest.is_empty() && self.pending.is_empty(),
                    "unread: {rest:?} {:?}",
                    self.pending
                );
                return (status, took);
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the host did not exit after stdin closed"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn ok(v: &Value) -> &Value {
    assert_eq!(v["status"], "success", "{v}");
    &v["payload"]
}

fn code(v: &Value) -> &str {
    assert_eq!(v["status"], "error", "{v}");
    v["error"]["code"].as_str().unwrap()
}

#[test]
fn every_action_over_framed_stdio_with_streaming_cancel_and_bad_input() {
    let mut b = Browser::start(&[], &[]);
    let res = b.call(json!({"id": 1, "action": "GET_SYSTEM_RESOURCES"}));
    assert!(ok(&res)["cpu"]["logicalThreads"].as_u64().unwrap() >= 1, "{res}");
    assert!(ok(&res)["memory"]["total"].as_u64().unwrap() > 0);

    let load = b.call(json!({"id": 2, "action": "LOAD_MODEL", "modelPath": "smollm2", "settings": {"n_ctx": 2048, "n_gpu_layers": 0}}));
    let p = ok(&load);
    assert_eq!(p["isReady"], true);
    assert_eq!(p["modelId"], "smollm2");
    assert_eq!(
        (p["vocabSize"].as_u64(), p["contextSize"].as_u64(), p["embeddingDim"].as_u64()),
        (Some(49152), Some(8192), Some(576)),
        "{p}"
    );
    assert_eq!(p["loadedTo"], "CPU");
    assert_eq!(p["fileSize"].as_u64(), Some(std::fs::metadata(model_path()).unwrap().len()));
    assert_eq!(p["nCtx"], 2048);

    // A streamed chat, and a question answered while it streams.
    let chat = json!({"id": 3, "action": "CHAT", "modelId": "smollm2",
        "messages": [{"role": "user", "content": "Write a long story about a lighthouse."}],
        "options": {"max_tokens": 64, "temperature": 0}});
    b.send(&chat);
    // Wait for the first chunk, then ask.
    let early = loop {
        let v = b.next_frame(Duration::from_secs(60));
        if v["id"] == 3 {
            break v;
        }
        b.pending.push(v);
    };
    assert_eq!(early["status"], "streaming", "{early}");
    b.send(&json!({"id": 4, "action": "GET_LOADED_MODELS"}));
    let (_, models) = b.until_final(&json!(4));
    let (chunks, done) = b.until_final(&json!(3));
    assert_eq!(ok(&models)["models"][0]["modelId"], "smollm2");
    assert_eq!(
        ok(&models)["models"][0]["activeGenerations"],
        1,
        "answered while the chat streamed: {models}"
    );
    assert!(!chunks.is_empty());
    let text: String = std::iter::once(&early)
        .chain(&chunks)
        .map(|c| c["payload"]["text"].as_str().unwrap())
        .collect();
    let d = ok(&done);
    assert_eq!(d["finishReason"], "length");
    assert_eq!(d["usage"]["completionTokens"], 64);
    assert_eq!(d["chunks"].as_u64(), Some(1 + chunks.len() as u64));

    // The same request without streaming gives the same greedy text in one answer.
    let mut whole = chat.clone();
    whole["id"] = json!(5);
    whole["stream"] = json!(false);
    let r = b.call(whole);
    assert_eq!(ok(&r)["text"].as_str().unwrap(), text);

    // Cancel a long generation by id.
    b.send(&json!({"id": "g", "action": "GENERATE", "modelId": "smollm2", "prompt": "Once upon a time", "options": {"max_tokens": 2000}}));
    b.send(&json!({"id": "c", "action": "CANCEL", "targetId": "g"}));
    let (_, cancelled) = b.until_final(&json!("g"));
    assert_eq!(ok(&cancelled)["finishReason"], "cancelled", "{cancelled}");
    let (_, c) = b.until_final(&json!("c"));
    assert_eq!(ok(&c)["cancelled"], true);
    assert_eq!(
        code(&b.call(json!({"id": 6, "action": "CANCEL", "targetId": "nothing"}))),
        "not-found"
    );

    let e =
        b.call(json!({"id": 7, "action": "EMBED", "modelId": "smollm2", "input": ["red", "blue"]}));
    assert_eq!(ok(&e)["embeddings"].as_array().unwrap().len(), 2);
    assert_eq!(ok(&e)["dimension"], 576);
    // Many embeddings come in parts, each under the browser's limit.
    let texts: Vec<String> = (0..200).map(|i| format!("word {i}")).collect();
    b.send(&json!({"id": "many", "action": "EMBED", "modelId": "smollm2", "input": texts}));
    let (parts, done) = b.until_final(&json!("many"));
    assert_eq!(ok(&done)["count"], 200);
    let got: usize =
        parts.iter().map(|p| p["payload"]["embeddings"].as_array().unwrap().len()).sum();
    assert_eq!((got, parts.len() as u64), (200, ok(&done)["parts"].as_u64().unwrap()));

    let split = b.call(json!({"id": 8, "action": "RECOMMEND_SPLIT", "modelId": "smollm2"}));
    assert_eq!(ok(&split)["totalLayers"].as_u64(), Some(30), "{split}");
    let state = b.call(json!({"id": 9, "action": "GET_MODEL_STATE", "modelId": "smollm2"}));
    assert_eq!(ok(&state)["state"], "loaded");

    // Bad input: each answered, naming what is wrong, and the next request is served.
    b.send_raw(&[5, 0, 0, 0, b'{', b'o', b'o', b'p', b's']);
    assert_eq!(code(&b.until_final(&Value::Null).1), "invalid-json");
    for (req, want, names) in [
        (json!({"id": 10, "action": "FROBNICATE"}), "unknown-action", "FROBNICATE"),
        (json!({"id": 11, "action": "LOAD_MODEL"}), "missing-field", "modelPath"),
        (
            json!({"id": 12, "action": "LOAD_MODEL", "modelPath": "smollm2", "settings": {"n_ctx": "big"}}),
            "invalid-field",
            "settings.n_ctx",
        ),
        (
            json!({"id": 13, "action": "CHAT", "modelId": "smollm2", "messages": "hi"}),
            "invalid-field",
            "messages",
        ),
        (
            json!({"id": 14, "action": "GENERATE", "modelId": "smollm2", "prompt": "x", "options": {"temperature": -1}}),
            "invalid-input",
            "temperature",
        ),
        (
            json!({"id": 15, "action": "GENERATE", "modelId": "nope", "prompt": "x"}),
            "not-loaded",
            "nope",
        ),
        (json!({"id": 16, "action": "LOAD_MODEL", "modelPath": "secret"}), "not-granted", "secret"),
        (json!({"id": 17}), "missing-field", "action"),
        (json!({"action": "CHAT", "modelId": "smollm2", "messages": []}), "missing-field", "id"),
        (json!({"id": 21, "action": "CANCEL"}), "missing-field", "targetId"),
    ] {
        let r = b.call(req.clone());
        assert_eq!(code(&r), want, "{req}: {r}");
        assert!(r["error"]["message"].as_str().unwrap().contains(names), "{req}: {r}");
    }
    let long = json!({"id": "x".repeat(2 << 20), "action": "GET_LOADED_MODELS"});
    assert_eq!(code(&b.call_anonymous(long)), "invalid-field");
    b.send_raw(&[2, 0, 0, 0, 0xff, 0xfe]);
    assert_eq!(b.host_error()["error"]["code"], "invalid-utf8");
    b.send_raw(&[0, 0, 0, 0]);
    assert_eq!(b.host_error()["error"]["code"], "empty-message");
    assert_eq!(
        ok(&b.call(json!({"id": 18, "action": "GET_LOADED_MODELS"})))["models"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let u = b.call(json!({"id": 19, "action": "UNLOAD_MODEL", "modelId": "smollm2"}));
    assert_eq!(ok(&u)["unloaded"], true);
    let state = b.call(json!({"id": 20, "action": "GET_MODEL_STATE", "modelId": "smollm2"}));
    assert_eq!(ok(&state)["isLoaded"], false);
    let (status, took) = b.close();
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(2), "exit on stdin EOF took {took:?}");
}

#[test]
fn frames_over_the_limit_or_cut_short_end_the_host_cleanly() {
    let mut b = Browser::start(&[], &[]);
    b.send_raw(&((64u32 << 20) + 1).to_ne_bytes());
    assert_eq!(b.host_error()["error"]["code"], "frame-too-large");
    let (status, _) = b.close();
    assert_eq!(status.code(), Some(1));

    let mut b = Browser::start(&[], &[]);
    let mut cut = 100u32.to_ne_bytes().to_vec();
    cut.extend(b"{\"id\":1,");
    b.send_raw(&cut);
    let (status, _) = b.close();
    assert!(status.success(), "a clean exit, and nothing on stdout: {status}");
}

#[test]
fn load_model_of_an_allowed_repository_pulls_it_with_progress_first() {
    let server = smol_server();
    server.throttle(Some(50 << 20));
    let cache = temp_dir("nm-pull");
    let env = [("HF_ENDPOINT", server.endpoint()), ("HF_HUB_CACHE", cache.to_str().unwrap())];
    let mut b = Browser::start(&["--allow-pull", "HuggingFaceTB/*", "--pull", "never"], &env);
    let r = b.call(
        json!({"id": 1, "action": "LOAD_MODEL", "modelPath": "other/repo", "modelFile": "x.gguf"}),
    );
    assert_eq!(code(&r), "not-granted", "{r}");
    b.send(&json!({"id": 2, "action": "LOAD_MODEL", "modelPath": REPO, "modelFile": "Q4_1"}));
    b.send(&json!({"id": 3, "action": "GET_SYSTEM_RESOURCES"}));
    let (_, sys) = b.until_final(&json!(3));
    ok(&sys);
    let (progress, loaded) = b.until_final(&json!(2));
    let pct: Vec<f64> =
        progress.iter().map(|p| p["payload"]["progress"].as_f64().unwrap()).collect();
    assert!(pct.windows(2).all(|w| w[0] <= w[1]), "{pct:?}");
    assert!(pct.iter().any(|&p| p > 0.0 && p < 100.0), "progress on the way: {pct:?}");
    assert_eq!(pct.last(), Some(&100.0));
    let p = ok(&loaded);
    assert_eq!(p["vocabSize"], 49152);
    assert_eq!(p["modelId"], format!("{REPO}:Q4_1"));
    // Cached now: a second router loads it with no download.
    server.clear_log();
    let again = b
        .call(json!({"id": 4, "action": "DOWNLOAD_MODEL", "modelPath": REPO, "modelFile": "Q4_1"}));
    assert_eq!(ok(&again)["downloaded"], true);
    assert!(server.downloads().is_empty());
    assert!(progress.len() < 40, "progress a few times a second, not per read: {}", progress.len());
    let (status, _) = b.close();
    assert!(status.success());
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn install_writes_a_manifest_and_a_launcher_that_serves_and_uninstall_removes_them() {
    let dir = temp_dir("nm-install");
    let router = ROUTER.path();
    let grant = format!("smollm2={}", model_path().display());
    let id = "abcdefghijklmnopabcdefghijklmnop";
    let host = |args: &[&str]| {
        let out = Command::new(tabagent_tests::host_bin()).args(args).output().unwrap();
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let base = ["native-messaging", "install", "--extension-id", id, "--browser", "chromium"];
    let mut args: Vec<&str> = base.to_vec();
    args.extend([
        "--router",
        router.to_str().unwrap(),
        "--manifest-dir",
        dir.to_str().unwrap(),
        "--model",
        &grant,
    ]);
    let mut print = args.clone();
    print.push("--print");
    let (status, shown, err) = host(&print);
    assert!(status.success(), "{err}");
    assert!(
        shown.contains("com.tabagent.host.json") && shown.contains("allowed_origins"),
        "{shown}"
    );
    assert!(std::fs::read_dir(&dir).unwrap().next().is_none(), "--print writes nothing");

    let (status, _, err) = host(&args);
    assert!(status.success(), "{err}");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("com.tabagent.host.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["name"], "com.tabagent.host");
    assert_eq!(manifest["type"], "stdio");
    assert_eq!(manifest["allowed_origins"], json!([format!("chrome-extension://{id}/")]));
    let launcher = std::path::PathBuf::from(manifest["path"].as_str().unwrap());
    assert!(launcher.is_absolute());

    // The browser starts the launcher with the caller's origin; it serves the protocol.
    let mut child = Command::new(&launcher)
        .arg(format!("chrome-extension://{id}/"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let req = json!({"id": 1, "action": "LOAD_MODEL", "modelPath": "smollm2"}).to_string();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&(req.len() as u32).to_ne_bytes()).unwrap();
    stdin.write_all(req.as_bytes()).unwrap();
    drop(stdin);
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    assert!(child.wait().unwrap().success());
    let len = u32::from_ne_bytes(out[..4].try_into().unwrap()) as usize;
    let answer: Value = serde_json::from_slice(&out[4..4 + len]).unwrap();
    assert_eq!(answer["payload"]["vocabSize"], 49152, "{answer}");

    // Firefox starts the launcher with the manifest's path and the add-on's id.
    let mut child = Command::new(&launcher)
        .args([
            "/home/u/.mozilla/native-messaging-hosts/com.tabagent.host.json",
            "tabagent@example.org",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success(), "the host takes Firefox's two arguments");

    // Firefox names extensions, not origins.
    let ff = dir.join("firefox");
    let (status, _, err) = host(&[
        "native-messaging",
        "install",
        "--extension-id",
        "tabagent@example.org",
        "--browser",
        "firefox",
        "--router",
        router.to_str().unwrap(),
        "--manifest-dir",
        ff.to_str().unwrap(),
    ]);
    assert!(status.success(), "{err}");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(ff.join("com.tabagent.host.json")).unwrap()).unwrap();
    assert_eq!(manifest["allowed_extensions"], json!(["tabagent@example.org"]));

    let (status, _, err) = host(&[
        "native-messaging",
        "install",
        "--extension-id",
        "nope",
        "--manifest-dir",
        dir.to_str().unwrap(),
    ]);
    assert!(!status.success() && err.contains("32 letters"), "{err}");
    let (status, _, err) = host(&[
        "native-messaging",
        "uninstall",
        "--browser",
        "chromium",
        "--manifest-dir",
        dir.to_str().unwrap(),
    ]);
    assert!(status.success(), "{err}");
    assert!(!dir.join("com.tabagent.host.json").exists() && !launcher.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn closing_stdin_mid_stream_ends_the_host_at_once() {
    let mut b = Browser::start(&[], &[]);
    ok(&b.call(json!({"id": 1, "action": "LOAD_MODEL", "modelPath": "smollm2"})));
    b.send(&json!({"id": 2, "action": "GENERATE", "modelId": "smollm2", "prompt": "Once", "options": {"max_tokens": 4000}}));
    let first = b.next_frame(Duration::from_secs(60));
    assert_eq!(first["status"], "streaming", "{first}");
    drop(b.stdin.take());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = b.child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "still running after stdin closed");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status}");
    // Not the 4000 tokens' time (about 40 s here): it stopped at once, whatever the load.
    assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
}
