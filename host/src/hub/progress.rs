//! How far a pull has come: one shared status that the pull updates and anyone may read, wait
//! on, or be told about.

use super::HubError;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Where a pull is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PullState {
    /// Not started yet.
    Queued,
    /// Asking the hub what to download.
    Checking,
    /// Another pull (here or in another process) is downloading the same file.
    Waiting,
    /// Receiving bytes.
    Downloading,
    /// Checking a received file's SHA-256.
    Verifying,
    /// Every file is in the cache, verified.
    Done,
    /// It failed; the status says why.
    Failed,
}

impl PullState {
    /// Whether the pull has ended.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Failed)
    }
}

/// A snapshot of a pull.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PullStatus {
    /// Where it is.
    pub state: PullState,
    /// Bytes in the cache or received so far, over all files.
    pub bytes_done: u64,
    /// Bytes of all files, once the hub said.
    pub bytes_total: Option<u64>,
    /// The file being received.
    pub file: Option<String>,
    /// Files done / files to pull.
    pub files_done: usize,
    /// Files to pull.
    pub files_total: usize,
    /// Why it failed.
    pub error: Option<String>,
    /// The error as the crate's error type.
    #[serde(skip)]
    pub hub_error: Option<HubError>,
}

impl Default for PullStatus {
    fn default() -> Self {
        Self {
            state: PullState::Queued,
            bytes_done: 0,
            bytes_total: None,
            file: None,
            files_done: 0,
            files_total: 0,
            error: None,
            hub_error: None,
        }
    }
}

/// Told of every change of a pull's status (at most every few milliseconds while bytes arrive).
pub trait PullObserver: Send + Sync {
    /// The status changed.
    fn update(&self, status: &PullStatus);
}

impl<T: PullObserver + ?Sized> PullObserver for std::sync::Arc<T> {
    fn update(&self, status: &PullStatus) {
        (**self).update(status);
    }
}

/// A pull's shared status.
#[derive(Default)]
pub struct PullTracker {
    status: Mutex<PullStatus>,
    changed: Condvar,
    observer: Option<Box<dyn PullObserver>>,
    /// Bytes of files done before the current one.
    base: Mutex<u64>,
    last_tell: Mutex<Option<Instant>>,
    cancelled: AtomicBool,
    /// Whether any byte was received (a pull that found everything cached received none).
    received: AtomicBool,
}

impl std::fmt::Debug for PullTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullTracker").field("status", &*self.lock()).finish_non_exhaustive()
    }
}

impl PullTracker {
    /// A tracker nobody watches but whoever reads it.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tracker that tells `observer` of each change.
    pub fn observed(observer: impl PullObserver + 'static) -> Self {
        Self { observer: Some(Box::new(observer)), ..Self::default() }
    }

    fn lock(&self) -> MutexGuard<'_, PullStatus> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ask the pull to stop at its next step; what it received is kept for the next pull.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// Whether [`Self::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Whether the pull received any bytes (`false` when the cache already held everything).
    pub fn received_bytes(&self) -> bool {
        self.received.load(Ordering::Relaxed)
    }

    /// The status now.
    pub fn status(&self) -> PullStatus {
        self.lock().clone()
    }

    /// Wait until the pull's state differs from `seen`'s or `timeout` passes; the status then
    /// (with the bytes received meanwhile).
    pub fn wait_state(&self, seen: &PullStatus, timeout: Duration) -> PullStatus {
        let guard = self.lock();
        let (guard, _) = self
            .changed
            .wait_timeout_while(guard, timeout, |s| s.state == seen.state)
            .unwrap_or_else(|e| e.into_inner());
        guard.clone()
    }

    /// Wait until the status differs from `seen` or `timeout` passes; the status then.
    pub fn wait_change(&self, seen: &PullStatus, timeout: Duration) -> PullStatus {
        let guard = self.lock();
        let (guard, _) = self
            .changed
            .wait_timeout_while(guard, timeout, |s| s == seen)
            .unwrap_or_else(|e| e.into_inner());
        guard.clone()
    }

    fn change(&self, force: bool, f: impl FnOnce(&mut PullStatus)) {
        let snapshot = {
            let mut s = self.lock();
            f(&mut s);
            s.clone()
        };
        self.changed.notify_all();
        if let Some(o) = &self.observer {
            let mut last = self.last_tell.lock().unwrap_or_else(|e| e.into_inner());
            let due = last.is_none_or(|t| t.elapsed() >= Duration::from_millis(50));
            if force || due {
                *last = Some(Instant::now());
                drop(last);
                o.update(&snapshot);
            }
        }
    }

    pub(crate) fn set_state(&self, state: PullState) {
        self.change(true, |s| s.state = state);
    }

    pub(crate) fn start(&self, total: u64, files: usize) {
        *self.base.lock().unwrap_or_else(|e| e.into_inner()) = 0;
        self.change(true, |s| {
            s.bytes_total = Some(total);
            s.bytes_done = 0;
            s.files_total = files;
            s.files_done = 0;
        });
    }

    pub(crate) fn set_file(&self, file: &str) {
        self.change(true, |s| s.file = Some(file.to_string()));
    }

    /// Bytes are arriving.
    pub(crate) fn receiving(&self) {
        self.received.store(true, Ordering::Relaxed);
    }

    /// The current file now has `done` bytes.
    pub(crate) fn file_bytes(&self, done: u64) {
        let base = *self.base.lock().unwrap_or_else(|e| e.into_inner());
        self.change(false, |s| {
            s.state = PullState::Downloading;
            s.bytes_done = base + done;
        });
    }

    pub(crate) fn file_done(&self) {
        let done = self.lock().bytes_done;
        *self.base.lock().unwrap_or_else(|e| e.into_inner()) = done;
        self.change(true, |s| s.files_done += 1);
    }

    pub(crate) fn finish(&self, total: u64) {
        self.change(true, |s| {
            s.state = PullState::Done;
            s.bytes_total = Some(total);
            s.bytes_done = total;
            s.files_done = s.files_total;
            s.file = None;
        });
    }

    pub(crate) fn fail(&self, e: &HubError) {
        self.change(true, |s| {
            s.state = PullState::Failed;
            s.error = Some(e.to_string());
            s.hub_error = Some(e.clone());
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    struct Count(Arc<AtomicUsize>);
    impl PullObserver for Count {
        fn update(&self, _: &PullStatus) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    #[test]
    fn bytes_add_up_over_files_and_waiters_wake() {
        let told = Arc::new(AtomicUsize::new(0));
        let t = Arc::new(PullTracker::observed(Count(Arc::clone(&told))));
        t.start(300, 2);
        t.set_file("a");
        t.file_bytes(100);
        t.file_done();
        t.file_bytes(50);
        assert_eq!(t.status().bytes_done, 150);
        let seen = t.status();
        let t2 = Arc::clone(&t);
        let h = std::thread::spawn(move || t2.wait_change(&seen, Duration::from_secs(5)));
        std::thread::sleep(Duration::from_millis(50));
        t.finish(300);
        let s = h.join().unwrap();
        assert_eq!((s.state, s.bytes_done, s.files_done), (PullState::Done, 300, 2));
        assert!(told.load(SeqCst) >= 4, "state changes are always told");
    }
}
