//! The standard `wasi:nn` interface over the host's models: a `ggml` backend of ours behind
//! `wasmtime-wasi-nn`'s backend traits (upstream has none for GGUF), for guests written against
//! `wasi:nn` alone.
//!
//! The convention (WasmEdge's ggml backend's, where it has one): graphs are preloaded by name
//! (`--nn-graph NAME=PATH`, `graph.load-by-name`); `compute` takes a tensor named `prompt` (or the
//! first tensor) holding the UTF-8 prompt as `u8`, and optionally one named `options` holding a
//! JSON object — `n-predict`, `temp`, `top-p`, `top-k`, `min-p`, `repeat-penalty`,
//! `repeat-last-n`, `seed`, `ctx-size`, `reverse-prompt` (a stop sequence), and this host's
//! `stop` (a list); other keys are refused — and returns the generated text as a `u8` tensor
//! named `output`. Each `compute` is a fresh session from its own inputs; the same limits as the
//! `tabagent:llm` interface apply (context size, prompt size, the guest's deadline). The host
//! links `wasi:nn` only when it was created for guests with graphs (`HostOptions::nn`).
//! `graph.load` from bytes is refused: graphs come from the user's grants only.

use crate::engine::{Constraint, Model, Prompt, StreamEvent};
use crate::error::LlmError;
use crate::params::{LlmLimits, SamplingRequest, SessionRequest};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use wasmtime_wasi_nn::backend::{
    BackendError, BackendExecutionContext, BackendFromDir, BackendGraph, BackendInner, Id,
    NamedTensor,
};
use wasmtime_wasi_nn::wit::{ExecutionTarget, GraphEncoding, TensorType};
use wasmtime_wasi_nn::{ExecutionContext, Graph, GraphRegistry, Tensor};

/// A guest's wall-clock deadline, shared with its graphs (hosts that bound each call move it).
#[derive(Clone, Default)]
pub struct NnDeadline(Arc<Mutex<Option<Instant>>>);

impl NnDeadline {
    /// A deadline at `at`.
    pub fn new(at: Option<Instant>) -> Self {
        Self(Arc::new(Mutex::new(at)))
    }

    /// Move it.
    pub fn set(&self, at: Option<Instant>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = at;
    }

    fn get(&self) -> Option<Instant> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Run blocking work from a synchronous host call: on a multi-threaded async runtime the worker
/// hands its other tasks on first, so nothing else waits behind it.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Largest `options` tensor, in bytes.
const MAX_OPTIONS: usize = 64 << 10;

/// The `ggml` backend: graphs come preloaded, so `load` from bytes is refused.
pub struct GgmlBackend;

impl BackendInner for GgmlBackend {
    fn encoding(&self) -> GraphEncoding {
        GraphEncoding::Ggml
    }

    fn load(&mut self, _: &[&[u8]], _: ExecutionTarget) -> Result<Graph, BackendError> {
        Err(fail(
            "graphs are not loaded from bytes here; use load-by-name with a graph the user granted (--nn-graph NAME=PATH)",
        ))
    }

    fn as_dir_loadable(&mut self) -> Option<&mut dyn BackendFromDir> {
        None
    }
}

/// A failure the guest sees as `runtime-error`. wasmtime-wasi-nn shows guests only "Failed
/// while accessing backend" for it, so the reason goes to the host's log too.
fn fail(message: impl std::fmt::Display) -> BackendError {
    let message = message.to_string();
    // Guest-made text: short and escaped in the log.
    let shown: String = message.chars().take(300).collect();
    tracing::warn!("wasi:nn: {}", shown.escape_debug());
    BackendError::BackendAccess(wasmtime::Error::msg(message))
}

/// One guest's granted graphs, by name.
#[derive(Default)]
pub struct NnGraphs(HashMap<String, Graph>);

impl NnGraphs {
    /// Grant `model` to the guest as the graph `name`.
    pub fn insert(
        &mut self,
        name: String,
        model: Arc<dyn Model>,
        limits: LlmLimits,
        threads: u32,
        deadline: NnDeadline,
    ) {
        let graph: Box<dyn BackendGraph> =
            Box::new(GgmlGraph(Arc::new(GraphState { model, limits, threads, deadline })));
        self.0.insert(name, Graph::from(graph));
    }
}

impl GraphRegistry for NnGraphs {
    fn get(&self, name: &str) -> Option<&Graph> {
        self.0.get(name)
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut Graph> {
        self.0.get_mut(name)
    }
}

struct GraphState {
    model: Arc<dyn Model>,
    limits: LlmLimits,
    threads: u32,
    deadline: NnDeadline,
}

struct GgmlGraph(Arc<GraphState>);

impl BackendGraph for GgmlGraph {
    fn init_execution_context(&self) -> Result<ExecutionContext, BackendError> {
        let ctx: Box<dyn BackendExecutionContext> = Box::new(GgmlContext {
            graph: Arc::clone(&self.0),
            prompt: None,
            options: None,
            output: None,
        });
        Ok(ExecutionContext::from(ctx))
    }
}

struct GgmlContext {
    graph: Arc<GraphState>,
    prompt: Option<String>,
    options: Option<Options>,
    output: Option<String>,
}

/// The options object: WasmEdge's ggml backend's names; any other key is refused.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Options {
    n_predict: Option<u32>,
    temp: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<u32>,
    min_p: Option<f32>,
    repeat_penalty: Option<f32>,
    repeat_last_n: Option<u32>,
    seed: Option<u64>,
    ctx_size: Option<u32>,
    /// Stop sequences (this host's name).
    stop: Option<Vec<String>>,
    /// A stop sequence (WasmEdge's name).
    reverse_prompt: Option<String>,
    /// A GBNF grammar the output must match.
    grammar: Option<String>,
    /// A JSON schema (an object) the output must match.
    json_schema: Option<serde_json::Value>,
}

fn utf8(what: &str, t: &Tensor) -> Result<String, BackendError> {
    if t.ty != TensorType::U8 {
        return Err(BackendError::UnsupportedTensorType(format!(
            "{what} must be a u8 tensor of UTF-8 text"
        )));
    }
    String::from_utf8(t.data.clone()).map_err(|_| fail(format!("{what} is not UTF-8")))
}

/// The options as session and sampling requests.
fn requests(o: &Options) -> (SessionRequest, SamplingRequest) {
    let mut stop = o.stop.clone().unwrap_or_default();
    stop.extend(o.reverse_prompt.clone());
    let session =
        SessionRequest { context_size: o.ctx_size, seed: o.seed, ..SessionRequest::default() };
    let sampling = SamplingRequest {
        max_tokens: o.n_predict,
        temperature: o.temp,
        top_k: o.top_k,
        top_p: o.top_p,
        min_p: o.min_p,
        repeat_penalty: o.repeat_penalty,
        repeat_window: o.repeat_last_n,
        seed: o.seed,
        stop,
        constraint: match (&o.grammar, &o.json_schema) {
            (Some(g), _) => Some(Constraint::Grammar(g.clone())),
            (None, Some(s)) => Some(Constraint::JsonSchema(s.to_string())),
            (None, None) => None,
        },
        tools: None,
    };
    (session, sampling)
}

impl GgmlContext {
    fn run(&mut self) -> Result<(), BackendError> {
        let prompt = self.prompt.clone().ok_or_else(|| fail("no prompt tensor was given"))?;
        let defaults = Options::default();
        let (session, sampling) = requests(self.options.as_ref().unwrap_or(&defaults));
        let g = &self.graph;
        let llm = |e: LlmError| fail(e);
        let prompt = Prompt::Text(prompt);
        g.limits.check_prompt(&prompt).map_err(llm)?;
        let options =
            session.resolve(g.model.info().context_length, &g.limits, g.threads).map_err(llm)?;
        let seed = session.seed_or_random();
        let mut params = sampling.resolve(seed).map_err(llm)?;
        params.pieces = false;
        params.deadline = g.deadline.get();
        let model = Arc::clone(&g.model);
        // The engine's stream is awaited from a thread outside the async runtime this host call
        // runs on.
        let text = blocking(|| {
            std::thread::scope(|s| {
                s.spawn(move || -> Result<String, LlmError> {
                    let session = model.new_session(&options)?;
                    let mut stream = session.generate(prompt, params)?;
                    loop {
                        match stream.blocking_next_event() {
                            Some(StreamEvent::Done(summary)) => return Ok(summary.text),
                            Some(StreamEvent::Failed(e)) => return Err(e),
                            Some(StreamEvent::Piece(_)) => {}
                            None => {
                                return Err(LlmError::runtime(
                                    "the generation ended without an outcome",
                                ));
                            }
                        }
                    }
                })
                .join()
                .unwrap_or_else(|_| Err(LlmError::runtime("the generation thread failed")))
            })
        })
        .map_err(llm)?;
        self.output = Some(text);
        Ok(())
    }
}

impl BackendExecutionContext for GgmlContext {
    fn set_input(&mut self, id: Id, tensor: &Tensor) -> Result<(), BackendError> {
        match (id.index(), id.name()) {
            (Some(0), _) | (_, Some("prompt")) => {
                self.graph.limits.check_size("the prompt", tensor.data.len()).map_err(fail)?;
                self.prompt = Some(utf8("the prompt", tensor)?);
            }
            (Some(1), _) | (_, Some("options")) => {
                if tensor.data.len() > MAX_OPTIONS {
                    return Err(fail(format!("the options are larger than {MAX_OPTIONS} bytes")));
                }
                let text = utf8("the options", tensor)?;
                let options = serde_json::from_str(&text)
                    .map_err(|e| fail(format!("the options are not valid: {e}")))?;
                self.options = Some(options);
            }
            _ => {
                return Err(fail("unknown input: the inputs are 0 (prompt) and 1 (options)"));
            }
        }
        Ok(())
    }

    fn get_output(&mut self, id: Id) -> Result<Tensor, BackendError> {
        if !(id.index() == Some(0) || id.name() == Some("output")) {
            return Err(fail(format!("unknown output {id:?}: the output is 0 (output)")));
        }
        let text = self.output.as_ref().ok_or_else(|| fail("compute has not run"))?;
        Ok(text_tensor(text))
    }

    fn compute(
        &mut self,
        inputs: Option<Vec<NamedTensor>>,
    ) -> Result<Option<Vec<NamedTensor>>, BackendError> {
        let Some(inputs) = inputs else {
            self.run()?;
            return Ok(None);
        };
        // Each compute stands alone: nothing of the last one's inputs carries over.
        self.prompt = None;
        self.options = None;
        for (i, t) in inputs.iter().enumerate() {
            let id = match t.name.as_str() {
                "prompt" | "options" => Id::Name(t.name.clone()),
                _ if i == 0 => Id::Index(0),
                _ => return Err(fail("unknown input: the inputs are 'prompt' and 'options'")),
            };
            self.set_input(id, &t.tensor)?;
        }
        self.run()?;
        let text = self.output.as_deref().unwrap_or_default();
        Ok(Some(vec![NamedTensor { name: "output".into(), tensor: text_tensor(text) }]))
    }
}

fn text_tensor(text: &str) -> Tensor {
    Tensor::new(vec![text.len() as u32], TensorType::U8, text.as_bytes().to_vec())
}
