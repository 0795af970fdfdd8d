//! The remote engine against llama.cpp's own `llama-server` (two of them, built by
//! `scripts/build-llama-tools.sh`) and against `tabagent-host serve`: the same guests give the same
//! greedy text as on the local engine; streaming, stop sequences, usage, tokenization and
//! embeddings; failover when an endpoint dies mid-run; the API key kept from guests, logs and
//! errors.

use crate::guests::{CHAT, EMBED, GENERATE, METADATA, OPENAI_SERVER, SANDBOX, TOKENIZE};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use tabagent_host::remote::RemoteSpec;
use tabagent_host::source::ModelSource;
use tabagent_tests::llama_server::LlamaServer;
use tabagent_tests::serve::Served;
use tabagent_tests::{host_bin, model_path, run_json, smollm2};

fn local_grant() -> String {
    format!("smollm2={}", model_path().display())
}

/// `tabagent-host run` of the chat example, greedy, with `args` (grants) and `env`.
fn chat(args: &[&str], prompt: &str, max_tokens: u32, env: &[(&str, &str)]) -> Output {
    Command::new(host_bin())
        .arg("run")
        .arg(CHAT.path())
        .args(args)
        .arg("--")
        .args(["--temperature", "0", "--max-tokens", &max_tokens.to_string(), prompt])
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn chat_text(args: &[&str], prompt: &str, max_tokens: u32) -> String {
    let out = chat(args, prompt, max_tokens, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn remote(spec: &str) -> BTreeMap<String, ModelSource> {
    BTreeMap::from([("smollm2".to_string(), ModelSource::Remote(RemoteSpec::parse(spec).unwrap()))])
}

const PROMPTS: [&str; 3] = [
    "Write a haiku about the sea.",
    "What is the capital of France? Answer in one sentence.",
    "List three colours.",
];

#[test]
fn the_chat_example_gives_the_same_greedy_text_on_llama_server_as_locally() {
    let (a, b) = (LlamaServer::start(&[]), LlamaServer::start(&[]));
    let grant = format!("smollm2=remote:{},{}", a.url(), b.url());
    for prompt in PROMPTS {
        let local = chat_text(&["--model", &local_grant()], prompt, 48);
        let remote = chat_text(&["--model", &grant], prompt, 48);
        assert!(!local.trim().is_empty());
        assert_eq!(remote, local, "{prompt}");
    }
    assert!(a.tasks() + b.tasks() >= PROMPTS.len(), "the servers did the work");
}

fn greedy_chat(max_tokens: u32) -> Value {
    json!({
        "prompt": { "chat": [{ "role": "user", "content": PROMPTS[1] }] },
        "options": { "temperature": 0.0, "max_tokens": max_tokens },
        "mode": "both",
    })
}

fn pieces(run: &Value) -> String {
    run["stream"]["pieces"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect()
}

#[tokio::test]
async fn streaming_stop_sequences_usage_tokenizing_and_embeddings_work_remotely() {
    let server = LlamaServer::start(&[]);
    let grant = remote(&format!("remote:{}", server.url()));
    let local = run_json(GENERATE, smollm2(), &[&greedy_chat(40).to_string()]).await;
    let far = run_json(GENERATE, grant.clone(), &[&greedy_chat(40).to_string()]).await;
    let (l, r) = (&local["runs"][0], &far["runs"][0]);
    let text = l["generate"]["ok"]["text"].as_str().unwrap().to_string();
    assert_eq!(r["generate"]["ok"]["text"], text.as_str(), "{far}");
    assert_eq!(pieces(r), text, "streamed pieces make up the text");
    assert_eq!(r["stream"]["outcome"]["text"], text.as_str());
    assert_eq!(r["generate"]["ok"]["finish"], l["generate"]["ok"]["finish"]);
    let (lu, ru) = (&l["generate"]["ok"]["usage"], &r["generate"]["ok"]["usage"]);
    assert_eq!(ru["prompt_tokens"], lu["prompt_tokens"], "{ru} vs {lu}");
    // llama-server counts the end-of-generation token as generated; the local engine does not.
    let (lg, rg) =
        (lu["generated_tokens"].as_u64().unwrap(), ru["generated_tokens"].as_u64().unwrap());
    assert!(rg == lg || rg == lg + 1, "{rg} vs {lg}");
    assert_eq!(r["generate"]["ok"]["tokens"], json!([]), "no token ids come back");

    // A stop sequence the server applies ends with `stop`; one past the four the API takes is
    // cut here and ends with `stop-sequence`; the text is the same either way.
    let stop = text.split_whitespace().nth(1).unwrap().to_string();
    let cut = &text[..text.find(&stop).unwrap()];
    for (stops, finish) in
        [(json!([stop]), "stop"), (json!(["@@1", "@@2", "@@3", "@@4", stop]), "stop-sequence")]
    {
        let mut req = greedy_chat(40);
        req["options"]["stop"] = stops;
        let v = run_json(GENERATE, grant.clone(), &[&req.to_string()]).await;
        let g = &v["runs"][0]["generate"]["ok"];
        assert_eq!(g["text"], cut, "{v}");
        assert_eq!(g["finish"], finish, "{v}");
        assert_eq!(pieces(&v["runs"][0]), cut);
    }

    // Tokenizing, detokenizing and the chat template come from the server: the same as local.
    let texts = ["Hello, world!", "WebAssembly components"];
    let local = run_json(TOKENIZE, smollm2(), &texts).await;
    let far = run_json(TOKENIZE, grant.clone(), &texts).await;
    assert_eq!(far, local);

    // Embeddings: the same vectors, up to rounding.
    let texts = ["The cat sat on the mat.", "A cat is sitting on a mat.", "Stock prices fell."];
    let local = run_json(EMBED, smollm2(), &texts).await;
    let far = run_json(EMBED, grant.clone(), &texts).await;
    let (lc, rc) = (local["cosine"].as_array().unwrap(), far["cosine"].as_array().unwrap());
    for (lrow, rrow) in lc.iter().zip(rc) {
        for (x, y) in lrow.as_array().unwrap().iter().zip(rrow.as_array().unwrap()) {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!((x - y).abs() < 2e-3, "cosines {local} vs {far}");
        }
    }
    assert_eq!(far["lengths"], local["lengths"]);
}

/// A file removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A config file granting `smollm2` on `urls` with a client policy for the failover tests.
fn config(urls: &[String], extra: &str) -> TempFile {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let file = TempFile(
        tabagent_tests::scratch().join(format!("tabagent-remote-{}-{n}.toml", std::process::id())),
    );
    let urls: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    std::fs::write(
        file.path(),
        format!(
            "[models.smollm2]\nremote = [{}]\nmax-concurrent = 1\nretries = 3\nhealth-interval-ms = 300\nbreaker-cooldown-ms = 500\nqueue-timeout-secs = 120\n{extra}",
            urls.join(", ")
        ),
    )
    .unwrap();
    file
}

fn stream_request(max_tokens: u32) -> Value {
    json!({
        "model": "smollm2",
        "messages": [{ "role": "user", "content": "Tell me a long story about a dragon and a knight." }],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": true,
    })
}

/// Whether a streamed reply ended as it should: a complete body whose events hold no error and
/// end with `[DONE]`.
fn finished(r: &tabagent_tests::serve::Reply) -> bool {
    r.status == 200
        && r.complete
        && r.body.contains("data: [DONE]")
        && !r.body.contains("\"error\"")
}

#[test]
fn an_endpoint_killed_mid_run_fails_only_its_stream_and_traffic_returns_when_it_is_back() {
    let (mut a, b) = (LlamaServer::start(&[]), LlamaServer::start(&[]));
    let file = config(&[a.url(), b.url()], "");
    let mut server = Served::start_with(
        &OPENAI_SERVER.path(),
        &["--config", file.path().to_str().unwrap()],
        &[],
    );
    // Four streams, one endpoint each at a time: two stream, two wait in the queue.
    let replies: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    server.request("POST", "/v1/chat/completions", Some(&stream_request(400)))
                })
            })
            .collect();
        let until = Instant::now() + Duration::from_secs(60);
        while a.tasks() == 0 || b.tasks() == 0 {
            assert!(Instant::now() < until, "both endpoints should get a stream");
            std::thread::sleep(Duration::from_millis(20));
        }
        // Let the stream on `a` show some text, then kill it.
        std::thread::sleep(Duration::from_millis(700));
        a.kill();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let failed: Vec<_> = replies.iter().filter(|r| !finished(r)).collect();
    assert_eq!(failed.len(), 1, "only the stream from the killed endpoint fails: {replies:#?}");
    assert!(
        failed[0].body.contains("not restarted elsewhere") && failed[0].body.contains("data: "),
        "it had begun, and says why it ended: {}",
        failed[0].body
    );
    assert!(b.tasks() >= 3, "the queued requests moved to the live endpoint");
    assert!(server.alive());
    assert_eq!(server.health()["status"], "ok");

    // Back on its port, the endpoint gets traffic again once a health check passes.
    let before = a.tasks();
    a.restart();
    std::thread::sleep(Duration::from_millis(1200));
    let replies: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    server.request("POST", "/v1/chat/completions", Some(&stream_request(16)))
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(replies.iter().all(finished), "{replies:#?}");
    assert!(a.tasks() > before, "the endpoint that came back serves again");
}

#[test]
fn a_client_that_leaves_mid_stream_stops_the_remote_generation() {
    use std::io::{Read, Write};
    let upstream = LlamaServer::start(&[]);
    let grant = format!("smollm2=remote:{}", upstream.url());
    let server = Served::start_with(&OPENAI_SERVER.path(), &["--model", &grant], &[]);
    let body = stream_request(1500).to_string();
    let mut s = std::net::TcpStream::connect(server.addr).unwrap();
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while seen.matches("data: ").count() < 4 {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "the stream ended early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert_eq!(upstream.busy_slots(), 1, "the server is generating");
    drop(s);
    // 1500 tokens take many seconds; the dropped stream ends the server's generation at once.
    let until = Instant::now() + Duration::from_secs(3);
    while upstream.busy_slots() > 0 {
        assert!(Instant::now() < until, "the upstream generation went on after the client left");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_endpoint_down_from_the_start_is_skipped_and_all_down_is_a_clear_error() {
    let b = LlamaServer::start(&[]);
    let dead = format!(
        "http://127.0.0.1:{}/v1",
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    );
    let grant = format!("smollm2=remote:{dead},{}", b.url());
    for prompt in &PROMPTS[..2] {
        assert_eq!(
            chat_text(&["--model", &grant], prompt, 16),
            chat_text(&["--model", &local_grant()], prompt, 16)
        );
    }
    let out = chat(&["--model", &format!("smollm2=remote:{dead}")], PROMPTS[0], 8, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no endpoint answered") && err.contains("refused"), "{err}");
}

/// A server that lists a model and then never answers anything else: counts the requests
/// (completions) it was sent.
fn stalling_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&hits);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let counter = std::sync::Arc::clone(&counter);
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && conn.read(&mut b).unwrap_or(0) == 1 {
                    head.push(b[0]);
                }
                if String::from_utf8_lossy(&head).starts_with("GET /v1/models") {
                    let body = r#"{"object":"list","data":[{"id":"smollm2","object":"model"}]}"#;
                    let _ = write!(
                        conn,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                } else if head.starts_with(b"POST") {
                    counter.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_secs(60));
                }
            });
        }
    });
    (url, hits)
}

#[tokio::test]
async fn a_stalled_endpoint_times_out_fails_over_and_trips_its_breaker() {
    let live = LlamaServer::start(&[]);
    let (stalled, hits) = stalling_server();
    let mut spec = RemoteSpec::parse(&format!("remote:{stalled},{}", live.url())).unwrap();
    spec.response_timeout = Duration::from_millis(700);
    spec.breaker_failures = 3;
    spec.breaker_cooldown = Duration::from_secs(120);
    spec.health_interval = Duration::from_secs(120);
    let grant = BTreeMap::from([("smollm2".to_string(), ModelSource::Remote(spec))]);
    // One guest, ten generations one after the other, on one shared pool of endpoints.
    let mut req = greedy_chat(8);
    req["mode"] = json!("generate");
    req["repeat"] = json!(10);
    let started = Instant::now();
    let v = run_json(GENERATE, grant, &[&req.to_string()]).await;
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 10);
    assert!(
        runs.iter().all(|r| r["generate"]["ok"]["text"].is_string()),
        "every one finished: {v}"
    );
    let hits = hits.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(hits, 3, "three timeouts open the breaker, then the stalled endpoint gets nothing");
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
}

#[test]
fn a_guest_runs_against_tabagent_host_serve_as_its_remote_engine() {
    let upstream = Served::start(&OPENAI_SERVER.path(), &[]);
    let grant = format!("smollm2=remote:{}/v1#smollm2", upstream.url());
    for prompt in &PROMPTS[..2] {
        let local = chat_text(&["--model", &local_grant()], prompt, 32);
        assert_eq!(chat_text(&["--model", &grant], prompt, 32), local, "{prompt}");
    }
    // What the OpenAI API lacks (tokenizing) is a clear `unsupported`, not a crash of the host.
    let out = Command::new(host_bin())
        .arg("run")
        .arg(TOKENIZE.path())
        .args(["--model", &grant, "--", "x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Unsupported") && err.contains("does not offer it"), "{err}");
    assert_eq!(upstream.health()["status"], "ok", "the upstream stays up");
}

const KEY: &str = "sk-tabagent-test-4f1c2d9e8b7a6655";

#[test]
fn the_api_key_reaches_the_server_and_never_the_guest_the_logs_or_an_error() {
    let server = LlamaServer::start(&["--api-key", KEY]);
    let file = config(&[server.url()], "api-key-env = \"TABAGENT_TEST_REMOTE_KEY\"\n");
    let cfg = ["--config", file.path().to_str().unwrap()];
    let trace = [("TABAGENT_LOG", "trace"), ("RUST_LOG", "trace")];
    let with_key = [&trace[..], &[("TABAGENT_TEST_REMOTE_KEY", KEY)]].concat();
    let out = chat(&cfg, PROMPTS[0], 16, &with_key);
    let all =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{all}");
    assert!(!String::from_utf8_lossy(&out.stdout).trim().is_empty());
    assert!(all.contains("TRACE"), "trace logs were on");
    assert!(!all.contains(KEY), "the key is in the output:\n{all}");
    // What a guest can see: its environment, the model's metadata, its grants.
    for guest in [SANDBOX, METADATA] {
        let out = Command::new(host_bin())
            .arg("run")
            .arg(guest.path())
            .args(cfg)
            .envs(with_key.iter().copied())
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(all.contains("smollm2"), "{}: {all}", guest.name);
        assert!(!all.contains(KEY), "{} saw the key:\n{all}", guest.name);
    }
    // A wrong key: refused by the server, with neither key in the error or the logs.
    let wrong = "sk-wrong-key-000000000000000000";
    let env = [&trace[..], &[("TABAGENT_TEST_REMOTE_KEY", wrong)]].concat();
    let out = chat(&cfg, PROMPTS[0], 8, &env);
    let all =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success());
    assert!(all.contains("401"), "{all}");
    assert!(!all.contains(wrong) && !all.contains(KEY), "{all}");
    // No key at all: the variable is named, as is what to do.
    let out = chat(&cfg, PROMPTS[0], 8, &trace);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("TABAGENT_TEST_REMOTE_KEY is not set"), "{err}");
}
