//! The hub's HTTP protocol: a repository's file list (`GET /api/models/ORG/NAME/revision/REV`,
//! the URL `hf-hub` forms) and one file's metadata (`HEAD …/resolve/REV/FILE`: commit, ETag,
//! size, where to download it), the way `huggingface_hub` reads them. Every request has
//! timeouts; the token goes to the hub's own host only.

use super::config::HubConfig;
use super::reference::{DEFAULT_REVISION, is_commit};
use super::{HubError, HubResult};
use hf_hub::{Repo, RepoType};
use serde::Deserialize;
use std::time::Duration;
use ureq::Agent;

/// What the hub says about one file at one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileMeta {
    /// The file in the repository.
    pub file: String,
    /// The commit the revision points at.
    pub commit: String,
    /// The blob's name in the cache: the SHA-256 for files stored with Git LFS.
    pub etag: String,
    /// Its size in bytes.
    pub size: u64,
    /// What to verify the bytes against.
    pub digest: Digest,
    /// Where to download it (the hub, or the CDN it redirects to).
    pub url: String,
    /// Whether `url` is on the hub's own host (the token is sent only there).
    pub same_host: bool,
}

/// What a file's bytes must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Digest {
    /// A file stored with Git LFS: its SHA-256 (`X-Linked-Etag`).
    Sha256(String),
    /// A file stored in Git itself: its blob id, `sha1("blob {len}\0" + bytes)` (the ETag).
    GitSha1(String),
}

/// Talks to one hub.
pub(crate) struct Client {
    endpoint: String,
    token: Option<String>,
    agent: Agent,
}

#[derive(Deserialize)]
struct Sibling {
    rfilename: String,
}

#[derive(Deserialize)]
struct RepoInfo {
    siblings: Vec<Sibling>,
}

const USER_AGENT: &str = concat!("tabagent-host/", env!("CARGO_PKG_VERSION"), "; hf-hub/0.5");

/// Percent-encode one path segment.
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> &str {
    let after = url.find("://").map_or(0, |i| i + 3);
    url[after..].find('/').map_or(url, |i| &url[..after + i])
}

/// A URL without any `user:password@` part, for messages.
pub(crate) fn redact(url: &str) -> String {
    let after = url.find("://").map_or(0, |i| i + 3);
    let host_end = url[after..].find('/').map_or(url.len(), |i| after + i);
    match url[after..host_end].rfind('@') {
        Some(at) => format!("{}{}", &url[..after], &url[after + at + 1..]),
        None => url.to_string(),
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn header<'a>(r: &'a ureq::http::Response<ureq::Body>, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

impl Client {
    pub fn new(config: &HubConfig) -> HubResult<Self> {
        let agent: Agent = Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .user_agent(USER_AGENT)
            .accept_encoding("identity")
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .timeout_per_read(Some(Duration::from_secs(60)))
            .build()
            .into();
        Ok(Self { endpoint: config.endpoint.clone(), token: config.token.clone(), agent })
    }

    /// The agent downloads go through: no redirects followed, statuses returned, not raised.
    pub fn agent(&self) -> &Agent {
        &self.agent
    }

    /// The `Authorization` header value, for requests to the hub's own host.
    pub fn auth(&self) -> Option<String> {
        self.token.as_ref().map(|t| format!("Bearer {t}"))
    }

    fn unreachable(&self, e: ureq::Error) -> HubError {
        HubError::Http(format!("cannot reach {}: {e}", redact(&self.endpoint)))
    }

    /// The files of a repository at a revision.
    pub fn files(&self, repo: &str, revision: &str) -> HubResult<Vec<String>> {
        let r = Repo::with_revision(repo.to_string(), RepoType::Model, revision.to_string());
        let mut req = self.agent.get(format!("{}/api/{}?blobs=true", self.endpoint, r.api_url()));
        if let Some(auth) = self.auth() {
            req = req.header("Authorization", auth);
        }
        let mut response = req.call().map_err(|e| self.unreachable(e))?;
        let code = response.status().as_u16();
        if code != 200 {
            let kind = header(&response, "x-error-code").map(str::to_string);
            return Err(status_error(repo, revision, None, code, kind));
        }
        let info: RepoInfo =
            response.body_mut().with_config().limit(64 << 20).read_json().map_err(|e| {
                HubError::Http(format!("{repo}: the hub's file list is unreadable: {e}"))
            })?;
        Ok(info.siblings.into_iter().map(|s| s.rfilename).collect())
    }

    /// The resolve URL of a file.
    pub fn resolve_url(&self, repo: &str, revision: &str, file: &str) -> String {
        let r = Repo::with_revision(repo.to_string(), RepoType::Model, revision.to_string());
        let path: Vec<String> = file.split('/').map(encode).collect();
        format!("{}/{}/resolve/{}/{}", self.endpoint, r.url(), encode(revision), path.join("/"))
    }

    /// One file's metadata at a revision, following the hub's relative redirects (renamed
    /// repositories) but not its redirect to the CDN, whose URL is returned for the download.
    pub fn file_meta(&self, repo: &str, revision: &str, file: &str) -> HubResult<FileMeta> {
        let mut url = self.resolve_url(repo, revision, file);
        for _ in 0..5 {
            let mut req = self.agent.head(&url);
            if let Some(auth) = self.auth().filter(|_| origin(&url) == origin(&self.endpoint)) {
                req = req.header("Authorization", auth);
            }
            let response = req.call().map_err(|e| self.unreachable(e))?;
            let status = response.status().as_u16();
            let location = header(&response, "location").map(str::to_string);
            let has_meta = header(&response, "x-repo-commit").is_some();
            match (status, location) {
                (300..=399, Some(loc)) if loc.starts_with('/') => {
                    url = format!("{}{loc}", origin(&url));
                }
                (300..=399, Some(loc)) if has_meta => {
                    return self.meta_from(&response, repo, file, Some(loc));
                }
                (300..=399, Some(_)) => {
                    // As `huggingface_hub`: only the hub's own (relative) redirects are followed
                    // for metadata; another host's headers are not the hub's word.
                    return Err(HubError::Http(format!(
                        "{repo}/{file}: the hub redirected elsewhere without the file's metadata"
                    )));
                }
                (200..=299, _) => return self.meta_from(&response, repo, file, None),
                (code, _) => {
                    let kind = header(&response, "x-error-code").map(str::to_string);
                    let message = header(&response, "x-error-message").map(str::to_string);
                    return Err(status_error(repo, revision, Some(file), code, kind.or(message)));
                }
            }
        }
        Err(HubError::Http(format!("{repo}/{file}: too many redirects")))
    }

    fn meta_from(
        &self,
        r: &ureq::http::Response<ureq::Body>,
        repo: &str,
        file: &str,
        cdn: Option<String>,
    ) -> HubResult<FileMeta> {
        let bad = |what: &str| HubError::Http(format!("{file}: the hub sent {what}"));
        let commit = header(r, "x-repo-commit").ok_or_else(|| bad("no X-Repo-Commit"))?;
        if !is_commit(commit) {
            return Err(bad("a malformed X-Repo-Commit"));
        }
        let linked = header(r, "x-linked-etag");
        let etag = linked.or_else(|| header(r, "etag")).ok_or_else(|| bad("no ETag"))?;
        let etag = etag.trim().trim_start_matches("W/").trim_matches('"').to_string();
        let etag_ok = !etag.is_empty()
            && etag.len() <= 128
            && etag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !etag_ok {
            return Err(bad("a malformed ETag"));
        }
        let size = header(r, "x-linked-size")
            .or_else(|| header(r, "content-length"))
            .ok_or_else(|| bad("no size"))?
            .trim()
            .parse::<u64>()
            .map_err(|_| bad("a malformed size"))?;
        let digest = match (linked, header(r, "x-linked-size")) {
            (Some(_), _) if is_hex(&etag, 64) => Digest::Sha256(etag.to_ascii_lowercase()),
            (Some(_), _) => return Err(bad("an X-Linked-Etag that is not a SHA-256")),
            (None, Some(_)) => return Err(bad("an LFS size without its X-Linked-Etag")),
            (None, None) if is_hex(&etag, 40) => Digest::GitSha1(etag.to_ascii_lowercase()),
            (None, None) => return Err(bad("an ETag that is neither a SHA-256 nor a git blob id")),
        };
        let commit = commit.to_ascii_lowercase();
        // A file served by the hub itself is fetched at the commit just named, so a branch that
        // moves in between cannot swap the bytes.
        let url = cdn.unwrap_or_else(|| self.resolve_url(repo, &commit, file));
        let same_host = origin(&url) == origin(&self.endpoint);
        Ok(FileMeta { file: file.to_string(), commit, etag, size, digest, url, same_host })
    }
}

/// A hub error status as a message that says what to do.
fn status_error(
    repo: &str,
    revision: &str,
    file: Option<&str>,
    code: u16,
    kind: Option<String>,
) -> HubError {
    let at = if revision == DEFAULT_REVISION { String::new() } else { format!(" at {revision}") };
    let what = match file {
        Some(f) => format!("{repo}{at}: file {f}"),
        None => format!("{repo}{at}"),
    };
    match (code, kind.as_deref()) {
        (401 | 403, _) => HubError::Http(format!(
            "{what}: access denied (HTTP {code}); the repository may be gated or private: set HF_TOKEN"
        )),
        (404, Some("RevisionNotFound")) => {
            HubError::NotFound(format!("{repo}: no revision '{revision}' on the hub"))
        }
        (404, Some("EntryNotFound")) => {
            HubError::NotFound(format!("{what}: no such file on the hub"))
        }
        (404, _) => HubError::NotFound(format!("{what}: not found on the hub (HTTP 404)")),
        (code, _) => HubError::Http(format!("{what}: the hub answered HTTP {code}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_escape_what_a_path_segment_cannot_hold() {
        let c = Client::new(&HubConfig {
            endpoint: "http://127.0.0.1:9".into(),
            cache_dir: std::env::temp_dir(),
            token: None,
            offline: false,
            retries: 0,
        })
        .unwrap();
        assert_eq!(
            c.resolve_url("org/m", "refs/pr/1", "sub dir/a+b.gguf"),
            "http://127.0.0.1:9/org/m/resolve/refs%2Fpr%2F1/sub%20dir/a%2Bb.gguf"
        );
        assert_eq!(origin("https://cdn.example/x/y"), "https://cdn.example");
        assert_eq!(origin("http://127.0.0.1:9"), "http://127.0.0.1:9");
        assert_eq!(redact("https://u:secret@hub.example/x"), "https://hub.example/x");
        assert_eq!(redact("http://127.0.0.1:9"), "http://127.0.0.1:9");
    }
}
