//! The registry itself: engine, resolver, and one load slot per (source, options).

use crate::engine::{Engine, LoadOptions, Model};
use crate::error::LlmResult;
use crate::hub::{Hub, HubResolver, PullPolicy};
use crate::params::LoadRequest;
use crate::remote::RemoteEngine;
use crate::source::{FileResolver, ModelSource, Resolver};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// One load slot: the weights while anyone holds them. Its lock is held for the whole load.
type Slot = Arc<Mutex<Option<Weak<dyn Model>>>>;

/// The shared state of one host's guests: engine, resolver and loaded weights.
pub struct Registry {
    engine: Arc<dyn Engine>,
    resolver: Arc<dyn Resolver>,
    hub: Option<Arc<Hub>>,
    slots: Mutex<HashMap<(ModelSource, LoadOptions), Slot>>,
    default_threads: u32,
    /// Chat templates the user named for local models, by source.
    chat_templates: Mutex<HashMap<ModelSource, String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Registry {
    /// A registry over an engine: local files, and hub models from the Hugging Face cache the
    /// environment names (pulled when missing).
    pub fn new(engine: Arc<dyn Engine>) -> Arc<Self> {
        match Hub::from_env() {
            Ok(hub) => Self::with_hub(engine, HubResolver::new(Arc::new(hub), PullPolicy::Missing)),
            Err(e) => {
                tracing::warn!("no Hugging Face hub: {e}");
                Self::with_resolver(engine, Arc::new(FileResolver))
            }
        }
    }

    /// A registry over an engine and a resolver of its own (no hub: guests cannot pull).
    pub fn with_resolver(engine: Arc<dyn Engine>, resolver: Arc<dyn Resolver>) -> Arc<Self> {
        Self::build(engine, resolver, None)
    }

    /// A registry whose hub models resolve through `resolver`, and whose guests may pull (where
    /// granted) through its hub.
    pub fn with_hub(engine: Arc<dyn Engine>, resolver: HubResolver) -> Arc<Self> {
        let hub = Arc::clone(resolver.hub());
        Self::build(engine, Arc::new(resolver), Some(hub))
    }

    fn build(
        engine: Arc<dyn Engine>,
        resolver: Arc<dyn Resolver>,
        hub: Option<Arc<Hub>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            engine,
            resolver,
            hub,
            slots: Mutex::new(HashMap::new()),
            default_threads: crate::hardware::default_threads(),
            chat_templates: Mutex::new(HashMap::new()),
        })
    }

    /// Use `template` (Jinja source) as the chat template of the local model `source`, instead
    /// of its file's, for every load of it from now on.
    pub fn set_chat_template(&self, source: ModelSource, template: String) {
        lock(&self.chat_templates).insert(source, template);
    }

    /// The hub guests pull through, if this registry has one.
    pub fn hub(&self) -> Option<&Arc<Hub>> {
        self.hub.as_ref()
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }

    /// CPU threads a session uses unless it asks for another number.
    pub fn default_threads(&self) -> u32 {
        self.default_threads
    }

    /// Load a model, or share the weights already loaded from the same source with the same
    /// options. Blocks: resolving reads the file's header, and loading reads the weights.
    pub fn load(&self, source: &ModelSource, options: &LoadOptions) -> LlmResult<Arc<dyn Model>> {
        let (slot, options) = {
            let mut slots = lock(&self.slots);
            prune(&mut slots);
            // Load options mean nothing to a remote model: one connection (and one pool of
            // endpoints) serves every guest granted it.
            let options = match source {
                ModelSource::Remote(_) => LoadOptions::default(),
                _ => {
                    let mut options = options.clone();
                    if options.chat_template.is_none() {
                        options.chat_template = lock(&self.chat_templates).get(source).cloned();
                    }
                    options
                }
            };
            (Arc::clone(slots.entry((source.clone(), options.clone())).or_default()), options)
        };
        let mut weights = lock(&slot);
        if let Some(model) = weights.as_ref().and_then(Weak::upgrade) {
            return Ok(model);
        }
        let model = match source {
            ModelSource::Remote(spec) => RemoteEngine.connect(spec)?,
            _ => {
                let resolved = self.resolver.resolve(source)?;
                self.engine.load(&resolved, &options)?
            }
        };
        *weights = Some(Arc::downgrade(&model));
        Ok(model)
    }

    /// Load a model with options as a guest asks for them: unset fields take their defaults
    /// (all layers on the GPU when the engine has one). Guests and host front ends that load
    /// the same source with the same request share one copy of the weights.
    pub fn load_request(
        &self,
        source: &ModelSource,
        request: LoadRequest,
    ) -> LlmResult<Arc<dyn Model>> {
        let has_gpu = request.gpu_layers.is_none() && !self.engine.gpus().is_empty();
        self.load(source, &request.resolve(has_gpu))
    }

    /// Models in use: loads in progress and weights alive.
    pub fn slots(&self) -> usize {
        let mut slots = lock(&self.slots);
        prune(&mut slots);
        slots.len()
    }
}

/// Forget the slots nobody uses: no load in progress and no live weights.
fn prune(slots: &mut HashMap<(ModelSource, LoadOptions), Slot>) {
    slots.retain(|_, s| {
        Arc::strong_count(s) > 1
            || s.try_lock().map_or(true, |w| w.as_ref().is_some_and(|w| w.strong_count() > 0))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::FakeEngine;
    use crate::source::UncheckedResolver;
    use std::sync::atomic::Ordering::SeqCst;
    use std::time::{Duration, Instant};

    fn registry() -> (FakeEngine, Arc<Registry>) {
        let engine = FakeEngine::new();
        let r = Registry::with_resolver(Arc::new(engine.clone()), Arc::new(UncheckedResolver));
        (engine, r)
    }

    #[test]
    fn parallel_loads_of_one_model_load_it_once() {
        let (engine, r) = registry();
        let source = ModelSource::from("/m/slow-a.gguf");
        let models: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| s.spawn(|| r.load(&source, &LoadOptions::default()).unwrap()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(models.iter().all(|m| Arc::ptr_eq(m, &models[0])));
        assert_eq!(engine.counters.loads.load(SeqCst), 1);
    }

    #[test]
    fn loads_of_different_models_run_in_parallel() {
        let (_engine, r) = registry();
        let start = Instant::now();
        let (slow, fast) = std::thread::scope(|s| {
            let slow = s.spawn(|| {
                r.load(&"/m/slow-a.gguf".into(), &LoadOptions::default()).unwrap();
                start.elapsed()
            });
            // Let the slow load take its slot first.
            std::thread::sleep(Duration::from_millis(100));
            let fast = s.spawn(|| {
                r.load(&"/m/b.gguf".into(), &LoadOptions::default()).unwrap();
                start.elapsed()
            });
            (slow.join().unwrap(), fast.join().unwrap())
        });
        assert!(slow >= FakeEngine::SLOW_LOAD, "{slow:?}");
        assert!(
            fast < Duration::from_millis(1000),
            "the second load waited for the first: {fast:?}"
        );
    }

    #[test]
    fn weights_are_freed_with_their_last_user_and_slots_forgotten() {
        let (engine, r) = registry();
        let m = r.load(&"/m/a.gguf".into(), &LoadOptions::default()).unwrap();
        let other = LoadOptions { use_mmap: false, ..LoadOptions::default() };
        let m2 = r.load(&"/m/a.gguf".into(), &other).unwrap();
        assert!(!Arc::ptr_eq(&m, &m2), "other options, other weights");
        assert_eq!(engine.counters.live_models.load(SeqCst), 2);
        drop((m, m2));
        assert_eq!(engine.counters.live_models.load(SeqCst), 0);
        let b = r.load(&"/m/b.gguf".into(), &LoadOptions::default()).unwrap();
        assert_eq!(r.slots(), 1);
        drop(b);
        assert_eq!(r.slots(), 0);
        let e = r.load(&"/m/broken.gguf".into(), &LoadOptions::default()).err().unwrap();
        assert_eq!(e.kind(), "runtime");
    }
}
