//! The endpoints of one remote model: which are up, how busy each is, and which one the next
//! request goes to.
//!
//! A request takes a [`Permit`] on the least busy usable endpoint (ties go round the list); when
//! every usable endpoint is at its `max-concurrent`, it waits, up to the queue timeout, for a
//! permit to come back. An endpoint is unusable while it is marked down (a failed request or
//! health check) or while its circuit breaker is open: after `breaker-failures` consecutive
//! failures no request goes there for the cool-down (doubled each time it opens again, up to a
//! minute); then one request may try it (half-open), and its success closes the breaker. A
//! passing health check brings a down endpoint back at once, but not one whose breaker is open:
//! a server can list its models and still fail every completion. The health checks run on the
//! engine's runtime for as long as the pool lives.

use super::spec::{EndpointUrl, RemoteSpec};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

const MAX_COOLDOWN: Duration = Duration::from_secs(60);

/// What the pool knows of one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointStatus {
    /// The endpoint.
    pub url: EndpointUrl,
    /// Whether requests go there now (up and breaker closed).
    pub usable: bool,
    /// Requests in flight.
    pub in_flight: u32,
    /// Requests that finished well.
    pub served: u64,
    /// Requests or health checks that failed.
    pub failures: u64,
    /// The last failure, if the endpoint is down.
    pub last_error: Option<String>,
}

#[derive(Debug)]
struct State {
    up: bool,
    in_flight: u32,
    consecutive_failures: u32,
    /// Breaker open until then.
    open_until: Option<Instant>,
    cooldown: Duration,
    served: u64,
    failures: u64,
    last_error: Option<String>,
}

/// The endpoints of one remote model and their state.
pub struct Pool {
    urls: Vec<EndpointUrl>,
    state: Mutex<Vec<State>>,
    freed: Notify,
    next: AtomicUsize,
    max_concurrent: u32,
    breaker_failures: u32,
    breaker_cooldown: Duration,
}

/// A request's claim on one endpoint; gives it back when dropped.
pub struct Permit {
    pool: Arc<Pool>,
    index: usize,
}

impl Permit {
    /// The endpoint.
    pub fn url(&self) -> &EndpointUrl {
        &self.pool.urls[self.index]
    }

    /// Its place in the pool's list.
    pub fn index(&self) -> usize {
        self.index
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut s = self.pool.lock();
        s[self.index].in_flight = s[self.index].in_flight.saturating_sub(1);
        drop(s);
        self.pool.freed.notify_waiters();
    }
}

/// Why no permit was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcquireError {
    /// No endpoint is up: each one's last error.
    AllDown(Vec<(String, String)>),
    /// Every usable endpoint stayed busy for the whole queue timeout.
    Busy(Duration),
}

impl std::fmt::Display for AcquireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AllDown(errors) => {
                let each: Vec<String> =
                    errors.iter().map(|(e, why)| format!("{e}: {why}")).collect();
                write!(f, "no endpoint is up ({})", each.join("; "))
            }
            Self::Busy(t) => write!(f, "every endpoint stayed busy for {t:?}"),
        }
    }
}

impl Pool {
    /// A pool over the spec's endpoints, all taken to be up until shown otherwise.
    pub fn new(spec: &RemoteSpec) -> Arc<Self> {
        let state = spec
            .endpoints
            .iter()
            .map(|_| State {
                up: true,
                in_flight: 0,
                consecutive_failures: 0,
                open_until: None,
                cooldown: spec.breaker_cooldown,
                served: 0,
                failures: 0,
                last_error: None,
            })
            .collect();
        Arc::new(Self {
            urls: spec.endpoints.clone(),
            state: Mutex::new(state),
            freed: Notify::new(),
            // Hosts that start together do not all send their first request to the same place.
            next: AtomicUsize::new(random_start()),
            max_concurrent: spec.max_concurrent,
            breaker_failures: spec.breaker_failures,
            breaker_cooldown: spec.breaker_cooldown,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Vec<State>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The endpoints.
    pub fn urls(&self) -> &[EndpointUrl] {
        &self.urls
    }

    /// A permit on the least busy usable endpoint, preferring those not in `avoid` (endpoints a
    /// request already failed on); waits while all are busy, up to `queue_timeout`.
    pub async fn acquire(
        self: &Arc<Self>,
        avoid: &[usize],
        queue_timeout: Duration,
    ) -> Result<Permit, AcquireError> {
        let until = tokio::time::Instant::now() + queue_timeout;
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            match self.try_acquire(avoid) {
                Ok(Some(p)) => return Ok(p),
                Ok(None) => {}
                Err(e) => return Err(e),
            }
            // Wake up on a freed permit, or now and then for endpoints that came back or whose
            // breaker cooled down.
            let tick = tokio::time::Instant::now() + Duration::from_millis(200);
            if tokio::time::timeout_at(tick.min(until), freed).await.is_err()
                && tokio::time::Instant::now() >= until
            {
                return Err(AcquireError::Busy(queue_timeout));
            }
        }
    }

    /// A permit now, `None` when every usable endpoint is busy, an error when none is usable.
    fn try_acquire(self: &Arc<Self>, avoid: &[usize]) -> Result<Option<Permit>, AcquireError> {
        let now = Instant::now();
        let mut s = self.lock();
        let n = s.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut any_usable = false;
        let mut best: Option<(bool, u32, usize)> = None;
        for k in 0..n {
            let i = start.wrapping_add(k) % n;
            let e = &s[i];
            let half_open = e.open_until.is_some_and(|t| now >= t);
            let usable = e.up && e.open_until.is_none_or(|_| half_open);
            if !usable {
                continue;
            }
            any_usable = true;
            // A half-open endpoint takes one trial request at a time.
            let cap = if half_open { 1 } else { self.max_concurrent };
            if e.in_flight >= cap {
                continue;
            }
            let key = (avoid.contains(&i), e.in_flight, i);
            if best.is_none_or(|b| (key.0, key.1) < (b.0, b.1)) {
                best = Some(key);
            }
        }
        if let Some((_, _, i)) = best {
            s[i].in_flight += 1;
            return Ok(Some(Permit { pool: Arc::clone(self), index: i }));
        }
        if any_usable {
            return Ok(None);
        }
        Err(AcquireError::AllDown(
            s.iter()
                .zip(&self.urls)
                .map(|(e, u)| {
                    let why = e.last_error.clone().unwrap_or_else(|| "down".into());
                    (u.label(), why)
                })
                .collect(),
        ))
    }

    /// A request on endpoint `i` finished well: it is up, its breaker closed, its failures
    /// forgotten.
    pub fn succeeded(&self, i: usize) {
        let mut s = self.lock();
        let e = &mut s[i];
        let was_out = !e.up || e.open_until.is_some();
        e.up = true;
        e.consecutive_failures = 0;
        e.open_until = None;
        e.cooldown = self.breaker_cooldown;
        e.last_error = None;
        e.served += 1;
        drop(s);
        if was_out {
            self.freed.notify_waiters();
        }
    }

    /// A request on endpoint `i` failed because of the endpoint; `unreachable` when it could
    /// not be reached at all (it is then down until a health check passes). Enough failures in
    /// a row open its breaker; a failed half-open trial opens it again for twice as long.
    pub fn failed(&self, i: usize, why: &str, unreachable: bool) {
        let now = Instant::now();
        let mut s = self.lock();
        let e = &mut s[i];
        e.failures += 1;
        e.consecutive_failures += 1;
        e.last_error = Some(why.to_string());
        if unreachable && e.up {
            e.up = false;
            tracing::warn!("remote endpoint {} is down: {why}", self.urls[i].label());
        }
        let trial = e.open_until.is_some_and(|t| now >= t);
        if trial {
            e.cooldown = (e.cooldown * 2).min(MAX_COOLDOWN);
        }
        if trial || (e.open_until.is_none() && e.consecutive_failures >= self.breaker_failures) {
            e.open_until = Some(now + e.cooldown);
            tracing::warn!(
                "remote endpoint {}: breaker open for {:?} after {} failures in a row ({why})",
                self.urls[i].label(),
                e.cooldown,
                e.consecutive_failures
            );
        }
    }

    /// A health check of endpoint `i` passed: it is up. An open breaker stays open (the check
    /// shows the server answers, not that its completions work); its cool-down ends it.
    fn check_passed(&self, i: usize) {
        let mut s = self.lock();
        let e = &mut s[i];
        let was_out = !e.up;
        e.up = true;
        drop(s);
        if was_out {
            tracing::info!("remote endpoint {} is up again", self.urls[i].label());
            self.freed.notify_waiters();
        }
    }

    /// A health check of endpoint `i` failed: it is down.
    fn check_failed(&self, i: usize, why: &str) {
        let mut s = self.lock();
        let e = &mut s[i];
        if e.up {
            tracing::warn!(
                "remote endpoint {} failed its health check: {why}",
                self.urls[i].label()
            );
        }
        e.up = false;
        e.failures += 1;
        e.last_error = Some(why.to_string());
    }

    /// What the pool knows of each endpoint now.
    pub fn status(&self) -> Vec<EndpointStatus> {
        let now = Instant::now();
        self.lock()
            .iter()
            .zip(&self.urls)
            .map(|(e, u)| EndpointStatus {
                url: u.clone(),
                usable: e.up && e.open_until.is_none_or(|t| now >= t),
                in_flight: e.in_flight,
                served: e.served,
                failures: e.failures,
                last_error: e.last_error.clone(),
            })
            .collect()
    }

    /// Run `check` on every endpoint every `interval` until the pool is dropped; a passing
    /// check marks an endpoint up, a failing one down.
    pub fn watch<F, Fut>(self: &Arc<Self>, interval: Duration, check: F)
    where
        F: Fn(EndpointUrl) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
    {
        let pool: Weak<Self> = Arc::downgrade(self);
        let check = Arc::new(check);
        super::runtime().spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(p) = pool.upgrade() else { return };
                let urls = p.urls.clone();
                drop(p);
                // Each check within the interval (at least 5 s), so one slow endpoint does not
                // hold up the others' next checks.
                let limit = interval.max(Duration::from_secs(5));
                let results = futures_join_all(urls.into_iter().map(|u| {
                    let check = Arc::clone(&check);
                    async move {
                        tokio::time::timeout(limit, check(u))
                            .await
                            .unwrap_or_else(|_| Err(format!("no answer within {limit:?}")))
                    }
                }))
                .await;
                let Some(p) = pool.upgrade() else { return };
                for (i, r) in results.into_iter().enumerate() {
                    match r.and_then(|r| r) {
                        Ok(()) => p.check_passed(i),
                        Err(why) => p.check_failed(i, &why),
                    }
                }
            }
        });
    }
}

fn random_start() -> usize {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    h.finish() as usize
}

/// Await every future, in order (the few endpoints of one model, checked at once); a future
/// that panicked gives an error.
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<Result<F::Output, String>>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.map_err(|e| format!("the check failed: {e}")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(n: usize, max: u32) -> Arc<Pool> {
        let urls = (0..n)
            .map(|i| EndpointUrl::parse(&format!("http://127.0.0.1:{}/v1", 9000 + i)).unwrap())
            .collect();
        let mut spec = RemoteSpec::new(urls, None);
        spec.max_concurrent = max;
        spec.breaker_failures = 2;
        spec.breaker_cooldown = Duration::from_millis(100);
        Pool::new(&spec)
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    #[test]
    fn least_busy_first_and_avoided_endpoints_last() {
        let p = pool(3, 2);
        rt().block_on(async {
            let a = p.acquire(&[], Duration::from_secs(1)).await.unwrap();
            let b = p.acquire(&[], Duration::from_secs(1)).await.unwrap();
            let c = p.acquire(&[], Duration::from_secs(1)).await.unwrap();
            let mut seen = vec![a.index(), b.index(), c.index()];
            seen.sort();
            assert_eq!(seen, vec![0, 1, 2], "one each before any gets a second");
            drop(b);
            let d = p.acquire(&[], Duration::from_secs(1)).await.unwrap();
            let free = seen.iter().copied().find(|i| *i != a.index() && *i != c.index()).unwrap();
            assert_eq!(d.index(), free, "the idle one");
            let e = p.acquire(&[0], Duration::from_secs(1)).await.unwrap();
            assert_ne!(e.index(), 0, "an avoided endpoint only when nothing else is free");
        });
    }

    #[test]
    fn a_full_pool_queues_and_times_out() {
        let p = pool(1, 1);
        rt().block_on(async {
            let held = p.acquire(&[], Duration::from_secs(1)).await.unwrap();
            let e = p.acquire(&[], Duration::from_millis(50)).await.err().unwrap();
            assert_eq!(e, AcquireError::Busy(Duration::from_millis(50)));
            let p2 = Arc::clone(&p);
            let waiter = tokio::spawn(async move {
                p2.acquire(&[], Duration::from_secs(5)).await.map(|p| p.index())
            });
            tokio::time::sleep(Duration::from_millis(30)).await;
            drop(held);
            assert_eq!(waiter.await.unwrap(), Ok(0));
        });
    }

    #[test]
    fn unreachable_endpoints_wait_for_a_health_check() {
        let p = pool(2, 4);
        p.failed(0, "connection refused", true);
        let st = p.status();
        assert!(!st[0].usable && st[1].usable);
        rt().block_on(async {
            for _ in 0..3 {
                let x = p.acquire(&[], Duration::from_secs(1)).await.unwrap();
                assert_eq!(x.index(), 1, "a down endpoint gets nothing");
            }
            p.failed(1, "refused", true);
            let e = p.acquire(&[], Duration::from_secs(1)).await.err().unwrap();
            assert!(e.to_string().contains("127.0.0.1:9000: connection refused"), "{e}");
            p.check_passed(0);
            assert_eq!(p.acquire(&[], Duration::from_secs(1)).await.unwrap().index(), 0);
        });
    }

    #[test]
    fn failing_requests_open_the_breaker_which_half_opens() {
        let p = pool(1, 4);
        rt().block_on(async {
            // Up (its health checks pass) but its requests fail: the second failure in a row
            // opens the breaker.
            p.failed(0, "HTTP 500", false);
            assert_eq!(p.acquire(&[], Duration::from_secs(1)).await.unwrap().index(), 0);
            p.failed(0, "HTTP 500", false);
            let e = p.acquire(&[], Duration::from_millis(50)).await.err().unwrap();
            assert!(matches!(e, AcquireError::AllDown(_)), "{e}");
            // After the cool-down one trial may go, one at a time.
            tokio::time::sleep(Duration::from_millis(120)).await;
            let trial = p.acquire(&[], Duration::from_secs(1)).await.unwrap();
            let e = p.acquire(&[], Duration::from_millis(50)).await.err().unwrap();
            assert!(matches!(e, AcquireError::Busy(_)), "one trial at a time: {e}");
            // A failed trial opens it again, for twice as long.
            p.failed(0, "HTTP 500", false);
            drop(trial);
            tokio::time::sleep(Duration::from_millis(120)).await;
            let e = p.acquire(&[], Duration::from_millis(10)).await.err().unwrap();
            assert!(matches!(e, AcquireError::AllDown(_)), "still open: {e}");
            tokio::time::sleep(Duration::from_millis(100)).await;
            let trial = p.acquire(&[], Duration::from_secs(1)).await.unwrap();
            // A trial that succeeds closes it.
            p.succeeded(trial.index());
            drop(trial);
            let a = p.acquire(&[], Duration::from_secs(1)).await.unwrap();
            let b = p.acquire(&[], Duration::from_secs(1)).await.unwrap();
            assert_eq!((a.index(), b.index()), (0, 0));
        });
        assert_eq!(p.status()[0].failures, 3);
        assert_eq!(p.status()[0].served, 1);
    }
}
