//! The WIT glue against the fake engine: grants, sharing, streaming, lifecycle, limits, traps.

use super::bindings::{inference as wit_inf, models as wit_models};
use super::error::HostError;
use super::view::{LlmCtx, LlmView};
use crate::engine::fake::FakeEngine;
use crate::params::LlmLimits;
use crate::registry::Registry;
use crate::source::{ModelSource, UncheckedResolver};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use wasmtime::component::{Resource, ResourceTable};
use wit_inf::{HostCompletion as _, HostSession as _};
use wit_models::{Host as _, HostModel as _};

struct Guest {
    ctx: LlmCtx,
    table: ResourceTable,
}

impl Guest {
    fn view(&mut self) -> LlmView<'_> {
        LlmView { ctx: &mut self.ctx, table: &mut self.table }
    }
}

fn guest(registry: &Arc<Registry>, limits: LlmLimits) -> Guest {
    let grants: BTreeMap<String, ModelSource> = [
        ("m", "/models/m.gguf"),
        ("missing", "/models/missing.gguf"),
        ("broken", "/models/broken.gguf"),
    ]
    .into_iter()
    .map(|(n, p)| (n.to_string(), ModelSource::from(p)))
    .collect();
    Guest { ctx: LlmCtx::new(Arc::clone(registry), grants, limits), table: ResourceTable::new() }
}

fn setup() -> (FakeEngine, Arc<Registry>, Guest) {
    let engine = FakeEngine::new();
    let registry = Registry::with_resolver(Arc::new(engine.clone()), Arc::new(UncheckedResolver));
    let g = guest(&registry, LlmLimits::default());
    (engine, registry, g)
}

fn session_options() -> wit_inf::SessionOptions {
    wit_inf::SessionOptions {
        context_size: Some(256),
        batch_size: None,
        threads: Some(1),
        seed: Some(7),
        chat_template: None,
    }
}

fn greedy(max: u32) -> wit_inf::SamplingOptions {
    wit_inf::SamplingOptions {
        max_tokens: Some(max),
        temperature: Some(0.0),
        top_k: None,
        top_p: None,
        min_p: None,
        repeat_penalty: None,
        repeat_window: None,
        seed: None,
        stop: Vec::new(),
        grammar: None,
        json_schema: None,
        tools: Vec::new(),
        tool_choice: None,
        parallel_tool_calls: None,
    }
}

fn kind(e: &HostError) -> &'static str {
    match e {
        HostError::Guest(e) => e.kind(),
        HostError::Trap(_) => "trap",
    }
}

#[tokio::test]
async fn grants_are_enforced_and_load_errors_map_to_wit_errors() {
    let (engine, _registry, mut g) = setup();
    let mut v = g.view();
    let e = v.load("other".into(), None).await.err().unwrap();
    assert_eq!(kind(&e), "not-granted");
    assert!(
        matches!(&e, HostError::Guest(e) if e.message().contains("granted: broken, m, missing"))
    );
    assert_eq!(kind(&v.load("missing".into(), None).await.err().unwrap()), "not-found");
    assert_eq!(kind(&v.load("broken".into(), None).await.err().unwrap()), "runtime");
    assert_eq!(engine.counters.loads.load(SeqCst), 0);
    assert!(v.load("m".into(), None).await.is_ok());
    assert_eq!(v.granted().await.unwrap(), vec!["broken", "m", "missing"]);
}

#[tokio::test]
async fn weights_are_shared_between_handles_and_guests() {
    let (engine, registry, mut a) = setup();
    let mut b = guest(&registry, LlmLimits::default());
    let m1 = a.view().load("m".into(), None).await.unwrap();
    let m2 = a.view().load("m".into(), None).await.unwrap();
    let m3 = b.view().load("m".into(), None).await.unwrap();
    assert_eq!(engine.counters.loads.load(SeqCst), 1);
    assert_eq!(engine.counters.live_models.load(SeqCst), 1);
    wit_models::HostModel::drop(&mut a.view(), m1).await.unwrap();
    wit_models::HostModel::drop(&mut a.view(), m2).await.unwrap();
    wit_models::HostModel::drop(&mut b.view(), m3).await.unwrap();
    // Each guest's loaded list still holds the weights until it unloads.
    assert_eq!(engine.counters.live_models.load(SeqCst), 1);
    a.view().unload("m".into()).await.unwrap();
    // Guest a's unload touches only a: b still has the model and can use it.
    assert!(a.view().loaded().await.unwrap().is_empty());
    assert_eq!(b.view().loaded().await.unwrap().len(), 1);
    let mb = b.view().load("m".into(), None).await.unwrap();
    let mb_rep = mb.rep();
    let s = wit_inf::HostSession::create(&mut b.view(), mb, session_options()).await.unwrap();
    assert_eq!(engine.counters.live_models.load(SeqCst), 1);
    assert_eq!(engine.counters.loads.load(SeqCst), 1);
    wit_inf::HostSession::drop(&mut b.view(), s).await.unwrap();
    wit_models::HostModel::drop(&mut b.view(), Resource::new_own(mb_rep)).await.unwrap();
    b.view().unload("m".into()).await.unwrap();
    assert_eq!(engine.counters.live_models.load(SeqCst), 0);
}

#[tokio::test]
async fn generate_and_stream_agree() {
    let (_engine, _registry, mut g) = setup();
    let mut v = g.view();
    let m = v.load("m".into(), None).await.unwrap();
    let s = wit_inf::HostSession::create(&mut v, m, session_options()).await.unwrap();
    let prompt = || wit_inf::Prompt::Text("hello".into());
    let whole = v.generate(Resource::new_borrow(s.rep()), prompt(), greedy(100)).await.unwrap();
    assert_eq!(whole.text, "echo: hello");
    assert!(matches!(whole.finish_reason, wit_inf::FinishReason::Stop));
    let c = v.stream(Resource::new_borrow(s.rep()), prompt(), greedy(100)).await.unwrap();
    assert!(v.outcome(Resource::new_borrow(c.rep())).await.unwrap().is_none());
    let mut text = String::new();
    while let Some(piece) = v.next(Resource::new_borrow(c.rep())).await.unwrap() {
        text.push_str(&piece);
    }
    assert_eq!(text, whole.text);
    let outcome = v.outcome(Resource::new_borrow(c.rep())).await.unwrap().unwrap();
    assert_eq!(outcome.text, whole.text);
    assert_eq!(outcome.tokens, whole.tokens);
    // After the end, next keeps returning none.
    assert!(v.next(Resource::new_borrow(c.rep())).await.unwrap().is_none());
}

#[tokio::test]
async fn finish_reasons_and_stop_sequences() {
    let (_engine, _registry, mut g) = setup();
    let mut v = g.view();
    let m = v.load("m".into(), None).await.unwrap();
    let s = wit_inf::HostSession::create(&mut v, m, session_options()).await.unwrap();
    let prompt = || wit_inf::Prompt::Text("hello world".into());
    let short = v.generate(Resource::new_borrow(s.rep()), prompt(), greedy(3)).await.unwrap();
    assert_eq!(short.text, "ech");
    assert!(matches!(short.finish_reason, wit_inf::FinishReason::Length));
    let mut o = greedy(100);
    o.stop = vec!["wor".into()];
    let stopped = v.generate(Resource::new_borrow(s.rep()), prompt(), o).await.unwrap();
    assert_eq!(stopped.text, "echo: hello ");
    assert!(matches!(stopped.finish_reason, wit_inf::FinishReason::StopSequence));
}

#[tokio::test]
async fn unload_drains_sessions_and_frees_everything_after() {
    let (engine, _registry, mut g) = setup();
    let mut v = g.view();
    let m = v.load("m".into(), None).await.unwrap();
    let m_rep = m.rep();
    let s = wit_inf::HostSession::create(&mut v, m, session_options()).await.unwrap();
    v.unload("m".into()).await.unwrap();
    let e = v.metadata(Resource::new_borrow(m_rep)).await.err().unwrap();
    assert_eq!(kind(&e), "unloaded");
    let e =
        wit_inf::HostSession::create(&mut v, Resource::new_borrow(m_rep), session_options()).await;
    assert_eq!(kind(&e.err().unwrap()), "unloaded");
    let loaded = v.loaded().await.unwrap();
    assert_eq!(loaded.len(), 1);
    assert!(matches!(loaded[0].state, wit_models::ModelState::Draining));
    assert_eq!(loaded[0].sessions, 1);
    // The session still works.
    let text = wit_inf::Prompt::Text("x".into());
    assert!(v.generate(Resource::new_borrow(s.rep()), text, greedy(4)).await.is_ok());
    wit_inf::HostSession::drop(&mut v, s).await.unwrap();
    assert!(v.loaded().await.unwrap().is_empty());
    assert_eq!(engine.counters.live_sessions.load(SeqCst), 0);
    wit_models::HostModel::drop(&mut v, Resource::new_own(m_rep)).await.unwrap();
    assert_eq!(engine.counters.live_models.load(SeqCst), 0);
}

#[tokio::test]
async fn dropping_a_guest_frees_its_models_and_sessions() {
    let (engine, _registry, mut g) = setup();
    let mut v = g.view();
    let m = v.load("m".into(), None).await.unwrap();
    let s = wit_inf::HostSession::create(&mut v, Resource::new_borrow(m.rep()), session_options())
        .await
        .unwrap();
    let _c = v
        .stream(Resource::new_borrow(s.rep()), wit_inf::Prompt::Text("a".into()), greedy(5))
        .await
        .unwrap();
    assert_eq!(engine.counters.live_sessions.load(SeqCst), 1);
    drop(g);
    assert_eq!(engine.counters.live_sessions.load(SeqCst), 0);
    assert_eq!(engine.counters.live_models.load(SeqCst), 0);
}

#[tokio::test]
async fn bad_handles_trap_instead_of_returning_errors() {
    let (_engine, _registry, mut g) = setup();
    let mut v = g.view();
    let e = v.metadata(Resource::new_borrow(12345)).await.err().unwrap();
    assert_eq!(kind(&e), "trap");
    let e = v.next(Resource::new_borrow(777)).await.err().unwrap();
    assert_eq!(kind(&e), "trap");
}

#[tokio::test]
async fn limits_on_sessions_and_input_size() {
    let engine = FakeEngine::new();
    let registry = Registry::with_resolver(Arc::new(engine), Arc::new(UncheckedResolver));
    let limits = LlmLimits { max_sessions: 2, max_input_bytes: 16, ..LlmLimits::default() };
    let mut g = guest(&registry, limits);
    let mut v = g.view();
    let m = v.load("m".into(), None).await.unwrap();
    let b = || Resource::new_borrow(m.rep());
    let s1 = wit_inf::HostSession::create(&mut v, b(), session_options()).await.unwrap();
    let _s2 = wit_inf::HostSession::create(&mut v, b(), session_options()).await.unwrap();
    let e = wit_inf::HostSession::create(&mut v, b(), session_options()).await.err().unwrap();
    assert_eq!(kind(&e), "resource-exhausted");
    let e = v.tokenize(b(), "x".repeat(17), false, false).await.err().unwrap();
    assert_eq!(kind(&e), "invalid-input");
    let long = wit_inf::Prompt::Text("y".repeat(17));
    let e = v.generate(Resource::new_borrow(s1.rep()), long, greedy(2)).await.err().unwrap();
    assert_eq!(kind(&e), "invalid-input");
    wit_inf::HostSession::drop(&mut v, s1).await.unwrap();
    assert!(wit_inf::HostSession::create(&mut v, b(), session_options()).await.is_ok());
}

/// Completions count against the resource cap, and dropping one gives back exactly what it took:
/// a create-and-drop loop leaves the count where it was and the cap where it was.
#[tokio::test]
async fn the_resource_cap_holds_against_a_create_and_drop_loop_of_completions() {
    let engine = FakeEngine::new();
    let registry = Registry::with_resolver(Arc::new(engine), Arc::new(UncheckedResolver));
    let limits = LlmLimits { max_resources: 8, ..LlmLimits::default() };
    let mut g = guest(&registry, limits);
    let mut v = g.view();
    let m = v.load("m".into(), None).await.unwrap();
    let s = wit_inf::HostSession::create(&mut v, Resource::new_borrow(m.rep()), session_options())
        .await
        .unwrap();
    assert_eq!(v.ctx.resources(), 2);
    for _ in 0..100 {
        let p = wit_inf::Prompt::Text("a".into());
        let c = v.stream(Resource::new_borrow(s.rep()), p, greedy(2)).await.unwrap();
        assert_eq!(v.ctx.resources(), 3);
        wit_inf::HostCompletion::drop(&mut v, c).await.unwrap();
    }
    assert_eq!(v.ctx.resources(), 2);
    // Six more fit under the cap of eight, completions included; the next is refused.
    let (mut models, mut completions) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        models.push(v.load("m".into(), None).await.unwrap());
        let p = wit_inf::Prompt::Text("a".into());
        completions.push(v.stream(Resource::new_borrow(s.rep()), p, greedy(1)).await.unwrap());
    }
    assert_eq!(v.ctx.resources(), 8);
    let e = v.load("m".into(), None).await.err().unwrap();
    assert_eq!(kind(&e), "resource-exhausted");
    let p = wit_inf::Prompt::Text("a".into());
    let e = v.stream(Resource::new_borrow(s.rep()), p, greedy(1)).await.err().unwrap();
    assert_eq!(kind(&e), "resource-exhausted");
}
