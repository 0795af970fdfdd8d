//! llama.cpp's own `llama-server` (built by `scripts/build-llama-tools.sh`) on 127.0.0.1 with the
//! test model: the remote engine's reference peer. Killed when dropped; can be killed and
//! started again on the same port.

use crate::model_path;
use crate::serve::raw;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `llama-server` binary: `$TABAGENT_LLAMA_TOOLS/bin`, or `~/.cache/tabagent/llama-tools/bin`.
pub fn llama_server_bin() -> PathBuf {
    let tools = std::env::var_os("TABAGENT_LLAMA_TOOLS").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/tabagent/llama-tools")
    });
    let bin = tools.join("bin/llama-server");
    assert!(bin.is_file(), "{} is missing: run scripts/build-llama-tools.sh", bin.display());
    bin
}

/// A running `llama-server`.
pub struct LlamaServer {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    args: Vec<String>,
    log: PathBuf,
}

/// The options every test server gets: the test model, one thread, 2 slots of 2048 tokens, the
/// file's Jinja chat template (as the host renders it), embeddings with mean pooling. The KV cache is unified: in this release, with
/// two slots and a split cache, a batch of several texts gets a wrong vector for the second.
const BASE: &str = "-t 1 -c 4096 -np 2 -kvu --jinja --embeddings --pooling mean --no-webui --host 127.0.0.1 --no-warmup";

impl LlamaServer {
    /// Start one on a free port with the test model and `extra` options; waits until it is
    /// ready.
    pub fn start(extra: &[&str]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut args: Vec<String> = BASE.split(' ').map(str::to_string).collect();
        args.extend(["-m".into(), model_path().display().to_string()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = crate::scratch()
            .join(format!("tabagent-llama-server-{}-{port}.log", std::process::id()));
        let _ = std::fs::remove_file(&log);
        let mut s = Self { child: None, port, args, log };
        s.restart();
        s
    }

    /// `http://127.0.0.1:PORT/v1`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Kill it (SIGKILL: a crash, not a shutdown).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it (again) on its port, its log appended to; waits until it is ready.
    pub fn restart(&mut self) {
        self.kill();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new(llama_server_bin())
            .args(&self.args)
            .args(["--port", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start llama-server");
        self.child = Some(child);
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            if std::net::TcpStream::connect(self.addr()).is_ok() {
                let r = raw(
                    self.addr(),
                    b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                );
                if r.status == 200 {
                    return;
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("llama-server exited ({status}):\n{}", self.log());
            }
            assert!(Instant::now() < until, "llama-server did not get ready:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Everything it logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Slots generating or embedding now (`GET /slots`).
    pub fn busy_slots(&self) -> usize {
        let r = raw(self.addr(), b"GET /slots HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert_eq!(r.status, 200, "{}", r.body);
        let slots: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        slots.as_array().unwrap().iter().filter(|s| s["is_processing"] == true).count()
    }

    /// Tasks it has started (completions and embeddings), from its log.
    pub fn tasks(&self) -> usize {
        self.log().matches("launch_slot_").count()
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}
