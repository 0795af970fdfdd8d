//! `tabagent:llm/hardware`: CPU, GPUs, CPU kernels, memory and the layer-split advice.

use super::bindings::hardware as wit;
use super::error::HostResult;
use super::view::{LlmView, blocking};
use crate::error::LlmError;
use crate::hardware;
use std::sync::Arc;

impl wit::Host for LlmView<'_> {
    async fn cpu(&mut self) -> wasmtime::Result<wit::CpuInfo> {
        let c = hardware::cpu();
        Ok(wit::CpuInfo {
            vendor: c.vendor,
            brand: c.brand,
            family: c.family,
            model: c.model,
            stepping: c.stepping,
            physical_cores: c.physical_cores,
            logical_threads: c.logical_threads,
            features: c.features,
            l1d_cache: c.l1d_cache,
            l2_cache: c.l2_cache,
            l3_cache: c.l3_cache,
            microarchitecture: c.microarchitecture,
            variant: c.variant,
        })
    }

    async fn gpus(&mut self) -> wasmtime::Result<Vec<wit::GpuInfo>> {
        let engine = Arc::clone(self.ctx.models.registry().engine());
        let gpus = tokio::task::spawn_blocking(move || engine.gpus()).await?;
        Ok(gpus
            .into_iter()
            .map(|g| wit::GpuInfo {
                index: g.index,
                name: g.name,
                description: g.description,
                backend: g.backend,
                memory_total: g.memory_total,
                memory_free: g.memory_free,
            })
            .collect())
    }

    async fn kernels(&mut self) -> HostResult<wit::CpuKernels> {
        let engine = Arc::clone(self.ctx.models.registry().engine());
        let k = blocking(move || engine.cpu_kernels()).await?;
        Ok(wit::CpuKernels {
            variant: k.variant,
            forced: k.forced,
            features: k.features,
            available: k
                .available
                .into_iter()
                .map(|v| wit::KernelVariant { name: v.name, score: v.score })
                .collect(),
        })
    }

    async fn memory(&mut self) -> wasmtime::Result<wit::MemoryInfo> {
        let m = hardware::memory();
        Ok(wit::MemoryInfo { total: m.total, available: m.available })
    }

    async fn recommend_split(
        &mut self,
        model: String,
        context_size: u32,
    ) -> HostResult<wit::SplitRecommendation> {
        let source = self.ctx.models.source(&model)?;
        if context_size == 0 {
            return Err(LlmError::invalid("context-size must be at least 1").into());
        }
        let engine = Arc::clone(self.ctx.models.registry().engine());
        let r = blocking(move || {
            let path = source.path().ok_or_else(|| {
                LlmError::Unsupported(format!("{source} is not a local file to read layers from"))
            })?;
            let file = crate::gguf::GgufFile::open(path)
                .map_err(|e| LlmError::invalid(format!("{}: {e}", path.display())))?;
            let free = engine.gpus().iter().map(|g| g.memory_free).max();
            Ok(hardware::recommend_split(&hardware::SplitInput::from_gguf(
                &file,
                context_size,
                free,
            )))
        })
        .await?;
        Ok(wit::SplitRecommendation {
            gpu_layers: r.gpu_layers,
            total_layers: r.total_layers,
            bytes_per_layer: r.bytes_per_layer,
            kv_cache_bytes: r.kv_cache_bytes,
            margin_bytes: r.margin_bytes,
            free_device_memory: r.free_device_memory,
            explanation: r.explanation,
        })
    }
}
