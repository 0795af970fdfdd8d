//! How many requests run at once, and how many may wait: a request beyond both is refused at
//! once (503), never queued without bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Every running slot and every waiting place is taken.
    Full,
    /// It waited its longest without a slot freeing.
    Timeout,
}

/// The running slots and the waiting room.
#[derive(Debug)]
pub struct Admission {
    running: Arc<Semaphore>,
    max_running: usize,
    max_waiting: usize,
    wait: Duration,
    waiting: AtomicUsize,
}

/// A running slot, released when dropped.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

/// Counts one waiting request while alive.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Admission {
    /// `max_running` at once (at least one), up to `max_waiting` more waiting at most `wait`.
    pub fn new(max_running: usize, max_waiting: usize, wait: Duration) -> Self {
        let max_running = max_running.max(1);
        Self {
            running: Arc::new(Semaphore::new(max_running)),
            max_running,
            max_waiting,
            wait,
            waiting: AtomicUsize::new(0),
        }
    }

    /// Take a running slot: at once if one is free, else after waiting (if there is room to).
    pub async fn enter(&self) -> Result<Slot, Refused> {
        if let Ok(p) = Arc::clone(&self.running).try_acquire_owned() {
            return Ok(Slot { _permit: p });
        }
        let taken = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiting);
        if taken >= self.max_waiting {
            return Err(Refused::Full);
        }
        match tokio::time::timeout(self.wait, Arc::clone(&self.running).acquire_owned()).await {
            Ok(Ok(p)) => Ok(Slot { _permit: p }),
            Ok(Err(_)) => Err(Refused::Full),
            Err(_) => Err(Refused::Timeout),
        }
    }

    /// Requests running now.
    pub fn running(&self) -> usize {
        self.max_running - self.running.available_permits()
    }

    /// Requests waiting now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst).min(self.max_waiting)
    }

    /// The most requests that run at once.
    pub fn max_running(&self) -> usize {
        self.max_running
    }

    /// The most requests that wait.
    pub fn max_waiting(&self) -> usize {
        self.max_waiting
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn beyond_the_slots_requests_wait_and_beyond_the_room_they_are_refused() {
        let a = Arc::new(Admission::new(2, 1, Duration::from_secs(5)));
        let s1 = a.enter().await.unwrap();
        let _s2 = a.enter().await.unwrap();
        assert_eq!(a.running(), 2);
        let waiter = tokio::spawn({
            let a = Arc::clone(&a);
            async move { a.enter().await.map(|_| ()) }
        });
        while a.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(a.enter().await.unwrap_err(), Refused::Full);
        drop(s1);
        assert_eq!(waiter.await.unwrap(), Ok(()));
        assert_eq!(a.waiting(), 0);
    }

    #[tokio::test]
    async fn a_wait_is_bounded_and_no_room_means_no_wait() {
        let a = Admission::new(1, 1, Duration::from_millis(50));
        let _s = a.enter().await.unwrap();
        assert_eq!(a.enter().await.unwrap_err(), Refused::Timeout);
        let none = Admission::new(1, 0, Duration::from_secs(60));
        let _s = none.enter().await.unwrap();
        let t = std::time::Instant::now();
        assert_eq!(none.enter().await.unwrap_err(), Refused::Full);
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
