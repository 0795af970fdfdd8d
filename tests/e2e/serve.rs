//! `tabagent-host serve` with the openai-server example, through the official `openai` Python
//! client and through raw sockets; and the server's containment of hostile guests.

use crate::guests::{CHAT, HTTP_ABUSE, OPENAI_SERVER};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};
use tabagent_tests::serve::{Served, raw, read_reply};
use tabagent_tests::{host_bin, model_path, python, repo_root};

/// The chat example's greedy reply to `prompt`.
fn chat_example(prompt: &str, max_tokens: u32) -> String {
    let out = Command::new(host_bin())
        .args(["run"])
        .arg(CHAT.path())
        .args(["--model", &format!("smollm2={}", model_path().display()), "--"])
        .args(["--temperature", "0", "--max-tokens", &max_tokens.to_string(), prompt])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    text.strip_suffix('\n').unwrap_or(&text).to_string()
}

#[test]
fn the_openai_client_lists_chats_streams_completes_embeds_and_gets_each_error() {
    let (prompt, max_tokens) = ("What is WebAssembly? Answer in one sentence.", 24);
    let expected = chat_example(prompt, max_tokens);
    assert!(!expected.is_empty());
    // Eight sequences, so that the client's eight concurrent streams all run at once (by
    // default four are decoded together and the rest wait).
    let server = Served::start(&OPENAI_SERVER.path(), &["--parallel", "8"]);
    let busy = Served::start(&OPENAI_SERVER.path(), &["--max-running", "1", "--max-waiting", "0"]);
    let out = Command::new(python())
        .arg(repo_root().join("tests/openai/check_client.py"))
        .env("BASE_URL", server.url())
        .env("BUSY_URL", busy.url())
        .env("PROMPT", prompt)
        .env("MAX_TOKENS", max_tokens.to_string())
        .env("EXPECTED", &expected)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the openai client's checks failed:\n{stdout}\n{}\n--- server:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.stderr()
    );
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    eprintln!("{summary:#}");
    let e = &summary["errors"];
    assert_eq!(e["unknown model"], "model_not_found");
    assert_eq!(e["temperature"], "temperature");
    assert_eq!(e["n"], "n");
    assert_eq!(e["oversize body"], "request_too_large");
    assert_eq!(e["busy"], "server_busy");
    assert_eq!(e["tool type"], "tools[0]");
    assert_eq!(e["tool choice"], "tool_choice");
    assert_eq!(e["tools with response_format"], "response_format");
    assert_eq!(e["tool message without id"], "messages[1].tool_call_id");
    let t = &summary["tools"];
    assert_eq!(t["required"][0][0], "get_weather", "{t}");
    assert!(!t["answer"].as_str().unwrap().trim().is_empty(), "{t}");
    // When the dropped client's session ended, most of the others were still streaming.
    assert!(summary["drop"]["others_still_streaming"].as_u64().unwrap() >= 4, "{summary}");
    let h = server.health();
    assert_eq!(h["requests"]["failed"], 0, "{h}");
    assert_eq!(h["requests"]["running"], 0, "{h}");
}

fn chat_request(content: &str) -> Value {
    json!({"model": "smollm2", "messages": [{"role": "user", "content": content}], "max_tokens": 4, "temperature": 0})
}

#[test]
fn hostile_http_input_is_answered_or_cut_off_without_affecting_other_clients() {
    let server =
        Served::start(&OPENAI_SERVER.path(), &["--body-timeout", "2", "--header-timeout", "3"]);
    let addr = server.addr;
    // Malformed JSON and wrong types: 400, naming the field.
    let r = server.request("POST", "/v1/chat/completions", None);
    assert_eq!(r.status, 400, "{r:?}");
    let bad = "{\"a\":}";
    let r = raw(addr, format!("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{bad}", bad.len()).as_bytes());
    assert_eq!(
        (r.status, r.json()["error"]["type"].as_str()),
        (400, Some("invalid_request_error"))
    );
    for (body, param) in [
        (json!({"model": 7, "messages": [{"role": "user", "content": "x"}]}), "model"),
        (
            json!({"model": "smollm2", "messages": [{"role": "user", "content": 5}]}),
            "messages[0].content",
        ),
        (
            json!({"model": "smollm2", "messages": [{"role": "user", "content": "x"}], "max_tokens": "many"}),
            "max_tokens",
        ),
        (
            json!({"model": "smollm2", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}),
            "stream",
        ),
        (json!({"model": "smollm2", "input": [1, 2]}), "input"),
    ] {
        let path =
            if body.get("input").is_some() { "/v1/embeddings" } else { "/v1/chat/completions" };
        let r = server.request("POST", path, Some(&body));
        assert_eq!(
            (r.status, r.json()["error"]["param"].as_str()),
            (400, Some(param)),
            "{body}: {r:?}"
        );
    }

    // A slow client that never finishes its body holds no slot, and others are served meanwhile.
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"model\":",
    )
    .unwrap();
    let started = Instant::now();
    let r = server.request("POST", "/v1/chat/completions", Some(&chat_request("Hi")));
    assert_eq!(r.status, 200, "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "served while the slow body was pending");
    slow.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let r = read_reply(&mut slow);
    assert_eq!(r.status, 408, "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(20));

    // A 100 MB body: refused from its Content-Length, before it is sent...
    let head = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n";
    let r = raw(addr, head.as_bytes());
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (413, Some("request_too_large")));
    // ...and, chunked, cut off once past the limit.
    let mut big = TcpStream::connect(addr).unwrap();
    big.write_all(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    let chunk = [b"100000\r\n".as_slice(), &vec![b'a'; 1 << 20], b"\r\n"].concat();
    let mut sent = 0;
    while sent < 100 && big.write_all(&chunk).is_ok() {
        sent += 1;
    }
    assert!(sent < 100, "the server read 100 MB of body");
    let _ = big.shutdown(std::net::Shutdown::Write);
    big.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = Vec::new();
    let _ = big.read_to_end(&mut buf);
    let r = tabagent_tests::serve::parse_reply(&buf);
    assert!(r.status == 413 || r.status == 0, "{r:?}");

    // A header flood, and one enormous header: 431.
    let mut flood = String::from("GET /v1/models HTTP/1.1\r\nHost: x\r\n");
    for i in 0..500 {
        flood.push_str(&format!("X-Flood-{i}: {i}\r\n"));
    }
    flood.push_str("\r\n");
    assert_eq!(raw(addr, flood.as_bytes()).status, 431);
    let huge =
        format!("GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "b".repeat(200 << 10));
    let r = raw(addr, huge.as_bytes());
    assert!(r.status == 431 || r.status == 0, "{r:?}");
    // No Host header at all.
    assert_eq!(raw(addr, b"GET /v1/models HTTP/1.0\r\n\r\n").status, 400);

    // Still serving.
    let r = server.request("POST", "/v1/chat/completions", Some(&chat_request("Hello")));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(server.health()["requests"]["failed"], 0);
}

#[test]
fn a_guest_that_traps_loops_hoards_or_ignores_its_client_fails_only_its_own_request() {
    let mut server = Served::start(&HTTP_ABUSE.path(), &["--timeout", "3", "--max-memory", "64"]);
    for path in ["/trap", "/loop", "/alloc", "/no-response"] {
        let t = Instant::now();
        let r = server.request("GET", path, None);
        assert_eq!(r.status, 500, "{path}: {r:?}");
        assert_eq!(r.json()["error"]["code"], "guest_failed", "{path}");
        assert!(t.elapsed() < Duration::from_secs(30), "{path} took {:?}", t.elapsed());
        assert_eq!(server.request("GET", "/ok", None).body, "ok", "after {path}");
    }
    assert!(server.alive());
    // Guests spinning in wasm hold no thread of the server: more loops than it has runtime
    // threads, and a plain request is still answered at once.
    let addr = server.addr;
    let loops: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                raw(addr, b"GET /loop HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").status
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    assert_eq!(server.request("GET", "/ok", None).body, "ok");
    assert!(t.elapsed() < Duration::from_secs(2), "answered in {:?} beside 4 loops", t.elapsed());
    assert!(loops.into_iter().all(|l| l.join().unwrap() == 500));
    // A guest that fails mid-stream: the client sees a cut-off body, not a finished one.
    let r = server.request("GET", "/trap-mid-stream", None);
    // (Hyper may drop the connection before it has flushed even the head.)
    assert!(r.status == 0 || (r.status == 200 && !r.complete), "{r:?}");
    // The loop ran into the deadline, the hoarder into the memory limit.
    let log = server.stderr();
    assert!(log.contains("deadline") || log.contains("time limit"), "{log}");
    assert!(log.contains("memory"), "{log}");

    // A streaming guest that ignores its client: the host stops it when the client goes away.
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.write_all(b"GET /deaf-stream HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.health()["models"][0]["sessions"] != 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(server.health()["models"][0]["sessions"], 1);
    drop(s);
    let dropped = Instant::now();
    while server.health()["models"][0]["sessions"] != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let h = server.health();
    assert_eq!(h["models"][0]["sessions"], 0, "{h}");
    assert_eq!(h["requests"]["abandoned"], 1, "{h}");
    eprintln!("the deaf stream's session ended {:?} after its client left", dropped.elapsed());
}

#[test]
fn a_client_that_stops_reading_is_cut_off_and_frees_its_slot() {
    let server = Served::start(&HTTP_ABUSE.path(), &["--write-timeout", "2", "--timeout", "120"]);
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.write_all(b"GET /flood HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    // Read nothing; the socket's buffers fill, then the server's writes stall.
    let t = Instant::now();
    let deadline = t + Duration::from_secs(60);
    while server.health()["requests"]["abandoned"] != 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let h = server.health();
    let counts = (h["requests"]["abandoned"].as_u64(), h["requests"]["running"].as_u64());
    assert_eq!(counts, (Some(1), Some(0)), "{h}");
    eprintln!("cut off {:?} after the request (write timeout 2 s)", t.elapsed());
    drop(s);
}

#[test]
fn outgoing_http_is_refused_unless_the_destination_is_granted() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let mut s = s;
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
            );
        }
    });
    let path = format!("/fetch/{port}");
    let denied = Served::start(&HTTP_ABUSE.path(), &[]);
    let r = denied.request("GET", &path, None);
    assert!(r.status == 502 && r.body.contains("HttpRequestDenied"), "{r:?}");
    let other = Served::start(&HTTP_ABUSE.path(), &["--allow-http", "127.0.0.1:1"]);
    assert_eq!(other.request("GET", &path, None).status, 502);
    let granted =
        Served::start(&HTTP_ABUSE.path(), &["--allow-http", &format!("127.0.0.1:{port}")]);
    let r = granted.request("GET", &path, None);
    assert_eq!((r.status, r.body.as_str()), (200, "hello"), "{r:?}");
}
