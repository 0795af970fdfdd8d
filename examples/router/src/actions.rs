//! The actions, each on the `tabagent:llm` interfaces. Field names follow TabAgent's native
//! host (`modelPath`, `modelFile`, `modelId`, `settings.n_gpu_layers`, `settings.n_ctx`, and
//! the payload's `isReady`, `backend`, `vocabSize`, `contextSize`, `embeddingDim`, `loadedTo`,
//! `fileSize`).

use crate::jobs::{AfterPull, PullJob, StreamJob, progress_json};
use crate::protocol::{Fields, Obj, Refusal, Request, error, event, parse, success};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use tabagent_guest::bindings::tabagent::llm::{inference as inf, models as raw_models};
use tabagent_guest::{
    FinishReason, LoadOptions, Model, ModelState, Pull, PullState, SessionOptions, hardware,
};

/// How often a running pull reports its progress.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// How LOAD_MODEL asked for a model.
pub struct LoadSpec {
    /// The name or reference the host loads.
    pub name: String,
    pub gpu_layers: Option<u32>,
    pub n_ctx: Option<u32>,
}

/// A model this router loaded, by its `modelId`.
struct Loaded {
    model: Model,
    n_ctx: Option<u32>,
}

/// The router's state: loaded models and work in flight.
#[derive(Default)]
pub struct Router {
    loaded: BTreeMap<String, Loaded>,
    streams: Vec<StreamJob>,
    pulls: Vec<PullJob>,
}

type Answer = Result<Vec<String>, Refusal>;

impl Router {
    /// Whether work is in flight.
    pub fn busy(&self) -> bool {
        !self.streams.is_empty() || !self.pulls.is_empty()
    }

    /// Answer one message. Never panics on input: every problem is an error answer.
    pub fn handle(&mut self, text: &str) -> Vec<String> {
        let req = match parse(text) {
            Ok(r) => r,
            Err((id, r)) => return vec![error(&id, &r)],
        };
        if !req.id.is_null() && self.in_flight(&req.id) {
            let r = Refusal::new("duplicate-id", format!("request {} is still running", req.id));
            return vec![error(&req.id, &r)];
        }
        match self.dispatch(&req) {
            Ok(out) => out,
            Err(r) => vec![error(&req.id, &r)],
        }
    }

    fn in_flight(&self, id: &Value) -> bool {
        self.streams.iter().any(|s| &s.id == id) || self.pulls.iter().any(|p| &p.id == id)
    }

    fn dispatch(&mut self, req: &Request) -> Answer {
        let long = ["LOAD_MODEL", "DOWNLOAD_MODEL", "GENERATE", "CHAT"];
        if req.id.is_null() && long.contains(&req.action.as_str()) {
            return Err(Refusal::new(
                "missing-field",
                format!(
                    "'id' is missing: {} answers with several messages, each carrying it",
                    req.action
                ),
            ));
        }
        match req.action.as_str() {
            "LOAD_MODEL" => self.load_model(req),
            "DOWNLOAD_MODEL" => self.download_model(req),
            "UNLOAD_MODEL" => self.unload_model(req),
            "GET_LOADED_MODELS" => Ok(vec![success(&req.id, self.loaded_models())]),
            "GET_MODEL_STATE" => self.model_state(req),
            "GET_SYSTEM_RESOURCES" => Ok(vec![success(&req.id, system_resources())]),
            "RECOMMEND_SPLIT" => self.recommend_split(req),
            "GENERATE" => self.generate(req, false),
            "CHAT" => self.generate(req, true),
            "CANCEL" => self.cancel(req),
            "EMBED" => self.embed(req),
            other => Err(Refusal::new(
                "unknown-action",
                format!(
                    "unknown action '{other}'; known: LOAD_MODEL, DOWNLOAD_MODEL, UNLOAD_MODEL, GET_LOADED_MODELS, GET_MODEL_STATE, GET_SYSTEM_RESOURCES, RECOMMEND_SPLIT, GENERATE, CHAT, CANCEL, EMBED"
                ),
            )),
        }
    }

    /// The hub reference of `modelPath` (a repository) and `modelFile` (a file or quantization).
    fn reference(req: &Request) -> Result<String, Refusal> {
        let repo = req.str("modelPath")?;
        Ok(match req.opt_str("modelFile")? {
            Some(f) => format!("{repo}:{f}"),
            None => repo.to_string(),
        })
    }

    fn load_model(&mut self, req: &Request) -> Answer {
        let path = req.str("modelPath")?;
        let settings = req.object("settings")?;
        let spec = |name: String| -> Result<LoadSpec, Refusal> {
            Ok(LoadSpec {
                name,
                gpu_layers: settings.opt_u32("n_gpu_layers")?,
                n_ctx: settings.opt_u32("n_ctx")?,
            })
        };
        let granted = tabagent_guest::granted_models();
        if granted.iter().any(|g| g == path) && req.opt_str("modelFile")?.is_none() {
            // A granted hub model is pulled first if missing, with progress; a file loads now.
            let spec = spec(path.to_string())?;
            return match Pull::start(path) {
                Ok(pull) => Ok(self.track_pull(req, pull, AfterPull::Load(spec))),
                Err(_) => Ok(vec![success(&req.id, self.load(spec)?)]),
            };
        }
        if !path.contains('/') {
            return Err(Refusal::new(
                "not-granted",
                format!(
                    "model '{path}' was not granted (granted: {}); a Hugging Face repository is named ORG/NAME",
                    if granted.is_empty() { "none".to_string() } else { granted.join(", ") }
                ),
            ));
        }
        // A Hugging Face repository: pull (at once if cached), then load.
        let reference = Self::reference(req)?;
        let spec = spec(reference.clone())?;
        self.start_pull(req, &reference, AfterPull::Load(spec))
    }

    fn download_model(&mut self, req: &Request) -> Answer {
        let reference = Self::reference(req)?;
        self.start_pull(req, &reference, AfterPull::Report)
    }

    fn start_pull(&mut self, req: &Request, reference: &str, after: AfterPull) -> Answer {
        let pull = Pull::start(reference)?;
        Ok(self.track_pull(req, pull, after))
    }

    fn track_pull(&mut self, req: &Request, pull: Pull, after: AfterPull) -> Vec<String> {
        let p = pull.progress();
        let first = event(&req.id, "progress", progress_json(&p));
        let last = Some((p.state, std::time::Instant::now()));
        self.pulls.push(PullJob { id: req.id.clone(), pull, last, after });
        vec![first]
    }

    /// Load under `spec.name` and describe the result as LOAD_MODEL's payload.
    fn load(&mut self, spec: LoadSpec) -> Result<Value, Refusal> {
        let options = LoadOptions { gpu_layers: spec.gpu_layers, use_mmap: None, use_mlock: None };
        let model = Model::load_with(&spec.name, options)?;
        self.loaded.insert(spec.name.clone(), Loaded { model, n_ctx: spec.n_ctx });
        self.describe(&spec.name)
    }

    fn describe(&self, model_id: &str) -> Result<Value, Refusal> {
        let l = self.model(model_id)?;
        let m = l.model.metadata()?;
        let placement = l.model.raw().placement()?;
        let loaded_to = match placement.loaded_to {
            raw_models::DeviceKind::Cpu => "CPU",
            raw_models::DeviceKind::Gpu => "GPU",
            raw_models::DeviceKind::Split => "CPU+GPU",
        };
        Ok(json!({
            "isReady": true,
            "backend": "tabagent-host (llama.cpp)",
            "modelId": model_id,
            "modelPath": model_id,
            "architecture": m.architecture,
            "name": m.display_name,
            "vocabSize": m.vocab_size,
            "contextSize": m.context_length,
            "nCtx": l.n_ctx,
            "embeddingDim": m.embedding_size,
            "layerCount": m.layer_count,
            "parameterCount": m.parameter_count,
            "fileType": m.file_type,
            "loadedTo": loaded_to,
            "gpuLayers": placement.gpu_layers,
            "fileSize": m.file_size,
            "hasChatTemplate": m.chat_template.is_some(),
        }))
    }

    fn model(&self, model_id: &str) -> Result<&Loaded, Refusal> {
        self.loaded.get(model_id).ok_or_else(|| {
            let ids: Vec<&str> = self.loaded.keys().map(String::as_str).collect();
            Refusal::new(
                "not-loaded",
                format!(
                    "model '{model_id}' is not loaded (loaded: {}); LOAD_MODEL it first",
                    if ids.is_empty() { "none".into() } else { ids.join(", ") }
                ),
            )
        })
    }

    fn unload_model(&mut self, req: &Request) -> Answer {
        let id = req.str("modelId")?;
        self.model(id)?;
        // Generations on it end first, each with its final answer.
        let mut out = Vec::new();
        let (ending, running): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.streams).into_iter().partition(|s| s.model_id == id);
        self.streams = running;
        for mut s in ending {
            s.finish(&mut out, Some(FinishReason::Cancelled));
        }
        self.loaded.remove(id);
        tabagent_guest::unload(id)?;
        out.push(success(&req.id, json!({"modelId": id, "unloaded": true})));
        Ok(out)
    }

    fn loaded_models(&self) -> Value {
        let states = tabagent_guest::loaded_models();
        let models: Vec<Value> = self
            .loaded
            .keys()
            .filter_map(|id| {
                let mut d = self.describe(id).ok()?;
                let s = states.iter().find(|s| &s.name == id);
                d["sessions"] = json!(s.map_or(0, |s| s.sessions));
                d["activeGenerations"] =
                    json!(self.streams.iter().filter(|j| &j.model_id == id).count());
                Some(d)
            })
            .collect();
        json!({"models": models})
    }

    fn model_state(&self, req: &Request) -> Answer {
        let id = req.str("modelId")?;
        let host = tabagent_guest::loaded_models().into_iter().find(|s| s.name == id);
        let state = match (&host, self.loaded.contains_key(id)) {
            (Some(s), true) if s.state == ModelState::Loaded => "loaded",
            (Some(_), _) => "draining",
            (None, _) => "not-loaded",
        };
        let mut payload = json!({
            "modelId": id,
            "isLoaded": state == "loaded",
            "state": state,
            "sessions": host.as_ref().map_or(0, |s| s.sessions),
            "activeGenerations": self.streams.iter().filter(|j| j.model_id == id).count(),
            "downloading": self.pulls.iter().any(|p| p.pull.reference().starts_with(id)),
        });
        if state == "loaded" {
            payload["model"] = self.describe(id)?;
        }
        Ok(vec![success(&req.id, payload)])
    }

    fn recommend_split(&self, req: &Request) -> Answer {
        let id = match req.opt_str("modelId")? {
            Some(id) => id.to_string(),
            None => Self::reference(req)?,
        };
        let n_ctx =
            req.opt_u32("n_ctx")?.or(req.object("settings")?.opt_u32("n_ctx")?).unwrap_or(4096);
        let r = hardware::recommend_split(&id, n_ctx)?;
        Ok(vec![success(
            &req.id,
            json!({
                "modelId": id,
                "gpuLayers": r.gpu_layers,
                "totalLayers": r.total_layers,
                "bytesPerLayer": r.bytes_per_layer,
                "kvCacheBytes": r.kv_cache_bytes,
                "marginBytes": r.margin_bytes,
                "freeDeviceMemory": r.free_device_memory,
                "explanation": r.explanation,
            }),
        )])
    }

    fn generate(&mut self, req: &Request, chat: bool) -> Answer {
        let model_id = req.str("modelId")?.to_string();
        let prompt = if chat {
            let Some(Value::Array(messages)) = req.fields.get("messages") else {
                let code = if req.fields.contains_key("messages") {
                    "invalid-field"
                } else {
                    "missing-field"
                };
                return Err(Refusal::new(code, "'messages' must be a list of {role, content}"));
            };
            let mut list = Vec::new();
            for (i, m) in messages.iter().enumerate() {
                let (Some(role), Some(content)) = (
                    m.get("role").and_then(Value::as_str),
                    m.get("content").and_then(Value::as_str),
                ) else {
                    return Err(Refusal::new(
                        "invalid-field",
                        format!("'messages[{i}]' needs string 'role' and 'content'"),
                    ));
                };
                list.push(raw_models::ChatMessage {
                    role: role.into(),
                    content: content.into(),
                    tool_calls: Vec::new(),
                    tool_call_id: None,
                });
            }
            inf::Prompt::Chat(list)
        } else {
            inf::Prompt::Text(req.str("prompt")?.to_string())
        };
        let o = req.object("options")?;
        let options = sampling(&o)?;
        let stream = req.opt_bool("stream")?.unwrap_or(true);
        let loaded = self.model(&model_id)?;
        let session = inf::Session::create(
            loaded.model.raw(),
            &SessionOptions {
                context_size: loaded.n_ctx,
                batch_size: None,
                threads: None,
                seed: options.seed,
                chat_template: None,
            },
        )?;
        let completion = session.stream(&prompt, &options)?;
        self.streams.push(StreamJob {
            id: req.id.clone(),
            model_id,
            stream,
            completion,
            text: String::new(),
            chunks: 0,
            _session: session,
        });
        Ok(Vec::new())
    }

    fn cancel(&mut self, req: &Request) -> Answer {
        let target = req.fields.get("targetId").filter(|t| !t.is_null()).cloned();
        let Some(target) = target else {
            return Err(Refusal::new(
                "missing-field",
                "'targetId' is missing (the id of the request to cancel)",
            ));
        };
        let mut out = Vec::new();
        if let Some(i) = self.streams.iter().position(|s| s.id == target) {
            let mut job = self.streams.remove(i);
            job.finish(&mut out, Some(FinishReason::Cancelled));
        } else if let Some(i) = self.pulls.iter().position(|p| p.id == target) {
            let job = self.pulls.remove(i);
            let r =
                Refusal::new("cancelled", "cancelled; what was received is kept for the next pull");
            out.push(error(&job.id, &r));
        } else {
            return Err(Refusal::new("not-found", format!("no request {target} is running")));
        }
        out.push(success(&req.id, json!({"targetId": target, "cancelled": true})));
        Ok(out)
    }

    fn embed(&mut self, req: &Request) -> Answer {
        let model_id = req.str("modelId")?;
        let texts: Vec<String> = match req.fields.get("input").or_else(|| req.fields.get("texts")) {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_str().map(str::to_string).ok_or_else(|| {
                        Refusal::new("invalid-field", format!("'input[{i}]' must be a string"))
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(Refusal::new(
                    "invalid-field",
                    "'input' must be a string or a list of strings",
                ));
            }
            None => return Err(Refusal::new("missing-field", "'input' is missing")),
        };
        let model = &self.model(model_id)?.model;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let vectors = model.embed(&refs)?;
        let dim = vectors.first().map_or(0, Vec::len);
        // At most about 24 bytes a number in JSON: large results go ahead in parts under the 1 MiB limit.
        let per_part = (600_000 / (dim.max(1) * 24)).max(1);
        if vectors.len() <= per_part {
            let payload = json!({"modelId": model_id, "dimension": dim, "embeddings": vectors});
            return Ok(vec![success(&req.id, payload)]);
        }
        let mut out = Vec::new();
        for (i, part) in vectors.chunks(per_part).enumerate() {
            let payload = json!({"index": i, "offset": i * per_part, "embeddings": part});
            out.push(event(&req.id, "streaming", payload));
        }
        let payload = json!({"modelId": model_id, "dimension": dim, "count": vectors.len(), "parts": out.len()});
        out.push(success(&req.id, payload));
        Ok(out)
    }

    /// Advance the work in flight: one piece of each generation, and the pulls' progress.
    pub fn poll(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.streams.len() {
            if self.streams[i].step(&mut out) {
                self.streams.remove(i);
            } else {
                i += 1;
            }
        }
        let only_pulls = self.streams.is_empty();
        let mut i = 0;
        while i < self.pulls.len() {
            // With nothing else to do, wait a little for progress instead of spinning.
            let p = if only_pulls && i == 0 {
                self.pulls[i].pull.wait(200)
            } else {
                self.pulls[i].pull.progress()
            };
            match p.state {
                PullState::Done | PullState::Failed => {
                    let job = self.pulls.remove(i);
                    out.push(event(&job.id, "progress", progress_json(&p)));
                    if p.state == PullState::Failed {
                        let e = p.error.map(tabagent_guest::Error::from).map(Refusal::from);
                        out.push(error(
                            &job.id,
                            &e.unwrap_or(Refusal::new("runtime", "the pull failed")),
                        ));
                        continue;
                    }
                    match job.after {
                        AfterPull::Report => out.push(success(
                            &job.id,
                            json!({"modelPath": job.pull.reference(), "fileSize": p.bytes_done, "files": p.files_total, "downloaded": true}),
                        )),
                        AfterPull::Load(spec) => match self.load(spec) {
                            Ok(payload) => out.push(success(&job.id, payload)),
                            Err(r) => out.push(error(&job.id, &r)),
                        },
                    }
                }
                _ => {
                    // On a change of state, else at most four times a second.
                    let due = self.pulls[i]
                        .last
                        .is_none_or(|(s, at)| s != p.state || at.elapsed() >= PROGRESS_EVERY);
                    if due {
                        self.pulls[i].last = Some((p.state, std::time::Instant::now()));
                        out.push(event(&self.pulls[i].id, "progress", progress_json(&p)));
                    }
                    i += 1;
                }
            }
        }
        out
    }
}

/// The WIT sampling options from a request's `options` (llama.cpp's names).
fn sampling(o: &Obj) -> Result<inf::SamplingOptions, Refusal> {
    let stop = match o.0.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    Refusal::new("invalid-field", "'options.stop' must hold strings")
                })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(Refusal::new("invalid-field", "'options.stop' must be a string or a list"));
        }
    };
    Ok(inf::SamplingOptions {
        max_tokens: o.opt_u32("max_tokens")?.or(o.opt_u32("n_predict")?),
        temperature: o.opt_f32("temperature")?,
        top_k: o.opt_u32("top_k")?,
        top_p: o.opt_f32("top_p")?,
        min_p: o.opt_f32("min_p")?,
        repeat_penalty: o.opt_f32("repeat_penalty")?,
        repeat_window: o.opt_u32("repeat_last_n")?,
        seed: o.opt_u64("seed")?,
        stop,
        ..tabagent_guest::default_sampling()
    })
}

/// GET_SYSTEM_RESOURCES: the CPU, its kernels, memory and GPUs.
fn system_resources() -> Value {
    let cpu = hardware::cpu();
    let mem = hardware::memory();
    let gpus: Vec<Value> = hardware::gpus()
        .into_iter()
        .map(|g| json!({"index": g.index, "name": g.name, "backend": g.backend, "memoryTotal": g.memory_total, "memoryFree": g.memory_free}))
        .collect();
    let kernels =
        hardware::kernels().ok().map(|k| json!({"variant": k.variant, "forced": k.forced}));
    json!({
        "cpu": {
            "vendor": cpu.vendor,
            "brand": cpu.brand,
            "microarchitecture": cpu.microarchitecture,
            "physicalCores": cpu.physical_cores,
            "logicalThreads": cpu.logical_threads,
            "features": cpu.features,
        },
        "kernels": kernels,
        "memory": {"total": mem.total, "available": mem.available},
        "gpus": gpus,
        "hasGpu": !gpus.is_empty(),
    })
}
