//! The standard `wasi:nn` interface over the host's models: a `ggml` backend of ours behind
//! `wasmtime-wasi-nn`'s backend traits (upstream has none for GGUF), for guests written against
//! `wasi:nn` alone.
//!
//! The convention (WasmEdge's ggml backend's, where it has one): graphs are preloaded by name
//! (`--nn-graph NAME=PATH`, `graph.load-by-name`); `compute` takes a tensor named `prompt` (or the
//! first tensor) holding the UTF-8 prompt as `u8`, and optionally one named `options` holding a
//! JSON object — `n-predict`, `temp`, `top-p`, `top-k`, `min-p`, `repeat-penalty`,
//! `repeat-last-n`, `seed`, `ctx-size`, `stop` (a list of strings) — and returns the generated
//! text as a `u8` tensor named `output`. Each `compute` is a fresh session; the same limits as
//! the `tabagent:llm` interface apply (context size, prompt size, the guest's deadline).
//! `graph.load` from bytes is refused: graphs come from the user's grants only.

use crate::engine::{Model, Prompt, StreamEvent};
use crate::error::LlmError;
use crate::params::{LlmLimits, SamplingRequest, SessionRequest};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use wasmtime_wasi_nn::backend::{
    BackendError, BackendExecutionContext, BackendFromDir, BackendGraph, BackendInner, Id,
    NamedTensor,
};
use wasmtime_wasi_nn::wit::{ExecutionTarget, GraphEncoding, TensorType};
use wasmtime_wasi_nn::{ExecutionContext, Graph, GraphRegistry, Tensor};

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
    tracing::warn!("wasi:nn: {message}");
    BackendError::BackendAccess(wasmtime::Error::msg(message.to_string()))
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
        deadline: Option<Instant>,
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
    deadline: Option<Instant>,
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
    options: Option<serde_json::Value>,
    output: Option<String>,
}

fn utf8(what: &str, t: &Tensor) -> Result<String, BackendError> {
    if t.ty != TensorType::U8 {
        return Err(BackendError::UnsupportedTensorType(format!(
            "{what} must be a u8 tensor of UTF-8 text"
        )));
    }
    String::from_utf8(t.data.clone()).map_err(|_| fail(format!("{what} is not UTF-8")))
}

/// The options object's fields, as sampling and session requests.
fn requests(o: &serde_json::Value) -> Result<(SessionRequest, SamplingRequest), BackendError> {
    let obj = o.as_object().ok_or_else(|| fail("options must be a JSON object"))?;
    let uint = |k: &str| -> Result<Option<u32>, BackendError> {
        obj.get(k)
            .map(|v| {
                v.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| fail(format!("options.{k} must be a whole number")))
            })
            .transpose()
    };
    let num = |k: &str| -> Result<Option<f32>, BackendError> {
        obj.get(k)
            .map(|v| {
                v.as_f64()
                    .map(|f| f as f32)
                    .ok_or_else(|| fail(format!("options.{k} must be a number")))
            })
            .transpose()
    };
    let stop = match obj.get("stop") {
        None => Vec::new(),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| fail("options.stop must be a list of strings"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(fail("options.stop must be a list of strings")),
    };
    let seed = obj
        .get("seed")
        .map(|v| v.as_u64().ok_or_else(|| fail("options.seed must be a whole number")))
        .transpose()?;
    let session =
        SessionRequest { context_size: uint("ctx-size")?, seed, ..SessionRequest::default() };
    let sampling = SamplingRequest {
        max_tokens: uint("n-predict")?,
        temperature: num("temp")?,
        top_k: uint("top-k")?,
        top_p: num("top-p")?,
        min_p: num("min-p")?,
        repeat_penalty: num("repeat-penalty")?,
        repeat_window: uint("repeat-last-n")?,
        seed,
        stop,
    };
    Ok((session, sampling))
}

impl GgmlContext {
    fn run(&mut self) -> Result<(), BackendError> {
        let prompt = self.prompt.clone().ok_or_else(|| fail("no prompt tensor was given"))?;
        let (session, sampling) = match &self.options {
            Some(o) => requests(o)?,
            None => (SessionRequest::default(), SamplingRequest::default()),
        };
        let g = &self.graph;
        let llm = |e: LlmError| fail(e);
        let prompt = Prompt::Text(prompt);
        g.limits.check_prompt(&prompt).map_err(llm)?;
        let options =
            session.resolve(g.model.info().context_length, &g.limits, g.threads).map_err(llm)?;
        let seed = session.seed_or_random();
        let mut params = sampling.resolve(seed).map_err(llm)?;
        params.pieces = false;
        params.deadline = g.deadline;
        let model = Arc::clone(&g.model);
        // The engine's stream is awaited from a thread outside the async runtime this host call
        // runs on.
        let text = std::thread::scope(|s| {
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
        .map_err(llm)?;
        self.output = Some(text);
        Ok(())
    }
}

impl BackendExecutionContext for GgmlContext {
    fn set_input(&mut self, id: Id, tensor: &Tensor) -> Result<(), BackendError> {
        match (id.index(), id.name()) {
            (Some(0), _) | (_, Some("prompt")) => self.prompt = Some(utf8("the prompt", tensor)?),
            (Some(1), _) | (_, Some("options")) => {
                let text = utf8("the options", tensor)?;
                self.options = Some(
                    serde_json::from_str(&text)
                        .map_err(|e| fail(format!("the options are not JSON: {e}")))?,
                );
            }
            _ => {
                return Err(fail(format!(
                    "unknown input {id:?}: the inputs are 0 (prompt) and 1 (options)"
                )));
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
        for (i, t) in inputs.iter().enumerate() {
            let id = match t.name.as_str() {
                "prompt" | "options" => Id::Name(t.name.clone()),
                _ if i == 0 => Id::Index(0),
                other => {
                    return Err(fail(format!(
                        "unknown input '{other}': the inputs are 'prompt' and 'options'"
                    )));
                }
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
