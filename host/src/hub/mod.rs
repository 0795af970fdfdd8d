//! Models from the Hugging Face hub: verified, resumable pulls into the standard Hugging Face
//! cache, and what is in it.
//!
//! Built on `hf-hub` 0.5 (sync): its cache layout (`models--org--name/{blobs,refs,snapshots}`,
//! the one Python's `huggingface_hub` and Rust tools share) and its repository naming and URL
//! forms. Around it, what it lacks: the transfer itself
//! ([`transfer`]: resumable `Range` requests that check the status and `Content-Range`, a body
//! bounded by the announced size, SHA-256 verification before anything becomes visible, a lock
//! that waits instead of failing), the environment `huggingface_hub` honours ([`HubConfig`]),
//! offline use, file choice by quantization ([`select`]), and listing and removal ([`cache`]).
//!
//! One pull of one file in the whole machine at a time: a second pull of the same file, in this
//! process or another, waits for the first and then finds it in the cache.

pub mod cache;
mod config;
mod progress;
mod protocol;
mod reference;
mod resolver;
pub mod select;
mod task;
mod transfer;

pub use cache::{CachedFile, HubCache, PartialDownload, Removed};
pub use config::{HubConfig, PullPolicy};
pub use progress::{PullObserver, PullState, PullStatus, PullTracker};
pub use reference::{DEFAULT_REVISION, HubRef, Selector, is_commit, pattern_matches};
pub use resolver::{HubResolver, TrackerFactory};
pub use task::PullTask;

use crate::error::LlmError;
use protocol::Client;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};

/// What went wrong with a hub reference, a pull or the cache.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum HubError {
    /// A repository, file, revision or quantization that is malformed or could leave the cache.
    #[error("bad model reference {0}")]
    BadReference(String),
    /// The hub has no such repository, revision or file.
    #[error("{0}")]
    NotFound(String),
    /// Offline, and the cache does not hold it.
    #[error("{0} is not in the Hugging Face cache ({1}), and pulls are off (offline)")]
    NotCached(String, String),
    /// Several files match; the choices are listed.
    #[error("{reference} matches several files; name one of: {}", choices.join(", "))]
    Ambiguous {
        /// What was asked for.
        reference: String,
        /// The files (or split sets) it could mean.
        choices: Vec<String>,
    },
    /// No file matches; the choices are listed.
    #[error("{reference} matches no GGUF file; choices: {}", if choices.is_empty() { "none".to_string() } else { choices.join(", ") })]
    NoMatch {
        /// What was asked for.
        reference: String,
        /// The GGUF files (or split sets) the repository has.
        choices: Vec<String>,
    },
    /// The hub answered with an error.
    #[error("{0}")]
    Http(String),
    /// The transfer stopped early; what was received is kept and the next pull resumes there.
    #[error("{0}; {1} of {2} bytes kept, the next pull resumes from there")]
    Interrupted(String, u64, u64),
    /// The server sent something other than the file it announced; it was deleted.
    #[error("{0}")]
    Integrity(String),
    /// A file system problem.
    #[error("{0}")]
    Io(String),
    /// The cache holds something that points outside it, or is not a file.
    #[error("{0}")]
    Unsafe(String),
    /// The pull was cancelled.
    #[error("the pull was cancelled")]
    Cancelled,
    /// Too many pulls run already.
    #[error("{0} pulls are running already; wait for one to end")]
    Busy(usize),
}

impl From<HubError> for LlmError {
    fn from(e: HubError) -> Self {
        match e {
            HubError::BadReference(_) | HubError::Ambiguous { .. } => {
                LlmError::InvalidInput(e.to_string())
            }
            HubError::NotFound(_) | HubError::NotCached(..) | HubError::NoMatch { .. } => {
                LlmError::NotFound(e.to_string())
            }
            HubError::Busy(_) => LlmError::ResourceExhausted(e.to_string()),
            _ => LlmError::Runtime(e.to_string()),
        }
    }
}

/// Most guest-started pulls that run at once in one host.
pub const MAX_RUNNING_PULLS: usize = 4;

/// Result of hub operations.
pub type HubResult<T> = Result<T, HubError>;

/// A model file (or split set) in the cache, ready to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedModel {
    /// The repository.
    pub repo: String,
    /// The commit its files come from.
    pub commit: String,
    /// Its files in the repository, first part first.
    pub files: Vec<String>,
    /// The path to open (the first part): a link in the cache's snapshot folder.
    pub path: PathBuf,
    /// Bytes in all parts.
    pub size: u64,
}

/// The hub and the local cache, as configured.
pub struct Hub {
    config: HubConfig,
    cache: HubCache,
    client: Client,
    running: Mutex<HashMap<HubRef, Weak<PullTask>>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub client over the configured cache and endpoint.
    pub fn new(config: HubConfig) -> HubResult<Self> {
        let cache = HubCache::new(config.cache_dir.clone());
        let client = Client::new(&config)?;
        Ok(Self { config, cache, client, running: Mutex::new(HashMap::new()) })
    }

    /// A hub client configured from the environment, as `huggingface_hub` is.
    pub fn from_env() -> HubResult<Self> {
        Self::new(HubConfig::from_env())
    }

    /// The configuration.
    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// The local cache.
    pub fn cache(&self) -> &HubCache {
        &self.cache
    }

    /// The model a reference means, from the cache alone (no network). `Ok(None)` when the
    /// cache does not hold it.
    pub fn cached(&self, r: &HubRef) -> HubResult<Option<CachedModel>> {
        r.check()?;
        let Some(commit) = self.cache.commit_of(&r.repo, &r.revision) else {
            return Ok(None);
        };
        let files = match &r.selector {
            Selector::File(f) => select::set_of(f),
            sel => {
                let have = self.cache.snapshot_files(&r.repo, &commit)?;
                match select::choose(&r.to_string(), &have, sel) {
                    Ok(files) => files,
                    Err(HubError::NoMatch { .. }) => return Ok(None),
                    Err(e) => return Err(e),
                }
            }
        };
        let mut paths = Vec::new();
        let mut size = 0;
        for f in &files {
            match self.cache.lookup(&r.repo, &commit, f)? {
                Some((path, len)) => {
                    size += len;
                    paths.push(path);
                }
                None => return Ok(None),
            }
        }
        Ok(Some(CachedModel { repo: r.repo.clone(), commit, files, path: paths.remove(0), size }))
    }

    /// The model a reference means, pulled first if the policy says so. Blocks; reports to
    /// `tracker` (which ends `Done` or `Failed`).
    pub fn ensure(
        &self,
        r: &HubRef,
        policy: PullPolicy,
        tracker: &PullTracker,
    ) -> HubResult<CachedModel> {
        let result = self.ensure_inner(r, policy, tracker);
        if let Err(e) = &result {
            tracker.fail(e);
        }
        result
    }

    fn ensure_inner(
        &self,
        r: &HubRef,
        policy: PullPolicy,
        tracker: &PullTracker,
    ) -> HubResult<CachedModel> {
        let offline = self.config.offline || policy == PullPolicy::Never;
        if policy != PullPolicy::Always || offline {
            if let Some(m) = self.cached(r)? {
                tracker.finish(m.size);
                return Ok(m);
            }
            if offline {
                let why = if self.config.offline {
                    "offline: HF_HUB_OFFLINE or --offline"
                } else {
                    "--pull never"
                };
                return Err(HubError::NotCached(
                    r.to_string(),
                    format!("{why}; pull it with `tabagent-host pull {r}`"),
                ));
            }
        }
        r.check()?;
        self.pull_inner(r, tracker)
    }

    /// Ask the hub for the reference's files at its revision and download what the cache lacks,
    /// verifying each. Blocks; reports to `tracker`.
    pub fn pull(&self, r: &HubRef, tracker: &PullTracker) -> HubResult<CachedModel> {
        let result = match r.check() {
            Err(e) => Err(e),
            Ok(()) if self.config.offline => self.ensure_inner(r, PullPolicy::Never, tracker),
            Ok(()) => self.pull_inner(r, tracker),
        };
        if let Err(e) = &result {
            tracker.fail(e);
        }
        result
    }

    fn pull_inner(&self, r: &HubRef, tracker: &PullTracker) -> HubResult<CachedModel> {
        tracker.set_state(PullState::Checking);
        let files = match &r.selector {
            Selector::File(f) => select::set_of(f),
            sel => {
                let listing = self.client.files(&r.repo, &r.revision)?;
                select::choose(&r.to_string(), &listing, sel)?
            }
        };
        // The first file names the commit; the others are asked at that commit, so a branch
        // that moves meanwhile cannot mix two commits' files.
        let first = self.client.file_meta(&r.repo, &r.revision, &files[0])?;
        let commit = first.commit.clone();
        let mut metas = vec![first];
        for f in &files[1..] {
            metas.push(self.client.file_meta(&r.repo, &commit, f)?);
        }
        let total = metas.iter().map(|m| m.size).sum();
        tracker.start(total, files.len());
        let mut paths = Vec::new();
        for (file, meta) in files.iter().zip(&metas) {
            tracker.set_file(file);
            let blob = self.cache.blob_path(&r.repo, &meta.etag);
            let lock = transfer::fetch(&self.client, meta, &blob, tracker, self.config.retries)?;
            paths.push(self.cache.link(&r.repo, &commit, file, &meta.etag)?);
            drop(lock);
            tracker.file_done();
        }
        if !r.pinned() {
            self.cache.write_ref(&r.repo, &r.revision, &commit)?;
        }
        tracker.finish(total);
        Ok(CachedModel { repo: r.repo.clone(), commit, files, path: paths.remove(0), size: total })
    }

    /// Start a pull on a thread of its own, or join the one of the same reference already
    /// running in this process. Returns at once. At most [`MAX_RUNNING_PULLS`] run at once;
    /// more are refused with [`HubError::Busy`].
    pub fn start_pull(self: &Arc<Self>, r: HubRef) -> HubResult<Arc<PullTask>> {
        r.check()?;
        let key = r.normalized();
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|_, t| t.upgrade().is_some_and(|t| !t.finished()));
        if let Some(task) = running.get(&key).and_then(Weak::upgrade) {
            return Ok(task);
        }
        if running.len() >= MAX_RUNNING_PULLS {
            return Err(HubError::Busy(MAX_RUNNING_PULLS));
        }
        let task = PullTask::spawn(Arc::clone(self), r)?;
        running.insert(key, Arc::downgrade(&task));
        Ok(task)
    }
}
