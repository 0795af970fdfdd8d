//! The Hugging Face cache on disk, in the layout `huggingface_hub` and `hf-hub` share:
//!
//! ```text
//! <cache>/models--ORG--NAME/
//!     blobs/<etag>                      the files' bytes (etag = SHA-256 for LFS files)
//!     refs/<revision>                   a branch or tag's commit
//!     snapshots/<commit>/<file>         relative links into blobs/
//! ```
//!
//! A blob appears only once complete and verified, and a snapshot link only after its blob
//! (both by atomic rename), so no reader ever sees half a file. Links that lead outside the
//! cache are refused.

use super::reference::is_commit;
use super::{HubError, HubResult};
use hf_hub::{Cache, Repo, RepoType};
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The local Hugging Face cache.
#[derive(Debug, Clone)]
pub struct HubCache {
    root: PathBuf,
    cache: Cache,
}

/// A file in the cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedFile {
    /// `org/name`.
    pub repo: String,
    /// The file in the repository.
    pub file: String,
    /// The commit it belongs to.
    pub commit: String,
    /// Branches and tags that point at that commit.
    pub revisions: Vec<String>,
    /// Its size in bytes.
    pub size: u64,
    /// Its blob's name (the SHA-256 for LFS files).
    pub blob: String,
    /// The path to open.
    pub path: PathBuf,
}

/// A download that has not finished: a `.part` file in a repository's blobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartialDownload {
    /// `org/name`.
    pub repo: String,
    /// The blob it will become.
    pub blob: String,
    /// Bytes received so far.
    pub bytes: u64,
    /// Whether a pull (in any process) is receiving it now; otherwise the next pull resumes it.
    pub active: bool,
}

/// What a removal freed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Removed {
    /// The snapshot files removed.
    pub files: Vec<String>,
    /// Blobs deleted because no file used them any more.
    pub blobs: Vec<String>,
    /// Bytes those blobs held.
    pub bytes_freed: u64,
    /// Blobs kept because another file still uses them.
    pub blobs_kept: Vec<String>,
}

fn io(what: &str, path: &Path, e: std::io::Error) -> HubError {
    HubError::Io(format!("{what} {}: {e}", path.display()))
}

static TMP: AtomicU64 = AtomicU64::new(0);

/// A fresh temporary name beside `path`.
fn temp_beside(path: &Path) -> PathBuf {
    let n = TMP.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

impl HubCache {
    /// The cache at `root` (created on first write).
    pub fn new(root: PathBuf) -> Self {
        Self { cache: Cache::new(root.clone()), root }
    }

    /// Its folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn repo(&self, repo: &str) -> hf_hub::CacheRepo {
        self.cache.repo(Repo::new(repo.to_string(), RepoType::Model))
    }

    fn repo_dir(&self, repo: &str) -> PathBuf {
        self.root.join(Repo::new(repo.to_string(), RepoType::Model).folder_name())
    }

    /// Where a blob lives.
    pub fn blob_path(&self, repo: &str, etag: &str) -> PathBuf {
        self.repo(repo).blob_path(etag)
    }

    /// The commit a revision means here: a commit itself when its snapshot exists, or what the
    /// branch or tag's ref file says.
    pub fn commit_of(&self, repo: &str, revision: &str) -> Option<String> {
        if is_commit(revision) {
            let c = revision.to_ascii_lowercase();
            return self.repo(repo).pointer_path(&c).is_dir().then_some(c);
        }
        let text = std::fs::read_to_string(self.repo_dir(repo).join("refs").join(revision)).ok()?;
        let c = text.trim().to_ascii_lowercase();
        is_commit(&c).then_some(c)
    }

    /// The files of a snapshot, as paths in the repository.
    pub fn snapshot_files(&self, repo: &str, commit: &str) -> HubResult<Vec<String>> {
        let dir = self.repo(repo).pointer_path(commit);
        let mut out = Vec::new();
        walk(&dir, "", 0, &mut out)?;
        out.sort();
        Ok(out)
    }

    /// A snapshot file and its size, if the cache holds it complete. Refuses links that lead
    /// outside the cache.
    pub fn lookup(
        &self,
        repo: &str,
        commit: &str,
        file: &str,
    ) -> HubResult<Option<(PathBuf, u64)>> {
        let path = self.repo(repo).pointer_path(commit).join(file);
        if std::fs::symlink_metadata(&path).is_err() {
            return Ok(None);
        }
        let Ok(real) = path.canonicalize() else {
            return Ok(None); // a dangling link: its blob was removed
        };
        // A snapshot file is a link into its own repository's blobs (or, where links are not
        // available, a copy in the snapshot itself); anything else is not ours to open.
        let inside = |dir: PathBuf| dir.canonicalize().is_ok_and(|d| real.starts_with(d));
        let dir = self.repo_dir(repo);
        let name = real.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let own = inside(dir.join("blobs")) || inside(dir.join("snapshots"));
        if !own || name.ends_with(".part") || name.ends_with(".lock") {
            return Err(HubError::Unsafe(format!(
                "{} leads outside its repository's blobs in the Hugging Face cache (to {}); refusing it",
                path.display(),
                real.display()
            )));
        }
        let meta = std::fs::metadata(&real).map_err(|e| io("cannot read", &real, e))?;
        if !meta.is_file() {
            return Err(HubError::Unsafe(format!("{} is not a file", path.display())));
        }
        Ok(Some((path, meta.len())))
    }

    /// Make `file` of `commit` point at the blob `etag` (atomically).
    pub fn link(&self, repo: &str, commit: &str, file: &str, etag: &str) -> HubResult<PathBuf> {
        let path = self.repo(repo).pointer_path(commit).join(file);
        let parent = path.parent().expect("a snapshot file has a folder");
        std::fs::create_dir_all(parent).map_err(|e| io("cannot create", parent, e))?;
        let depth = file.split('/').count() + 1;
        let target: PathBuf =
            std::iter::repeat_n("..", depth).collect::<PathBuf>().join("blobs").join(etag);
        let tmp = temp_beside(&path);
        #[cfg(unix)]
        std::os::unix::fs::symlink(&target, &tmp).map_err(|e| io("cannot link", &tmp, e))?;
        #[cfg(not(unix))]
        std::fs::copy(parent.join(&target), &tmp).map_err(|e| io("cannot copy to", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io("cannot rename to", &path, e))?;
        Ok(path)
    }

    /// Record that a branch or tag points at `commit` (atomically).
    pub fn write_ref(&self, repo: &str, revision: &str, commit: &str) -> HubResult<()> {
        let path = self.repo_dir(repo).join("refs").join(revision);
        let parent = path.parent().expect("a ref has a folder");
        std::fs::create_dir_all(parent).map_err(|e| io("cannot create", parent, e))?;
        let tmp = temp_beside(&path);
        std::fs::write(&tmp, commit).map_err(|e| io("cannot write", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io("cannot rename to", &path, e))
    }

    /// The refs of a repository: `(revision, commit)`.
    fn refs(&self, repo: &str) -> Vec<(String, String)> {
        let mut names = Vec::new();
        let _ = walk(&self.repo_dir(repo).join("refs"), "", 0, &mut names);
        names
            .into_iter()
            .filter_map(|r| {
                let p = self.repo_dir(repo).join("refs").join(&r);
                let c = std::fs::read_to_string(p).ok()?.trim().to_ascii_lowercase();
                is_commit(&c).then_some((r, c))
            })
            .collect()
    }

    /// The model repositories in the cache.
    pub fn repos(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.root) else { return Vec::new() };
        let mut out: Vec<String> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let rest = name.strip_prefix("models--")?;
                let (org, repo) = rest.split_once("--")?;
                Some(format!("{org}/{repo}"))
            })
            .filter(|r| super::reference::check_repo(r).is_ok())
            .collect();
        out.sort();
        out
    }

    /// Downloads in progress or interrupted, in every repository.
    pub fn partials(&self) -> Vec<PartialDownload> {
        let mut out = Vec::new();
        for repo in self.repos() {
            let blobs = self.repo_dir(&repo).join("blobs");
            let Ok(entries) = std::fs::read_dir(&blobs) else { continue };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(blob) = name.strip_suffix(".part") else { continue };
                let lock = blobs.join(format!("{blob}.lock"));
                // A pull holds the lock while it receives; try it without waiting.
                let active = std::fs::File::open(&lock).is_ok_and(|f| match f.try_lock() {
                    Ok(()) => false,
                    Err(std::fs::TryLockError::WouldBlock) => true,
                    Err(std::fs::TryLockError::Error(_)) => false,
                });
                let bytes = e.metadata().map_or(0, |m| m.len());
                out.push(PartialDownload {
                    repo: repo.clone(),
                    blob: blob.to_string(),
                    bytes,
                    active,
                });
            }
        }
        out
    }

    /// Every complete file of every snapshot of `repo` (all repositories when `None`).
    pub fn list(&self, repo: Option<&str>) -> HubResult<Vec<CachedFile>> {
        let repos = match repo {
            Some(r) => vec![r.to_string()],
            None => self.repos(),
        };
        let mut out = Vec::new();
        for repo in repos {
            let refs = self.refs(&repo);
            let snapshots = self.repo_dir(&repo).join("snapshots");
            let Ok(entries) = std::fs::read_dir(&snapshots) else { continue };
            let mut commits: Vec<String> = entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|c| is_commit(c))
                .collect();
            commits.sort();
            for commit in commits {
                for file in self.snapshot_files(&repo, &commit)? {
                    let (path, size) = match self.lookup(&repo, &commit, &file) {
                        Ok(Some(found)) => found,
                        Ok(None) => continue,
                        Err(e) => {
                            tracing::warn!("{e}");
                            continue;
                        }
                    };
                    let blob = std::fs::read_link(&path)
                        .ok()
                        .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
                        .unwrap_or_default();
                    let revisions =
                        refs.iter().filter(|(_, c)| *c == commit).map(|(r, _)| r.clone()).collect();
                    out.push(CachedFile {
                        repo: repo.clone(),
                        file,
                        commit: commit.clone(),
                        revisions,
                        size,
                        blob,
                        path,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Remove snapshot files, then delete the blobs no remaining file of the repository uses,
    /// the snapshots left empty, refs to them, and the repository folder if nothing is left.
    pub fn remove(&self, repo: &str, files: &[CachedFile]) -> HubResult<Removed> {
        let mut removed = Removed::default();
        let mut candidates = BTreeSet::new();
        for f in files.iter().filter(|f| f.repo == repo) {
            std::fs::remove_file(&f.path).map_err(|e| io("cannot remove", &f.path, e))?;
            removed.files.push(format!("{}@{}", f.file, &f.commit[..8.min(f.commit.len())]));
            if !f.blob.is_empty() {
                candidates.insert(f.blob.clone());
            }
        }
        let remaining = self.list(Some(repo))?;
        let used: BTreeSet<&str> = remaining.iter().map(|f| f.blob.as_str()).collect();
        for blob in candidates {
            let path = self.blob_path(repo, &blob);
            // A pull holds the blob's lock while it receives or links it: leave it to the pull.
            let lock = std::fs::File::open(super::transfer::lock_path(&path)).ok();
            let busy = lock.as_ref().is_some_and(|l| l.try_lock().is_err());
            if used.contains(blob.as_str()) || busy {
                removed.blobs_kept.push(blob);
                continue;
            }
            removed.bytes_freed += std::fs::metadata(&path).map_or(0, |m| m.len());
            std::fs::remove_file(&path).map_err(|e| io("cannot remove", &path, e))?;
            removed.blobs.push(blob);
        }
        let snapshots = self.repo_dir(repo).join("snapshots");
        let mut live = BTreeSet::new();
        if let Ok(entries) = std::fs::read_dir(&snapshots) {
            for e in entries.flatten() {
                let commit = e.file_name().to_string_lossy().into_owned();
                prune_empty(&e.path());
                if e.path().exists() {
                    live.insert(commit);
                }
            }
        }
        for (r, c) in self.refs(repo) {
            if !live.contains(&c) {
                let _ = std::fs::remove_file(self.repo_dir(repo).join("refs").join(r));
            }
        }
        let dir = self.repo_dir(repo);
        let blobs_left = std::fs::read_dir(dir.join("blobs")).is_ok_and(|mut d| {
            d.any(|e| e.is_ok_and(|e| !e.file_name().to_string_lossy().ends_with(".lock")))
        });
        if live.is_empty() && !blobs_left {
            // Nothing left but lock files; a pull that holds one keeps the folder.
            let busy = std::fs::read_dir(dir.join("blobs")).is_ok_and(|d| {
                d.flatten()
                    .any(|e| std::fs::File::open(e.path()).is_ok_and(|f| f.try_lock().is_err()))
            });
            if !busy {
                std::fs::remove_dir_all(&dir).map_err(|e| io("cannot remove", &dir, e))?;
            }
        }
        Ok(removed)
    }
}

/// Remove `dir` and the folders under it if they hold no file.
fn prune_empty(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                prune_empty(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// The files under `dir` (links included), as `/`-joined paths; hidden names skipped.
fn walk(dir: &Path, prefix: &str, depth: usize, out: &mut Vec<String>) -> HubResult<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for e in entries.flatten() {
        let Ok(name) = e.file_name().into_string() else { continue };
        if name.starts_with('.') {
            continue;
        }
        let rel = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
        let ty = e.file_type().map_err(|err| io("cannot read", &e.path(), err))?;
        if ty.is_dir() {
            if depth < 16 {
                walk(&e.path(), &rel, depth + 1, out)?;
            }
        } else {
            out.push(rel);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const C1: &str = "1111111111111111111111111111111111111111";

    fn temp_cache(tag: &str) -> HubCache {
        let dir = std::env::temp_dir().join(format!("tabagent-cache-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        HubCache::new(dir)
    }

    #[test]
    fn links_resolve_through_refs_and_removal_keeps_shared_blobs() {
        let c = temp_cache("links");
        let blob = c.blob_path("org/m", "abc");
        std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
        std::fs::write(&blob, b"bytes").unwrap();
        c.link("org/m", C1, "a.gguf", "abc").unwrap();
        c.link("org/m", C1, "sub/b.gguf", "abc").unwrap();
        c.write_ref("org/m", "main", C1).unwrap();
        assert_eq!(c.commit_of("org/m", "main").as_deref(), Some(C1));
        assert_eq!(c.commit_of("org/m", C1).as_deref(), Some(C1));
        assert_eq!(c.snapshot_files("org/m", C1).unwrap(), ["a.gguf", "sub/b.gguf"]);
        let (path, size) = c.lookup("org/m", C1, "sub/b.gguf").unwrap().unwrap();
        assert_eq!((std::fs::read(&path).unwrap(), size), (b"bytes".to_vec(), 5));
        let all = c.list(None).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].revisions, ["main"]);
        let r = c.remove("org/m", &all[..1]).unwrap();
        assert_eq!((r.blobs.len(), r.blobs_kept.as_slice()), (0, ["abc".to_string()].as_slice()));
        assert!(c.lookup("org/m", C1, "sub/b.gguf").unwrap().is_some());
        let rest = c.list(Some("org/m")).unwrap();
        let r = c.remove("org/m", &rest).unwrap();
        assert_eq!((r.blobs.as_slice(), r.bytes_freed), (["abc".to_string()].as_slice(), 5));
        assert!(c.repos().is_empty(), "the repository folder goes with its last file");
        std::fs::remove_dir_all(c.root()).unwrap();
    }

    #[test]
    fn links_that_leave_the_cache_are_refused() {
        let c = temp_cache("escape");
        let outside = std::env::temp_dir().join(format!("tabagent-outside-{}", std::process::id()));
        std::fs::write(&outside, b"secret").unwrap();
        let snap = c.repo("org/m").pointer_path(C1);
        std::fs::create_dir_all(&snap).unwrap();
        std::os::unix::fs::symlink(&outside, snap.join("evil.gguf")).unwrap();
        let e = c.lookup("org/m", C1, "evil.gguf").unwrap_err();
        assert!(matches!(&e, HubError::Unsafe(m) if m.contains("outside")), "{e}");
        assert!(c.list(None).unwrap().is_empty(), "listing skips it");
        std::fs::remove_file(&outside).unwrap();
        std::fs::remove_dir_all(c.root()).unwrap();
    }
}
