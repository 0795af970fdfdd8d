//! A local server speaking the Hugging Face hub's protocol, for tests: the file list
//! (`/api/models/ORG/NAME/revision/REV`), `resolve` (`HEAD`/`GET …/resolve/REV/FILE`, answered
//! with a redirect to a second "CDN" path carrying `X-Repo-Commit`, `X-Linked-Etag` and
//! `X-Linked-Size`, as the hub does for LFS files), and the CDN (`/cdn/SHA`, with `Range`).
//! It logs every request and misbehaves on demand ([`Fault`]).

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the CDN answers one download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Send the headers and this many bytes of the body, then close the connection.
    DropAfter(u64),
    /// Ignore `Range` and send the whole file with 200.
    IgnoreRange,
    /// Announce and send fewer bytes than the file has.
    ShortBody,
    /// Announce and send more bytes than the file has.
    LongBody,
    /// Send more bytes than the file has without a `Content-Length` (close-delimited).
    LongBodyUnannounced,
    /// Send an HTML error page with 200 and `Content-Type: text/html`.
    Html,
}

/// One request the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// `GET` or `HEAD`.
    pub method: String,
    /// The path, with its query.
    pub path: String,
    /// The `Range` header.
    pub range: Option<String>,
    /// The `Authorization` header.
    pub auth: Option<String>,
}

#[derive(Clone)]
struct Blob {
    data: Arc<Vec<u8>>,
    /// The SHA-256 the hub announces (the real one unless a test says otherwise).
    sha: String,
    /// Stored in git itself, not LFS: served by `resolve` directly, with the git blob id as
    /// its ETag.
    git: bool,
}

/// The git blob id of bytes: `sha1("blob {len}\0" + bytes)`.
pub fn git_blob_id(data: &[u8]) -> String {
    use sha1::Digest as _;
    let mut h = sha1::Sha1::new();
    h.update(format!("blob {}\0", data.len()).as_bytes());
    h.update(data);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Default)]
struct State {
    /// repo → revision → commit.
    refs: HashMap<String, HashMap<String, String>>,
    /// (repo, commit) → file → blob.
    files: HashMap<(String, String), BTreeMap<String, Blob>>,
    /// announced sha → bytes.
    cdn: HashMap<String, Arc<Vec<u8>>>,
    faults: VecDeque<Fault>,
    /// Bytes per second of CDN bodies (none: as fast as it goes).
    throttle: Option<u64>,
    log: Vec<Logged>,
}

/// The hex SHA-256 of bytes.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// A running server; it stops with the test process. The CDN listens on a port of its own, so
/// it is another origin than the hub, as on the real hub.
#[derive(Clone)]
pub struct HubServer {
    endpoint: String,
    cdn: String,
    state: Arc<Mutex<State>>,
}

fn listen(state: &Arc<Mutex<State>>, cdn: Arc<Mutex<String>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().unwrap());
    let s = Arc::clone(state);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let s = Arc::clone(&s);
            let cdn = cdn.lock().unwrap().clone();
            std::thread::spawn(move || {
                let _ = serve(stream, &s, &cdn);
            });
        }
    });
    base
}

impl HubServer {
    /// Start on free ports of 127.0.0.1 (the hub, and its CDN).
    pub fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let cdn_base = Arc::new(Mutex::new(String::new()));
        let cdn = listen(&state, Arc::clone(&cdn_base));
        *cdn_base.lock().unwrap() = cdn.clone();
        let endpoint = listen(&state, cdn_base);
        Self { endpoint, cdn, state }
    }

    /// The value for `HF_ENDPOINT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Add a file (stored with LFS) to a commit of a repository, and point `main` at the commit.
    pub fn add_file(&self, repo: &str, commit: &str, file: &str, data: Arc<Vec<u8>>) {
        let sha = sha256_hex(&data);
        self.add_file_announcing(repo, commit, file, data, &sha);
    }

    /// The same, announcing `sha` as the file's SHA-256 (a wrong one, for tests).
    pub fn add_file_announcing(
        &self,
        repo: &str,
        commit: &str,
        file: &str,
        data: Arc<Vec<u8>>,
        sha: &str,
    ) {
        let mut st = self.state();
        st.cdn.insert(sha.to_string(), Arc::clone(&data));
        st.files
            .entry((repo.to_string(), commit.to_string()))
            .or_default()
            .insert(file.to_string(), Blob { data, sha: sha.to_string(), git: false });
        st.refs.entry(repo.to_string()).or_default().insert("main".into(), commit.to_string());
    }

    /// Add a file stored in git itself (small files), announcing `etag` as its blob id.
    pub fn add_git_file(
        &self,
        repo: &str,
        commit: &str,
        file: &str,
        data: Arc<Vec<u8>>,
        etag: &str,
    ) {
        let mut st = self.state();
        st.files
            .entry((repo.to_string(), commit.to_string()))
            .or_default()
            .insert(file.to_string(), Blob { data, sha: etag.to_string(), git: true });
        st.refs.entry(repo.to_string()).or_default().insert("main".into(), commit.to_string());
    }

    /// Point a branch or tag at a commit.
    pub fn set_ref(&self, repo: &str, revision: &str, commit: &str) {
        self.state()
            .refs
            .entry(repo.to_string())
            .or_default()
            .insert(revision.into(), commit.into());
    }

    /// Misbehave on the next download (faults queue up, one per download).
    pub fn push_fault(&self, fault: Fault) {
        self.state().faults.push_back(fault);
    }

    /// Send CDN bodies at about this many bytes per second.
    pub fn throttle(&self, bytes_per_sec: Option<u64>) {
        self.state().throttle = bytes_per_sec;
    }

    /// The CDN's origin.
    pub fn cdn(&self) -> &str {
        &self.cdn
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Logged> {
        self.state().log.clone()
    }

    /// The downloads so far (CDN `GET`s).
    pub fn downloads(&self) -> Vec<Logged> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "GET" && r.path.starts_with("/cdn/"))
            .collect()
    }

    /// Forget the request log.
    pub fn clear_log(&self) {
        self.state().log.clear();
    }
}

fn respond(
    out: &mut TcpStream,
    status: &str,
    headers: &[(&str, String)],
    body: &[u8],
    head: bool,
) -> std::io::Result<()> {
    let mut h = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (k, v) in headers {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    h.push_str("\r\n");
    out.write_all(h.as_bytes())?;
    if !head {
        out.write_all(body)?;
    }
    out.flush()
}

fn not_found(out: &mut TcpStream, code: &str, head: bool) -> std::io::Result<()> {
    let body = format!("{{\"error\":\"{code}\"}}");
    respond(
        out,
        "404 Not Found",
        &[("X-Error-Code", code.into()), ("Content-Length", body.len().to_string())],
        body.as_bytes(),
        head,
    )
}

fn serve(stream: TcpStream, state: &Mutex<State>, base: &str) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) =
        (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let head = method == "HEAD";
    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
    lock().log.push(Logged {
        method: method.clone(),
        path: path.clone(),
        range: headers.get("range").cloned(),
        auth: headers.get("authorization").cloned(),
    });
    let plain = path.split('?').next().unwrap_or("").to_string();
    if let Some(rest) = plain.strip_prefix("/api/models/") {
        // ORG/NAME/revision/REV
        let segs: Vec<&str> = rest.splitn(4, '/').collect();
        let [org, name, "revision", rev] = segs.as_slice() else {
            return not_found(&mut out, "RepoNotFound", head);
        };
        let repo = format!("{org}/{name}");
        let rev = rev.replace("%2F", "/");
        let st = lock();
        let Some(refs) = st.refs.get(&repo) else {
            drop(st);
            return not_found(&mut out, "RepoNotFound", head);
        };
        let commit = refs.get(&rev).cloned().unwrap_or(rev.clone());
        let Some(files) = st.files.get(&(repo.clone(), commit.clone())) else {
            drop(st);
            return not_found(&mut out, "RevisionNotFound", head);
        };
        let siblings: Vec<serde_json::Value> = files
            .iter()
            .map(|(f, b)| serde_json::json!({"rfilename": f, "size": b.data.len(), "lfs": {"sha256": b.sha, "size": b.data.len()}}))
            .collect();
        let body = serde_json::json!({"id": repo, "sha": commit, "siblings": siblings}).to_string();
        drop(st);
        return respond(
            &mut out,
            "200 OK",
            &[
                ("Content-Type", "application/json".into()),
                ("Content-Length", body.len().to_string()),
            ],
            body.as_bytes(),
            head,
        );
    }
    if let Some(sha) = plain.strip_prefix("/cdn/") {
        let (data, fault, throttle) = {
            let mut st = lock();
            let data = st.cdn.get(sha).cloned();
            let fault = if head { None } else { st.faults.pop_front() };
            (data, fault, st.throttle)
        };
        let Some(data) = data else { return not_found(&mut out, "EntryNotFound", head) };
        return cdn(&mut out, &data, headers.get("range"), fault, throttle, head);
    }
    // /ORG/NAME/resolve/REV/FILE
    let segs: Vec<&str> = plain.trim_start_matches('/').splitn(5, '/').collect();
    let [org, name, "resolve", rev, file] = segs.as_slice() else {
        return not_found(&mut out, "RepoNotFound", head);
    };
    let repo = format!("{org}/{name}");
    let rev = rev.replace("%2F", "/");
    let file = file.replace("%20", " ");
    let st = lock();
    let Some(refs) = st.refs.get(&repo) else {
        drop(st);
        return not_found(&mut out, "RepoNotFound", head);
    };
    let commit = refs.get(&rev).cloned().unwrap_or(rev.clone());
    let Some(files) = st.files.get(&(repo, commit.clone())) else {
        drop(st);
        return not_found(&mut out, "RevisionNotFound", head);
    };
    let Some(blob) = files.get(&file).cloned() else {
        drop(st);
        return not_found(&mut out, "EntryNotFound", head);
    };
    drop(st);
    if blob.git {
        let headers = [
            ("X-Repo-Commit", commit),
            ("ETag", format!("\"{}\"", blob.sha)),
            ("Content-Length", blob.data.len().to_string()),
        ];
        return respond(&mut out, "200 OK", &headers, &blob.data, head);
    }
    respond(
        &mut out,
        "302 Found",
        &[
            ("Location", format!("{base}/cdn/{}", blob.sha)),
            ("X-Repo-Commit", commit),
            ("X-Linked-Etag", format!("\"{}\"", blob.sha)),
            ("X-Linked-Size", blob.data.len().to_string()),
            ("ETag", "\"0123456789abcdef0123456789abcdef01234567\"".into()),
            ("Content-Length", "0".into()),
        ],
        b"",
        head,
    )
}

fn send(out: &mut TcpStream, body: &[u8], throttle: Option<u64>) -> std::io::Result<()> {
    let chunk = 64 << 10;
    for piece in body.chunks(chunk) {
        out.write_all(piece)?;
        if let Some(rate) = throttle {
            std::thread::sleep(Duration::from_secs_f64(piece.len() as f64 / rate as f64));
        }
    }
    out.flush()
}

fn cdn(
    out: &mut TcpStream,
    data: &[u8],
    range: Option<&String>,
    fault: Option<Fault>,
    throttle: Option<u64>,
    head: bool,
) -> std::io::Result<()> {
    let len = data.len() as u64;
    let octets = ("Content-Type", "application/octet-stream".to_string());
    let start = range
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split('-').next())
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|_| fault != Some(Fault::IgnoreRange));
    match fault {
        Some(Fault::Html) => {
            let page = b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>";
            return respond(
                out,
                "200 OK",
                &[("Content-Type", "text/html".into()), ("Content-Length", page.len().to_string())],
                page,
                head,
            );
        }
        Some(Fault::ShortBody) => {
            let body = &data[..data.len() / 2];
            return respond(
                out,
                "200 OK",
                &[octets, ("Content-Length", body.len().to_string())],
                body,
                head,
            );
        }
        Some(Fault::LongBody) => {
            let mut body = data.to_vec();
            body.extend_from_slice(&[0u8; 4096]);
            return respond(
                out,
                "200 OK",
                &[octets, ("Content-Length", body.len().to_string())],
                &body,
                head,
            );
        }
        Some(Fault::LongBodyUnannounced) => {
            respond(out, "200 OK", &[octets], b"", true)?;
            send(out, data, throttle)?;
            return send(out, &[0u8; 4096], None);
        }
        _ => {}
    }
    let (status, body, mut headers) = match start {
        Some(s) if s >= len => {
            return respond(
                out,
                "416 Range Not Satisfiable",
                &[("Content-Range", format!("bytes */{len}"))],
                b"",
                head,
            );
        }
        Some(s) => (
            "206 Partial Content",
            &data[s as usize..],
            vec![("Content-Range", format!("bytes {s}-{}/{len}", len - 1))],
        ),
        None => ("200 OK", data, vec![]),
    };
    headers.push(octets);
    headers.push(("Content-Length", body.len().to_string()));
    respond(out, status, &headers, b"", true)?;
    if head {
        return Ok(());
    }
    match fault {
        Some(Fault::DropAfter(n)) => {
            send(out, &body[..(n as usize).min(body.len())], throttle)?;
            out.shutdown(std::net::Shutdown::Both)
        }
        _ => send(out, body, throttle),
    }
}
