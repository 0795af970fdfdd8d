//! Benchmark: the same greedy generation (model, prompt, context, batch, threads) run by a direct
//! llama-cpp-2 loop and by a guest component through tabagent-host, non-streaming and streaming,
//! interleaved rep by rep; optionally llama.cpp's own `llama-bench` as a native peer. Medians go
//! to stdout and, with `--write`, to `docs/BENCHMARKS.md`.
//!
//! ```sh
//! scripts/bench.sh            # builds, runs and writes docs/BENCHMARKS.md
//! ```

use anyhow::{Context as _, bail};
use clap::Parser;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::sampling::LlamaSampler;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tabagent_host::runtime::GuestConfig;

const PROMPT: &str = "The history of computing is a story of abstraction. Early machines were programmed \
by rewiring panels and flipping switches; then came stored programs, assemblers and compilers, each \
hiding the layer below. Operating systems abstracted the hardware, virtual machines abstracted the \
operating system, and the web turned the browser into a universal runtime. WebAssembly continues this \
line: a compact, sandboxed instruction format that runs at near-native speed on any host. In the \
chapters that follow we trace how";

#[derive(Parser)]
#[command(about = "Guest-driven generation through tabagent-host versus a direct llama-cpp-2 loop")]
struct Args {
    /// GGUF model (default: the test model)
    #[arg(long)]
    model: Option<PathBuf>,
    /// Tokens to generate per run
    #[arg(long, default_value_t = 128)]
    tokens: u32,
    /// Interleaved repetitions (the median is reported)
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// CPU threads (default: physical cores)
    #[arg(long)]
    threads: Option<u32>,
    /// llama.cpp's llama-bench, run as a native peer when given or found in
    /// ~/.cache/tabagent/llama-tools/bin
    #[arg(long)]
    llama_bench: Option<PathBuf>,
    /// Write the results as Markdown to this file
    #[arg(long)]
    write: Option<PathBuf>,
}

const CONTEXT: u32 = 2048;
const BATCH: u32 = 512;

/// One run's figures: prompt tokens/s, decode tokens/s, and the whole run in ms.
#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    prompt_tps: f64,
    decode_tps: f64,
    total_ms: f64,
    tokens: u32,
}

/// The direct loop, shaped like the engine's: decode the prompt, then sample / decode one token
/// at a time; the last sampled token is not decoded.
fn direct(
    model: &LlamaModel,
    threads: u32,
    max_tokens: u32,
) -> anyhow::Result<(Figures, Vec<u32>)> {
    let backend = tabagent_host::engine::llama::backend()?;
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(CONTEXT))
        .with_n_batch(BATCH)
        .with_n_ubatch(BATCH)
        .with_n_threads(threads as i32)
        .with_n_threads_batch(threads as i32);
    let mut ctx = model.new_context(backend, params)?;
    let prompt = model.vocab().tokenize(PROMPT.as_bytes(), true, true);
    let mut batch = LlamaBatch::new(BATCH as usize, 1);
    let t0 = Instant::now();
    let last = prompt.len() - 1;
    for (i, t) in prompt.iter().enumerate() {
        batch.add(*t, i as i32, &[0], i == last)?;
    }
    ctx.decode(&mut batch)?;
    let t1 = Instant::now();
    let mut sampler = LlamaSampler::greedy();
    let mut out = Vec::new();
    let mut idx = batch.n_tokens() - 1;
    let mut pos = prompt.len() as i32;
    loop {
        let token = sampler.sample(&ctx, idx);
        if model.vocab().is_eog(token) {
            break;
        }
        out.push(token.0 as u32);
        if out.len() as u32 >= max_tokens {
            break;
        }
        batch.clear();
        batch.add(token, pos, &[0], true)?;
        ctx.decode(&mut batch)?;
        pos += 1;
        idx = 0;
    }
    let t2 = Instant::now();
    let ms = |a: Instant, b: Instant| b.duration_since(a).as_secs_f64() * 1000.0;
    let figures = Figures {
        prompt_tps: prompt.len() as f64 * 1000.0 / ms(t0, t1),
        decode_tps: out.len() as f64 * 1000.0 / ms(t1, t2),
        total_ms: ms(t0, t2),
        tokens: out.len() as u32,
    };
    Ok((figures, out))
}

async fn guest(
    model: &Path,
    threads: u32,
    max_tokens: u32,
    mode: &str,
) -> anyhow::Result<(Figures, Value)> {
    let host = tabagent_tests::host();
    let component = host.compile_file(&tabagent_tests::guest("bench"))?;
    let request = json!({
        "prompt": PROMPT, "max_tokens": max_tokens, "context_size": CONTEXT,
        "batch_size": BATCH, "threads": threads, "mode": mode,
    });
    let config = GuestConfig {
        program: "bench".into(),
        args: vec![request.to_string()],
        models: BTreeMap::from([("smollm2".to_string(), model.to_path_buf())]),
        ..GuestConfig::default()
    };
    let out = host.run(&component, config).await?;
    if out.exit_code != 0 {
        bail!("bench guest failed: {}", out.stderr_text());
    }
    let v: Value = serde_json::from_str(out.stdout_text().trim())?;
    let f = |k: &str| v[k].as_f64().unwrap_or_default();
    let tokens = f("generated_tokens") as u32;
    let figures = if mode == "stream" {
        // Guest clock: first piece after prompt + first token; then one piece per later token.
        Figures {
            prompt_tps: f("prompt_tokens") * 1000.0 / f("prompt_ms"),
            decode_tps: f64::from(tokens.saturating_sub(1)) * 1000.0
                / (f("last_ms") - f("first_ms")),
            total_ms: f("wall_ms"),
            tokens,
        }
    } else {
        Figures {
            prompt_tps: f("prompt_tokens") * 1000.0 / f("prompt_ms"),
            decode_tps: f64::from(tokens) * 1000.0 / f("generation_ms"),
            total_ms: f("wall_ms"),
            tokens,
        }
    };
    Ok((figures, v))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

fn summarize(runs: &[Figures]) -> Figures {
    Figures {
        prompt_tps: median(runs.iter().map(|r| r.prompt_tps).collect()),
        decode_tps: median(runs.iter().map(|r| r.decode_tps).collect()),
        total_ms: median(runs.iter().map(|r| r.total_ms).collect()),
        tokens: runs.first().map_or(0, |r| r.tokens),
    }
}

/// llama-bench's pp and tg averages, if it runs.
fn llama_bench(
    path: &Path,
    model: &Path,
    prompt_tokens: usize,
    tokens: u32,
    threads: u32,
) -> anyhow::Result<(f64, f64)> {
    let out = std::process::Command::new(path)
        .arg("-m")
        .arg(model)
        .args([
            "-p",
            &prompt_tokens.to_string(),
            "-n",
            &tokens.to_string(),
            "-t",
            &threads.to_string(),
        ])
        .args(["-r", "3", "-o", "json"])
        .output()
        .with_context(|| format!("cannot run {}", path.display()))?;
    if !out.status.success() {
        bail!("llama-bench failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: Value = serde_json::from_slice(&out.stdout)?;
    let mut pp = 0.0;
    let mut tg = 0.0;
    for test in v.as_array().into_iter().flatten() {
        let ts = test["avg_ts"].as_f64().unwrap_or_default();
        if test["n_prompt"].as_u64().unwrap_or(0) > 0 {
            pp = ts;
        } else {
            tg = ts;
        }
    }
    Ok((pp, tg))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let model_path = args.model.clone().unwrap_or_else(tabagent_tests::model_path);
    let threads = args.threads.unwrap_or_else(tabagent_host::hardware::default_threads);
    let backend = tabagent_host::engine::llama::backend()?;
    let model = LlamaModel::load_from_file(backend, &model_path, &LlamaModelParams::default())?;
    let prompt_tokens = model.vocab().tokenize(PROMPT.as_bytes(), true, true).len();
    // Warm-up: page the weights in and compile the guest once.
    let (_, reference) = direct(&model, threads, args.tokens)?;
    guest(&model_path, threads, 4, "generate").await?;

    let (mut d, mut g, mut s) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 0..args.reps {
        let (fd, tokens) = direct(&model, threads, args.tokens)?;
        if tokens != reference {
            bail!("the direct loop is not deterministic");
        }
        let (fg, vg) = guest(&model_path, threads, args.tokens, "generate").await?;
        let (fs, vs) = guest(&model_path, threads, args.tokens, "stream").await?;
        for v in [&vg, &vs] {
            let t: Vec<u32> = serde_json::from_value(v["tokens"].clone())?;
            if t != reference {
                bail!("guest tokens differ from the direct loop's");
            }
        }
        eprintln!(
            "rep {rep}: direct {:.1}/{:.1}  generate {:.1}/{:.1}  stream {:.1}/{:.1}  (prompt/decode tok/s)",
            fd.prompt_tps,
            fd.decode_tps,
            fg.prompt_tps,
            fg.decode_tps,
            fs.prompt_tps,
            fs.decode_tps
        );
        d.push(fd);
        g.push(fg);
        s.push(fs);
    }
    let (d, g, s) = (summarize(&d), summarize(&g), summarize(&s));
    let peer_path = args.llama_bench.clone().or_else(|| {
        let p = PathBuf::from(std::env::var("HOME").unwrap_or_default())
            .join(".cache/tabagent/llama-tools/bin/llama-bench");
        p.is_file().then_some(p)
    });
    let peer = match &peer_path {
        Some(p) => match llama_bench(p, &model_path, prompt_tokens, args.tokens, threads) {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("llama-bench skipped: {e:#}");
                None
            }
        },
        None => None,
    };
    let cpu = tabagent_host::hardware::cpu();
    let mut md = String::new();
    md.push_str("# Benchmarks\n\n");
    md.push_str("Written by `scripts/bench.sh` (`cargo run --release -p tabagent-bench -- --write docs/BENCHMARKS.md`).\n\n");
    md.push_str("## Guest-driven generation versus a direct llama-cpp-2 loop\n\n");
    md.push_str(&format!(
        "Machine: {} ({} physical cores, {} threads, {}), {} threads used. Model: {} \
         ({}), greedy, prompt {} tokens, {} generated tokens, context {CONTEXT}, batch {BATCH}. \
         Median of {} interleaved repetitions; every run produced the same tokens.\n\n",
        cpu.brand,
        cpu.physical_cores,
        cpu.logical_threads,
        cpu.microarchitecture,
        threads,
        model_path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
        model
            .meta_val_str("general.file_type")
            .ok()
            .and_then(|t| t.parse().ok())
            .map_or_else(|| "unknown".into(), tabagent_host::engine::llama::file_type_name),
        prompt_tokens,
        d.tokens,
        args.reps,
    ));
    md.push_str(
        "| run | prompt tok/s | decode tok/s | whole run ms | prompt ratio | decode ratio |\n",
    );
    md.push_str("|---|---:|---:|---:|---:|---:|\n");
    let row = |name: &str, f: &Figures| {
        format!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.3} | {:.3} |\n",
            f.prompt_tps,
            f.decode_tps,
            f.total_ms,
            f.prompt_tps / d.prompt_tps,
            f.decode_tps / d.decode_tps
        )
    };
    md.push_str(&row("direct llama-cpp-2 loop", &d));
    md.push_str(&row("guest `generate` (host timings)", &g));
    md.push_str(&row("guest `stream` (decode on the guest's clock)", &s));
    if let Some((pp, tg)) = peer {
        md.push_str(&format!(
            "| llama.cpp `llama-bench` (native build, peer) | {pp:.1} | {tg:.1} | | {:.3} | {:.3} |\n",
            pp / d.prompt_tps,
            tg / d.decode_tps
        ));
    }
    let ok = g.decode_tps >= 0.98 * d.decode_tps
        && s.decode_tps >= 0.98 * d.decode_tps
        && g.prompt_tps >= 0.98 * d.prompt_tps;
    md.push_str(&format!(
        "\nTarget: guest decode ≥ 0.98 × direct and prompt ≥ 0.98 × direct: **{}**.\n\n",
        if ok { "met" } else { "not met in this run" }
    ));
    md.push_str(
        "How it is measured: the direct loop times prompt decode and the sample/decode loop with \
         `Instant`. The guest `generate` row uses the host's own timings of that call \
         (`usage.prompt-ms`, `usage.generation-ms`), its whole-run column the guest's clock around \
         `generate`. The `stream` row's decode rate is the guest's clock between its first and last \
         piece. The machines are shared and noisy (a third either way between runs), so compare \
         within a run.\n",
    );
    print!("{md}");
    if let Some(path) = args.write {
        std::fs::write(&path, &md).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
