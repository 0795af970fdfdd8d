//! `tabagent:llm/models`: loading granted models, metadata, placement, tokens and templates.

use super::bindings::models as wit;
use super::error::HostResult;
use super::resources::ModelResource;
use super::view::{LlmView, blocking};
use crate::engine::{ChatMessage, DeviceKind, Model, ToolCall};
use crate::error::LlmError;
use crate::format::{self, ModelReport};
use crate::params::{LoadRequest, check_chat};
use crate::registry::ModelState;
use crate::source::ModelSource;
use std::sync::Arc;
use wasmtime::component::Resource;

impl LlmView<'_> {
    /// The model behind a handle, or `unloaded`; a handle not in the table traps.
    pub(super) fn model(&self, r: &Resource<ModelResource>) -> HostResult<Arc<dyn Model>> {
        let lease = &self.table.get(r)?.0;
        Ok(self.ctx.models.model(lease)?)
    }
}

/// Chat messages from WIT, checked.
pub(super) fn to_chat(messages: Vec<wit::ChatMessage>) -> HostResult<Vec<ChatMessage>> {
    let m: Vec<_> = messages
        .into_iter()
        .map(|m| ChatMessage {
            role: m.role,
            content: m.content,
            tool_calls: m
                .tool_calls
                .into_iter()
                .map(|c| ToolCall { id: c.id, name: c.name, arguments: c.arguments })
                .collect(),
            tool_call_id: m.tool_call_id,
        })
        .collect();
    check_chat(&m)?;
    Ok(m)
}

/// A detection report as WIT.
fn to_report(r: ModelReport) -> wit::ModelReport {
    wit::ModelReport {
        format: r.format.name().into(),
        architecture: r.architecture,
        file_type: r.file_type,
        tensor_types: r
            .tensor_types
            .into_iter()
            .map(|t| wit::TensorTypeCount {
                name: t.name,
                tensors: t.tensors,
                elements: t.elements,
                bytes: t.bytes,
            })
            .collect(),
        parameter_count: r.parameter_count,
        context_length: r.context_length,
        layer_count: r.layer_count,
        has_chat_template: r.chat_template,
        bitnet: r.bitnet,
        task: r.task.name().into(),
        task_basis: r.task_basis,
        supported: r.route.supported(),
        route: r.route.describe(),
    }
}

impl wit::Host for LlmView<'_> {
    async fn inspect(&mut self, name: String) -> HostResult<wit::ModelReport> {
        let source = self.ctx.models.source(&name)?;
        let registry = Arc::clone(self.ctx.models.registry());
        // Only what is on disk: a hub model is looked up in the cache, never downloaded.
        let report = blocking(move || {
            let path = match source {
                ModelSource::File(p) => p,
                ModelSource::Remote(_) => {
                    return Err(LlmError::Unsupported(format!(
                        "model '{name}' is served remotely; there is no file to inspect"
                    )));
                }
                ModelSource::Hub(r) => {
                    let hub = registry.hub().ok_or_else(|| {
                        LlmError::Unsupported("this host has no Hugging Face cache".into())
                    })?;
                    // Cache errors can name host paths: the guest hears only that it failed.
                    let cached = hub.cached(&r).map_err(|e| {
                        tracing::warn!("inspect {r}: {e}");
                        LlmError::runtime(format!("{r} could not be looked up in the cache"))
                    })?;
                    match cached {
                        Some(m) => m.path,
                        None => {
                            return Err(LlmError::NotFound(format!(
                                "{r} is not in the Hugging Face cache yet"
                            )));
                        }
                    }
                }
            };
            format::report::inspect_file(&path).map_err(|e| match e {
                // The guest sees what went wrong, not where the file is.
                LlmError::InvalidInput(_) => {
                    LlmError::invalid(format!("model '{name}' cannot be read"))
                }
                other => other,
            })
        })
        .await?;
        Ok(to_report(report))
    }

    async fn granted(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.ctx.models.granted())
    }

    async fn loaded(&mut self) -> wasmtime::Result<Vec<wit::LoadedModel>> {
        Ok(self
            .ctx
            .models
            .loaded()
            .into_iter()
            .map(|m| wit::LoadedModel {
                name: m.name,
                state: match m.state {
                    ModelState::Loaded => wit::ModelState::Loaded,
                    ModelState::Draining => wit::ModelState::Draining,
                },
                sessions: m.sessions,
                file_size: m.file_size,
                gpu_layers: m.gpu_layers,
            })
            .collect())
    }

    async fn unload(&mut self, name: String) -> HostResult<()> {
        Ok(self.ctx.models.unload(&name)?)
    }
}

impl wit::HostModel for LlmView<'_> {
    async fn load(
        &mut self,
        name: String,
        options: Option<wit::LoadOptions>,
    ) -> HostResult<Resource<ModelResource>> {
        let source = self.ctx.models.source(&name)?;
        // Refuse before loading: a load the cap then refuses would leave the name admitted.
        self.check_room()?;
        let request = options.map_or_else(LoadRequest::default, |o| LoadRequest {
            gpu_layers: o.gpu_layers,
            use_mmap: o.use_mmap,
            use_mlock: o.use_mlock,
        });
        let registry = Arc::clone(self.ctx.models.registry());
        let model = blocking(move || registry.load_request(&source, request)).await?;
        let lease = self.ctx.models.admit(&name, model);
        self.push(ModelResource(lease))
    }

    async fn metadata(&mut self, r: Resource<ModelResource>) -> HostResult<wit::ModelMetadata> {
        let model = self.model(&r)?;
        let name = self.table.get(&r)?.0.name().to_string();
        let i = model.info();
        Ok(wit::ModelMetadata {
            name,
            architecture: i.architecture.clone(),
            display_name: i.display_name.clone(),
            vocab_size: i.vocab_size,
            context_length: i.context_length,
            embedding_size: i.embedding_size,
            layer_count: i.layer_count,
            head_count: i.head_count,
            head_count_kv: i.head_count_kv,
            parameter_count: i.parameter_count,
            file_size: i.file_size,
            file_type: i.file_type.clone(),
            bos_token: i.bos_token,
            eos_token: i.eos_token,
            newline_token: i.newline_token,
            chat_template: i.chat_template.clone(),
        })
    }

    async fn placement(&mut self, r: Resource<ModelResource>) -> HostResult<wit::Placement> {
        let p = self.model(&r)?.info().placement();
        Ok(wit::Placement {
            loaded_to: match p.device {
                DeviceKind::Cpu => wit::DeviceKind::Cpu,
                DeviceKind::Gpu => wit::DeviceKind::Gpu,
                DeviceKind::Split => wit::DeviceKind::Split,
            },
            gpu_layers: p.gpu_layers,
            cpu_layers: p.cpu_layers,
        })
    }

    async fn tokenize(
        &mut self,
        r: Resource<ModelResource>,
        text: String,
        add_special: bool,
        parse_special: bool,
    ) -> HostResult<Vec<u32>> {
        let model = self.model(&r)?;
        self.ctx.limits.check_size("the text", text.len())?;
        blocking(move || model.tokenize(&text, add_special, parse_special)).await
    }

    async fn detokenize(
        &mut self,
        r: Resource<ModelResource>,
        tokens: Vec<u32>,
        render_special: bool,
    ) -> HostResult<String> {
        let model = self.model(&r)?;
        self.ctx.limits.check_size("the token list", tokens.len() * 4)?;
        blocking(move || model.detokenize(&tokens, render_special)).await
    }

    async fn apply_chat_template(
        &mut self,
        r: Resource<ModelResource>,
        messages: Vec<wit::ChatMessage>,
        add_assistant: bool,
    ) -> HostResult<String> {
        let model = self.model(&r)?;
        let bytes = messages.iter().map(|m| m.role.len() + m.content.len()).sum();
        self.ctx.limits.check_size("the conversation", bytes)?;
        let messages = to_chat(messages)?;
        blocking(move || model.apply_chat_template(&messages, add_assistant)).await
    }

    async fn drop(&mut self, r: Resource<ModelResource>) -> wasmtime::Result<()> {
        self.delete(r)
    }
}
