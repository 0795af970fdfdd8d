//! Prepared components, kept by their bytes: a component run again is neither compiled again
//! (wasmtime also keeps compiled code on disk across processes) nor type-checked against the
//! linker again.

use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

/// Most prepared components kept.
const CAPACITY: usize = 16;

/// A prepared component: the hash of its bytes, the bytes, and its prepared form.
type Entry<A> = (u64, Arc<[u8]>, A);

/// A small least-recently-used cache of prepared components, keyed by their exact bytes.
pub(super) struct AppCache<A> {
    entries: Mutex<VecDeque<Entry<A>>>,
}

impl<A: Clone> AppCache<A> {
    pub(super) fn new() -> Self {
        Self { entries: Mutex::new(VecDeque::new()) }
    }

    /// The prepared form of `bytes`: from the cache, or made by `prepare` and kept. `prepare`
    /// runs outside the lock, so other components are served while one compiles.
    pub(super) fn get_or_prepare<E>(
        &self,
        bytes: &[u8],
        prepare: impl FnOnce() -> Result<A, E>,
    ) -> Result<A, E> {
        let mut h = DefaultHasher::new();
        bytes.hash(&mut h);
        let key = h.finish();
        {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = entries.iter().position(|(k, b, _)| *k == key && **b == *bytes) {
                let entry = entries.remove(i).expect("index from position");
                let app = entry.2.clone();
                entries.push_front(entry);
                return Ok(app);
            }
        }
        let app = prepare()?;
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.push_front((key, Arc::from(bytes), app.clone()));
        entries.truncate(CAPACITY);
        Ok(app)
    }

    /// Components kept.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_bytes_are_prepared_once_and_the_oldest_go_first() {
        let cache = AppCache::new();
        let mut made = 0;
        for _ in 0..3 {
            let v: Result<u32, ()> = cache.get_or_prepare(b"abc", || {
                made += 1;
                Ok(7)
            });
            assert_eq!(v, Ok(7));
        }
        assert_eq!(made, 1);
        for i in 0..CAPACITY as u32 + 4 {
            let _: Result<u32, ()> = cache.get_or_prepare(&i.to_le_bytes(), || Ok(i));
        }
        assert_eq!(cache.len(), CAPACITY);
        let again: Result<u32, ()> = cache.get_or_prepare(b"abc", || Ok(8));
        assert_eq!(again, Ok(8), "evicted, so prepared again");
        let failed: Result<u32, &str> = cache.get_or_prepare(b"bad", || Err("no"));
        assert_eq!(failed, Err("no"));
    }
}
