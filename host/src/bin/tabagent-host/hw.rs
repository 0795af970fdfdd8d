//! `tabagent-host hw`: the CPU, its kernels, memory and GPUs, as a table or JSON.

use super::out::{emit, emit_json};
use serde::Serialize;
use std::fmt::Write as _;
use tabagent_host::engine::llama::LlamaEngine;
use tabagent_host::engine::{CpuKernels, Engine as _, GpuDevice};
use tabagent_host::hardware::{CpuInfo, MemoryInfo};

/// `hw --json`.
#[derive(Serialize)]
struct Report<'a> {
    cpu: &'a CpuInfo,
    kernels: Kernels<'a>,
    memory: &'a MemoryInfo,
    gpus: &'a [GpuDevice],
}

/// The kernels in use, or why there are none.
#[derive(Serialize)]
#[serde(untagged)]
enum Kernels<'a> {
    Loaded(&'a CpuKernels),
    Unavailable { error: String },
}

pub fn hw(json: bool) -> anyhow::Result<()> {
    let cpu = tabagent_host::hardware::cpu();
    let mem = tabagent_host::hardware::memory();
    let engine = LlamaEngine::new();
    // Without a CPU backend there is still a machine to describe: show it, then fail.
    let kernels = engine.cpu_kernels();
    let gpus = if kernels.is_ok() { engine.gpus() } else { Vec::new() };
    if json {
        let k = match &kernels {
            Ok(k) => Kernels::Loaded(k),
            Err(e) => Kernels::Unavailable { error: e.to_string() },
        };
        emit_json(&Report { cpu: &cpu, kernels: k, memory: &mem, gpus: &gpus })?;
    } else {
        emit(&table(&cpu, &kernels, &mem, &gpus))?;
    }
    kernels.map(|_| ()).map_err(Into::into)
}

fn table(
    cpu: &CpuInfo,
    kernels: &Result<CpuKernels, tabagent_host::LlmError>,
    mem: &MemoryInfo,
    gpus: &[GpuDevice],
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "CPU      {} ({})", cpu.brand, cpu.vendor);
    let _ = writeln!(
        s,
        "         family {:#x} model {:#x} stepping {}",
        cpu.family, cpu.model, cpu.stepping
    );
    let _ = writeln!(
        s,
        "         {} physical cores, {} threads",
        cpu.physical_cores, cpu.logical_threads
    );
    let _ = writeln!(s, "         {} / variant {}", cpu.microarchitecture, cpu.variant);
    let _ = writeln!(s, "         features: {}", cpu.features.join(" "));
    let _ = writeln!(
        s,
        "         caches: L1d {} KiB, L2 {} KiB, L3 {} KiB",
        cpu.l1d_cache >> 10,
        cpu.l2_cache >> 10,
        cpu.l3_cache >> 10
    );
    match kernels {
        Ok(kernels) => {
            let _ = writeln!(
                s,
                "Kernels  {}{}{}",
                kernels.variant,
                if kernels.forced { " (forced)" } else { " (best for this CPU)" },
                kernels.path.as_ref().map(|p| format!(" from {}", p.display())).unwrap_or_default()
            );
            let _ = writeln!(s, "         built for: {}", kernels.features.join(" "));
            if !kernels.available.is_empty() {
                let mut by_score = kernels.available.clone();
                by_score.sort_by(|a, b| b.score.cmp(&a.score).then_with(|| a.name.cmp(&b.name)));
                let list = |runs: bool| {
                    by_score
                        .iter()
                        .filter(|v| (v.score > 0) == runs)
                        .map(|v| {
                            if runs { format!("{} ({})", v.name, v.score) } else { v.name.clone() }
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                let _ = writeln!(s, "         run here (score): {}", list(true));
                let _ = writeln!(s, "         cannot run here: {}", list(false));
                for v in by_score.iter().filter(|v| v.score > 0) {
                    if let Some(why) = &v.not_picked {
                        let _ = writeln!(s, "         not picked: {}: {why}", v.name);
                    }
                }
            }
        }
        Err(e) => {
            let _ = writeln!(s, "Kernels  unavailable: {e}");
        }
    }
    let _ = writeln!(s, "Memory   {} total, {} available", gib(mem.total), gib(mem.available));
    if gpus.is_empty() {
        let _ = writeln!(s, "GPUs     none");
    }
    for g in gpus {
        let _ = writeln!(
            s,
            "GPU {}    {} ({}, {}): {} free of {}",
            g.index,
            g.description,
            g.name,
            g.backend,
            gib(g.memory_free),
            gib(g.memory_total)
        );
    }
    s
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
}
