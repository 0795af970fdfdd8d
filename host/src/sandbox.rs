//! Limits on what one guest run may use: wall-clock time (wasmtime epochs, and the same deadline
//! inside generation), optional fuel, linear memory, tables and instances, and the number of
//! `tabagent:llm` resources it may hold at once.

use std::time::Duration;
use wasmtime::{StoreLimits, StoreLimitsBuilder};

/// How often the host's epoch ticks; deadlines are accurate to about this much.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Limits for one guest run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestLimits {
    /// Wall-clock time the guest may run, host calls included (`None`: no limit).
    pub deadline: Option<Duration>,
    /// Fuel (roughly, wasm instructions) the guest may burn; needs a host built with fuel on.
    pub fuel: Option<u64>,
    /// Largest linear memory, in bytes.
    pub memory_bytes: usize,
    /// Largest table, in elements.
    pub table_elements: usize,
    /// Most instances (a component counts each core instance).
    pub instances: usize,
    /// Most tables.
    pub tables: usize,
    /// Most linear memories.
    pub memories: usize,
    /// Most bytes the guest may pass into one host call; more traps ("too much data").
    pub max_call_bytes: usize,
}

impl Default for GuestLimits {
    fn default() -> Self {
        Self {
            deadline: Some(Duration::from_secs(600)),
            fuel: None,
            memory_bytes: 1 << 30,
            table_elements: 1 << 20,
            instances: 64,
            tables: 64,
            memories: 64,
            max_call_bytes: 64 << 20,
        }
    }
}

impl GuestLimits {
    /// The wasmtime store limiter for these limits. Growth past a limit fails (`memory.grow`
    /// returns -1) rather than trapping, so guests can handle it.
    pub fn store_limits(&self) -> StoreLimits {
        StoreLimitsBuilder::new()
            .memory_size(self.memory_bytes)
            .table_elements(self.table_elements)
            .instances(self.instances)
            .tables(self.tables)
            .memories(self.memories)
            .build()
    }
}

/// Tick the engine's epoch every [`EPOCH_TICK`] until the engine is dropped.
pub(crate) fn start_epoch_ticker(engine: &wasmtime::Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new().name("epoch-ticker".into()).spawn(move || {
        loop {
            std::thread::sleep(EPOCH_TICK);
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => break,
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!("cannot start the epoch ticker, deadlines will not fire: {e}");
    }
}

/// The store's resource limiter: [`GuestLimits`]' limits, and a note of whether a memory growth
/// was refused, so that a trap that follows can be reported as the memory limit it was.
pub struct GuestLimiter {
    inner: StoreLimits,
    memory_refused: bool,
}

impl GuestLimiter {
    /// A limiter for these limits.
    pub fn new(limits: &GuestLimits) -> Self {
        Self { inner: limits.store_limits(), memory_refused: false }
    }

    /// Whether the guest asked for memory past its limit.
    pub fn memory_refused(&self) -> bool {
        self.memory_refused
    }
}

impl wasmtime::ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = self.inner.memory_growing(current, desired, maximum)?;
        self.memory_refused |= !ok;
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_memory_growth_is_remembered() {
        use wasmtime::ResourceLimiter as _;
        let limits = GuestLimits { memory_bytes: 1 << 20, ..GuestLimits::default() };
        let mut l = GuestLimiter::new(&limits);
        assert!(l.memory_growing(0, 1 << 19, None).unwrap());
        assert!(!l.memory_refused());
        assert!(!l.memory_growing(1 << 19, 2 << 20, None).unwrap());
        assert!(l.memory_refused());
    }
}
