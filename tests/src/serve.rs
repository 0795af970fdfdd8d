//! `tabagent-host serve` as the tests and the load benchmark use it: the real binary on a free
//! port, and a raw HTTP/1.1 client that sends exactly the bytes it is given.

use crate::{host_bin, model_path};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running server; killed when dropped.
pub struct Served {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Served {
    /// Serve `wasm` with the test model granted as `smollm2`, and `extra` options.
    pub fn start(wasm: &Path, extra: &[&str]) -> Self {
        let grant = format!("smollm2={}", model_path().display());
        Self::start_with(wasm, &[&["--model", &grant], extra].concat(), &[])
    }

    /// Serve `wasm` with exactly `args` (grants included) and environment `env`.
    pub fn start_with(wasm: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(host_bin())
            .arg("serve")
            .arg(wasm)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tabagent-host serve");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut line = String::new();
            while err.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let Some(addr) = line.trim().strip_prefix("listening on http://") else {
            let _ = child.wait();
            panic!("the server did not start: {line:?}\n{}", stderr.lock().unwrap());
        };
        let addr = addr.parse().unwrap();
        Self { child, addr, stderr }
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// `GET /health`.
    pub fn health(&self) -> Value {
        let r = self.request("GET", "/health", None);
        assert_eq!(r.status, 200, "{}", r.body);
        serde_json::from_str(&r.body).unwrap()
    }

    /// One request on a new connection (closed after it).
    pub fn request(&self, method: &str, path: &str, json: Option<&Value>) -> Reply {
        let body = json.map(Value::to_string).unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.addr,
            body.len()
        );
        raw(self.addr, &[head.as_bytes(), body.as_bytes()].concat())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response read to the end of the connection.
#[derive(Debug)]
pub struct Reply {
    /// The status code (0 when the server closed without one).
    pub status: u16,
    /// The head, lowercased.
    pub head: String,
    /// The body (de-chunked).
    pub body: String,
    /// Whether the body ended as it should (a chunked body's last chunk came).
    pub complete: bool,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// Send `bytes` on a new connection and read until the server closes it.
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    // The server may answer (and close) before it has read everything: a failed write is fine.
    let _ = s.write_all(bytes);
    read_reply(&mut s)
}

/// Read a response until the server closes the connection.
pub fn read_reply(s: &mut TcpStream) -> Reply {
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse_reply(&buf)
}

/// Split a raw response into status, head and body.
pub fn parse_reply(buf: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let head = head.to_lowercase();
    let (body, complete) = if head.contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        (body.to_string(), true)
    };
    Reply { status, head, body, complete }
}

/// A chunked body's data (what arrived of it, if it was cut short), and whether its last
/// chunk came.
fn dechunk(mut rest: &str) -> (String, bool) {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 {
            return (out, true);
        }
        if after.len() < n {
            out.push_str(after);
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].strip_prefix("\r\n").unwrap_or(&after[n..]);
    }
    (out, false)
}
