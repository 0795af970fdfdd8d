//! TabAgent's path in a real browser: Debian's Chromium, headless, loads a small test extension
//! (`tests/browser/extension`, fixed `key`, so a fixed id) whose service worker connects to
//! `tabagent-host` with `chrome.runtime.connectNative`, runs LOAD_MODEL, a streamed CHAT and
//! UNLOAD_MODEL, and posts the answers to a listener of this test. The host manifest is written
//! with `tabagent-host native-messaging install` into the profile's `NativeMessagingHosts`.

use crate::guests::ROUTER;
use crate::hub::temp_dir;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use tabagent_tests::{model_path, repo_root};

/// Chromium: `$TABAGENT_CHROMIUM`, or `chromium` on the PATH (scripts/setup.sh installs it).
fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("TABAGENT_CHROMIUM") {
        return p.into();
    }
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path).map(|d| d.join("chromium")).find(|p| p.is_file())
    });
    found.expect("chromium is not installed: scripts/setup.sh installs it (apt install chromium)")
}

/// A Chromium extension's id: the first 128 bits of the SHA-256 of its public key, as letters a–p.
fn extension_id(key_base64: &str) -> String {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut der = Vec::new();
    for c in key_base64.bytes().filter(|&c| c != b'=') {
        let v = alphabet.iter().position(|&a| a == c).expect("base64") as u32;
        bits = bits << 6 | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            der.push((bits >> n) as u8);
        }
    }
    Sha256::digest(&der)[..16]
        .iter()
        .flat_map(|b| [b >> 4, b & 15])
        .map(|x| (b'a' + x) as char)
        .collect()
}

/// The body of one POST: its request's headers, then `Content-Length` bytes.
fn read_post(stream: std::net::TcpStream) -> Option<Value> {
    stream.set_read_timeout(Some(Duration::from_secs(120))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut first = String::new();
    reader.read_line(&mut first).ok()?;
    let mut len = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).ok()?;
    let mut out = stream;
    let _ = out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    first.starts_with("POST").then(|| serde_json::from_slice(&body).ok())?
}

/// Send the first POST that arrives on `listener` (Chromium may open idle sockets first).
fn serve_posts(listener: TcpListener, tx: mpsc::Sender<Value>) {
    for stream in listener.incoming().flatten() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            if let Some(v) = read_post(stream) {
                let _ = tx.send(v);
            }
        });
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn a_real_chromium_extension_loads_chats_and_unloads_through_native_messaging() {
    let dir = temp_dir("chromium");
    let ext = dir.join("extension");
    copy_dir(&repo_root().join("tests/browser/extension"), &ext);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(ext.join("manifest.json")).unwrap()).unwrap();
    let id = extension_id(manifest["key"].as_str().unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let report = format!("http://{}/result", listener.local_addr().unwrap());
    std::fs::write(ext.join("config.json"), serde_json::json!({ "report": report }).to_string())
        .unwrap();
    let profile = dir.join("profile");
    let grant = format!("smollm2={}", model_path().display());
    let out = Command::new(tabagent_tests::host_bin())
        .args(["native-messaging", "install", "--extension-id", &id, "--browser", "chromium"])
        .args(["--router", ROUTER.path().to_str().unwrap(), "--model", &grant, "--manifest-dir"])
        .arg(profile.join("NativeMessagingHosts"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || serve_posts(listener, tx));
    let mut browser = Command::new(chromium())
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
        ])
        .arg("--disable-features=DisableLoadExtensionCommandLineSwitch")
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--load-extension={}", ext.display()))
        .arg(format!("--disable-extensions-except={}", ext.display()))
        .arg("--enable-logging=stderr")
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("chromium.log")).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    let result = rx.recv_timeout(Duration::from_secs(120));
    // Chromium and its children (renderers, the native host) go with their process group.
    let group = format!("-{}", browser.id());
    let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
    let _ = browser.wait();
    let log = || std::fs::read_to_string(dir.join("chromium.log")).unwrap_or_default();
    let r = result.unwrap_or_else(|_| {
        panic!("the extension reported nothing within 120 s; Chromium said:\n{}", log())
    });
    assert_eq!(r["load"]["status"], "success", "{r}");
    assert_eq!(r["load"]["payload"]["vocabSize"], 49152);
    assert_eq!(r["load"]["payload"]["embeddingDim"], 576);
    assert_eq!(r["chat"]["status"], "success", "{r}");
    assert_eq!(r["chat"]["payload"]["finishReason"], "length");
    let chunks = r["chunks"].as_array().unwrap();
    assert_eq!(chunks.len() as u64, r["chat"]["payload"]["chunks"].as_u64().unwrap());
    assert!(chunks.len() >= 2, "the reply streamed in chunks: {r}");
    assert!(chunks.iter().all(|c| c["id"] == 2 && c["payload"]["text"].is_string()));
    assert_eq!(r["unload"]["payload"]["unloaded"], true, "{r}");
    std::fs::remove_dir_all(&dir).unwrap();
}
