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
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use tabagent_host::runtime::GuestConfig;

use tabagent_tests::reference::{
    BATCH, CONTEXT, Figures, LoopParams, PROMPT, PROMPT_REPS, greedy_loop, median,
};

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
    /// The native peer (the same direct loop, llama.cpp built with -march=native), run when
    /// given or found in ~/.cache/tabagent/native-peer (scripts/build-native-peer.sh)
    #[arg(long)]
    native_peer: Option<PathBuf>,
    /// Write the results as Markdown to this file
    #[arg(long)]
    write: Option<PathBuf>,
    /// CPU kernel variants to compare with the one the host picks (run through the direct
    /// loop); the generic SSE2-only `x64`, the baseline, is always run
    #[arg(long, value_delimiter = ',', default_value = "x64,sse42,haswell")]
    variants: Vec<String>,
    /// Internal: run one direct loop and print its figures as JSON
    #[arg(long, hide = true)]
    direct_child: bool,
}

/// The direct loop, in a child process of its own. llama.cpp's OpenMP thread team belongs to
/// the thread that calls it, and its idle worker outlives that thread: with more OpenMP threads
/// than cores libgomp throttles spinning for every team, which slowed whichever side ran second
/// in one process by ~40%. A process per side keeps each to one team, as in real use.
fn direct(model: &Path, threads: u32, max_tokens: u32) -> anyhow::Result<(Figures, Vec<u32>)> {
    direct_with(model, threads, max_tokens, None).map(|(f, ids, _)| (f, ids))
}

/// [`direct`] with the CPU kernels of `variant` (`None`: the host's pick); also returns the
/// variant the child ran.
fn direct_with(
    model: &Path,
    threads: u32,
    max_tokens: u32,
    variant: Option<&str>,
) -> anyhow::Result<(Figures, Vec<u32>, String)> {
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    match variant {
        Some(v) => cmd.env("TABAGENT_CPU_VARIANT", v),
        None => cmd.env_remove("TABAGENT_CPU_VARIANT"),
    };
    let out = cmd
        .arg("--direct-child")
        .arg("--model")
        .arg(model)
        .args(["--threads", &threads.to_string(), "--tokens", &max_tokens.to_string()])
        .output()?;
    parse_child(&out)
}

/// The same loop in the native peer (`benches/native-peer`, llama.cpp built for this CPU).
fn native_peer(
    peer: &Path,
    model: &Path,
    threads: u32,
    max_tokens: u32,
) -> anyhow::Result<(Figures, Vec<u32>, String)> {
    let out = std::process::Command::new(peer)
        .arg("--model")
        .arg(model)
        .args(["--threads", &threads.to_string(), "--tokens", &max_tokens.to_string()])
        .output()
        .with_context(|| format!("cannot run {}", peer.display()))?;
    parse_child(&out)
}

/// Figures, tokens and CPU variant from a direct-loop child's JSON.
fn parse_child(out: &std::process::Output) -> anyhow::Result<(Figures, Vec<u32>, String)> {
    if !out.status.success() {
        bail!("direct loop failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: Value = serde_json::from_slice(&out.stdout)?;
    let f = |k: &str| v[k].as_f64().unwrap_or_default();
    let figures = Figures {
        prompt_tps: f("prompt_tps"),
        decode_tps: f("decode_tps"),
        step_tps: f("step_tps"),
        total_ms: f("total_ms"),
        tokens: f("tokens") as u32,
    };
    let ran = v["variant"].as_str().unwrap_or_default().to_string();
    Ok((figures, serde_json::from_value(v["ids"].clone())?, ran))
}

fn direct_child(model: &Path, threads: u32, max_tokens: u32) -> anyhow::Result<()> {
    let backend = tabagent_host::engine::llama::backend()?;
    let model = LlamaModel::load_from_file(backend, model, &LlamaModelParams::default())?;
    let p = LoopParams { threads, max_tokens, prompt_reps: PROMPT_REPS };
    let (f, ids, _) = greedy_loop(backend, &model, PROMPT, p)?;
    let v = json!({
        "prompt_tps": f.prompt_tps, "decode_tps": f.decode_tps, "step_tps": f.step_tps,
        "total_ms": f.total_ms,
        "tokens": f.tokens, "ids": ids,
        "variant": tabagent_host::engine::llama::cpu_kernels()?.variant,
    });
    println!("{v}");
    Ok(())
}

async fn guest(
    model: &Path,
    threads: u32,
    max_tokens: u32,
    mode: &str,
) -> anyhow::Result<(Figures, Value)> {
    let host = tabagent_tests::host();
    let component = host.load_command(&tabagent_tests::guests::BENCH.path())?;
    let request = json!({
        "prompt": PROMPT, "max_tokens": max_tokens, "context_size": CONTEXT,
        "batch_size": BATCH, "threads": threads, "mode": mode, "prompt_reps": PROMPT_REPS,
    });
    let config = GuestConfig {
        program: "bench".into(),
        args: vec![request.to_string()],
        models: tabagent_tests::grant("smollm2", model),
        ..GuestConfig::default()
    };
    let out = host.run(&component, config).await?;
    if out.exit_code != 0 {
        bail!("bench guest failed: {}", out.stderr_text());
    }
    let v: Value = serde_json::from_str(out.stdout_text().trim())?;
    let f = |k: &str| v[k].as_f64().unwrap_or_default();
    let tokens = f("generated_tokens") as u32;
    let prompt_ms = median(serde_json::from_value(v["prompt_ms_all"].clone())?);
    let figures = if mode == "stream" {
        // Guest clock: first piece after prompt + first token; then one piece per later token.
        Figures {
            prompt_tps: f("prompt_tokens") * 1000.0 / prompt_ms,
            decode_tps: f64::from(tokens.saturating_sub(1)) * 1000.0
                / (f("last_ms") - f("first_ms")),
            step_tps: {
                let t: Vec<f64> = serde_json::from_value(v["piece_ms"].clone()).unwrap_or_default();
                1000.0 / median(t.windows(2).map(|w| w[1] - w[0]).collect())
            },
            total_ms: f("wall_ms"),
            tokens,
        }
    } else {
        Figures {
            prompt_tps: f("prompt_tokens") * 1000.0 / prompt_ms,
            decode_tps: f64::from(tokens) * 1000.0 / f("generation_ms"),
            step_tps: 0.0,
            total_ms: f("wall_ms"),
            tokens,
        }
    };
    Ok((figures, v))
}

fn summarize(runs: &[Figures]) -> Figures {
    Figures {
        prompt_tps: median(runs.iter().map(|r| r.prompt_tps).collect()),
        decode_tps: median(runs.iter().map(|r| r.decode_tps).collect()),
        step_tps: median(runs.iter().map(|r| r.step_tps).collect()),
        total_ms: median(runs.iter().map(|r| r.total_ms).collect()),
        tokens: runs.first().map_or(0, |r| r.tokens),
    }
}

/// llama-bench's prompt and decode rates (means of `reps` runs): the prompt from an empty
/// context, and decode after a prompt's worth of context (`-d`), as in the loops measured here.
fn llama_bench(
    path: &Path,
    model: &Path,
    prompt_tokens: usize,
    tokens: u32,
    threads: u32,
    reps: u32,
) -> anyhow::Result<(f64, f64)> {
    let run = |p: usize, n: u32, depth: usize| -> anyhow::Result<f64> {
        let out = std::process::Command::new(path)
            .arg("-m")
            .arg(model)
            .args(["-p", &p.to_string(), "-n", &n.to_string(), "-d", &depth.to_string()])
            .args(["-t", &threads.to_string(), "-r", &reps.to_string(), "-o", "json"])
            .output()
            .with_context(|| format!("cannot run {}", path.display()))?;
        if !out.status.success() {
            bail!("llama-bench failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let v: Value = serde_json::from_slice(&out.stdout)?;
        v.get(0)
            .and_then(|t| t["avg_ts"].as_f64())
            .with_context(|| format!("llama-bench printed no rate: {v}"))
    };
    Ok((run(prompt_tokens, 0, 0)?, run(0, tokens, prompt_tokens)?))
}

/// The `## ` sections of `old` whose headings `ours` does not have (other benchmarks write
/// them into the same file), in their order.
fn foreign_sections(old: &str, ours: &str) -> String {
    let heading = |s: &str| s.lines().next().unwrap_or_default().to_string();
    let own: Vec<String> =
        ours.split("\n## ").skip(1).map(|s| format!("## {}", heading(s))).collect();
    old.split("\n## ")
        .skip(1)
        .map(|s| format!("## {s}"))
        .filter(|s| !own.contains(&heading(s)))
        .map(|s| format!("{}\n", s.trim_end()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let model_path = args.model.clone().unwrap_or_else(tabagent_tests::model_path);
    let threads = args.threads.unwrap_or_else(tabagent_host::hardware::default_threads);
    if args.direct_child {
        return direct_child(&model_path, threads, args.tokens);
    }
    // Warm-up: page the weights in and compile the guest once.
    let (_, reference) = direct(&model_path, threads, args.tokens)?;
    guest(&model_path, threads, 4, "generate").await?;

    let (mut d, mut g, mut s) = (Vec::new(), Vec::new(), Vec::new());
    let mut prompt_tokens = 0;
    let mut file_type = String::from("unknown");
    for rep in 0..args.reps {
        let (fd, tokens) = direct(&model_path, threads, args.tokens)?;
        if tokens != reference {
            bail!("the direct loop is not deterministic");
        }
        let (fg, vg) = guest(&model_path, threads, args.tokens, "generate").await?;
        let (fs, vs) = guest(&model_path, threads, args.tokens, "stream").await?;
        prompt_tokens = vg["prompt_tokens"].as_u64().unwrap_or_default() as usize;
        file_type = vg["file_type"].as_str().unwrap_or("unknown").to_string();
        for v in [&vg, &vs] {
            let t: Vec<u32> = serde_json::from_value(v["tokens"].clone())?;
            if t != reference {
                bail!("guest tokens differ from the direct loop's");
            }
        }
        eprintln!(
            "rep {rep}: direct {:.1}/{:.1}/{:.1}  generate {:.1}/{:.1}  stream {:.1}/{:.1}/{:.1}  (prompt/decode mean/median-token tok/s)",
            fd.prompt_tps,
            fd.decode_tps,
            fd.step_tps,
            fg.prompt_tps,
            fg.decode_tps,
            fs.prompt_tps,
            fs.decode_tps,
            fs.step_tps
        );
        d.push(fd);
        g.push(fg);
        s.push(fs);
    }
    // Paired per-repetition ratios show how much of a difference is noise.
    let spread = |a: &[Figures], f: fn(&Figures) -> f64| {
        let r: Vec<f64> = a.iter().zip(&d).map(|(x, y)| f(x) / f(y)).collect();
        let lo = r.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = r.iter().copied().fold(0.0, f64::max);
        format!("{lo:.2}–{hi:.2}")
    };
    let noise = format!(
        "Paired per-repetition ratios to the direct loop ranged: generate decode {}, prompt {}; \
         stream decode {}, prompt {}.",
        spread(&g, |f| f.decode_tps),
        spread(&g, |f| f.prompt_tps),
        spread(&s, |f| f.decode_tps),
        spread(&s, |f| f.prompt_tps),
    );
    let (d, g, s) = (summarize(&d), summarize(&g), summarize(&s));
    let peer_path = args.llama_bench.clone().or_else(|| {
        let p = PathBuf::from(std::env::var("HOME").unwrap_or_default())
            .join(".cache/tabagent/llama-tools/bin/llama-bench");
        p.is_file().then_some(p)
    });
    let peer = match &peer_path {
        Some(p) => match llama_bench(p, &model_path, prompt_tokens, args.tokens, threads, 3) {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("llama-bench skipped: {e:#}");
                None
            }
        },
        None => None,
    };
    let cpu = tabagent_host::hardware::cpu();
    let kernels = tabagent_host::engine::llama::cpu_kernels()?;
    let mut md = String::new();
    md.push_str("# Benchmarks\n\n");
    md.push_str("Written by `scripts/bench.sh` (`cargo run --release -p tabagent-bench -- --write docs/BENCHMARKS.md`).\n\n");
    md.push_str("## Guest-driven generation versus a direct llama-cpp-2 loop\n\n");
    md.push_str(&format!(
        "Machine: {} ({} physical cores, {} threads, {}; CPU kernels `{}`), {} threads used. Model: {} \
         ({}), greedy, prompt {} tokens, {} generated tokens, context {CONTEXT}, batch {BATCH}. \
         Median of {} interleaved repetitions; every run produced the same tokens.\n\n",
        cpu.brand,
        cpu.physical_cores,
        cpu.logical_threads,
        cpu.microarchitecture,
        kernels.variant,
        threads,
        model_path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
        file_type,
        prompt_tokens,
        d.tokens,
        args.reps,
    ));
    md.push_str(
        "| run | prompt tok/s | decode tok/s (mean) | decode tok/s (median token) | whole run ms | prompt ratio | decode ratio (mean) | decode ratio (median token) |\n",
    );
    md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    let cell = |v: f64, base: f64| if v > 0.0 { format!("{:.3}", v / base) } else { "–".into() };
    let rate = |v: f64| if v > 0.0 { format!("{v:.1}") } else { "–".into() };
    let row = |name: &str, f: &Figures| {
        format!(
            "| {name} | {:.1} | {:.1} | {} | {:.1} | {:.3} | {:.3} | {} |\n",
            f.prompt_tps,
            f.decode_tps,
            rate(f.step_tps),
            f.total_ms,
            f.prompt_tps / d.prompt_tps,
            f.decode_tps / d.decode_tps,
            cell(f.step_tps, d.step_tps),
        )
    };
    md.push_str(&row("direct llama-cpp-2 loop", &d));
    md.push_str(&row("guest `generate` (host timings)", &g));
    md.push_str(&row("guest `stream` (guest's clock)", &s));
    if let Some((pp, tg)) = peer {
        md.push_str(&format!(
            "| llama.cpp `llama-bench` (native build, peer; decode at depth = prompt) | {pp:.1} | {tg:.1} | – | | {:.3} | {:.3} | – |\n",
            pp / d.prompt_tps,
            tg / d.decode_tps
        ));
    }
    let ok = g.decode_tps >= 0.98 * d.decode_tps
        && s.step_tps >= 0.98 * d.step_tps
        && g.prompt_tps >= 0.98 * d.prompt_tps;
    md.push_str(&format!(
        "\nTarget: guest decode ≥ 0.98 × direct (generate: mean rate; stream: median token) and \
         prompt ≥ 0.98 × direct: **{}**.\n\n",
        if ok { "met" } else { "not met in this run" }
    ));
    md.push_str(&format!("{noise}\n\n"));
    md.push_str(
        "How it is measured: the direct loop times prompt decode and the sample/decode loop with \
         `Instant`. The guest `generate` row uses the host's own timings of that call \
         (`usage.prompt-ms`, `usage.generation-ms`), its whole-run column the guest's clock around \
         `generate`. The `stream` row's decode rate is the guest's clock between its first and last \
         piece; its median-token rate comes from the median gap between pieces, the direct loop's \
         from the median time per token, both robust to bursts of noise. The direct loop runs in a \
         child process, since an idle OpenMP team left by another thread in the same process \
         throttles llama.cpp's threads by ~40%; one team per process is how the host runs. The machines are shared and noisy (a third either way between runs), so compare \
         within a run.\n",
    );
    md.push_str(&kernel_variants(
        &args,
        &model_path,
        threads,
        prompt_tokens,
        peer_path.as_deref(),
    )?);
    print!("{md}");
    if let Some(path) = args.write {
        // Sections other benchmarks write into the same file are kept as they are.
        if let Ok(old) = std::fs::read_to_string(&path) {
            let kept = foreign_sections(&old, &md);
            if !kept.is_empty() {
                md.push('\n');
                md.push_str(&kept);
            }
        }
        std::fs::write(&path, &md).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// The same direct loop with each CPU kernel variant, interleaved rep by rep, against the
/// variant the host picks for this CPU; the generic SSE2-only `x64` is the baseline.
fn kernel_variants(
    args: &Args,
    model: &Path,
    threads: u32,
    prompt_tokens: usize,
    peer: Option<&Path>,
) -> anyhow::Result<String> {
    let kernels = tabagent_host::engine::llama::cpu_kernels()?;
    let runs_here = |name: &str| kernels.available.iter().any(|v| v.name == name && v.score > 0);
    let mut variants: Vec<Option<String>> = Vec::new();
    let mut skipped = Vec::new();
    // The generic `x64` always comes first: it is the baseline of the ratios.
    let mut wanted = vec!["x64".to_string()];
    wanted.extend(args.variants.iter().filter(|v| *v != "x64").cloned());
    for v in &wanted {
        if runs_here(v) {
            variants.push(Some(v.clone()));
        } else {
            skipped.push(v.as_str());
        }
    }
    variants.push(None);
    let mut runs: Vec<Vec<Figures>> = vec![Vec::new(); variants.len()];
    let mut names = vec![String::new(); variants.len()];
    let mut tokens: Vec<Vec<u32>> = vec![Vec::new(); variants.len()];
    let mut native = Vec::new();
    let peer_loop = args.native_peer.clone().or_else(|| {
        let p = PathBuf::from(std::env::var("HOME").unwrap_or_default())
            .join(".cache/tabagent/native-peer/release/tabagent-native-peer");
        p.is_file().then_some(p)
    });
    let mut native_loop: Vec<Figures> = Vec::new();
    let mut native_ids = Vec::new();
    for rep in 0..args.reps {
        if let Some(p) = &peer_loop {
            let (f, ids, _) = native_peer(p, model, threads, args.tokens)?;
            eprintln!(
                "variants rep {rep}: native peer: prompt {:.1} decode {:.1} tok/s",
                f.prompt_tps, f.decode_tps
            );
            native_loop.push(f);
            native_ids = ids;
        }
        if let Some(p) = peer {
            match llama_bench(p, model, prompt_tokens, args.tokens, threads, 1) {
                Ok((pp, tg)) => {
                    eprintln!(
                        "variants rep {rep}: llama-bench: prompt {pp:.1} decode {tg:.1} tok/s"
                    );
                    native.push(Figures { prompt_tps: pp, decode_tps: tg, ..Figures::default() });
                }
                Err(e) => eprintln!("llama-bench skipped: {e:#}"),
            }
        }
        for (i, v) in variants.iter().enumerate() {
            let (f, ids, ran) = direct_with(model, threads, args.tokens, v.as_deref())?;
            eprintln!(
                "variants rep {rep}: {ran}: prompt {:.1} decode {:.1} tok/s",
                f.prompt_tps, f.decode_tps
            );
            runs[i].push(f);
            names[i] = ran;
            tokens[i] = ids;
        }
    }
    let summary: Vec<Figures> = runs.iter().map(|r| summarize(r)).collect();
    let base = summary[0];
    let picked = variants.len() - 1;
    let mut md = String::from("\n## CPU kernel variants\n\n");
    md.push_str(&format!(
        "The host ships ggml's CPU backend as {} loadable variants and loads the best-scoring one \
         for the CPU at start (`tabagent-host hw` shows it; `--cpu-variant` forces another). \
         Same direct loop, model and prompt as above, one process per run, median of {} \
         interleaved repetitions. `x64` is the generic build (SSE2 only; what a portable binary \
         without variants would have to ship), `haswell` is AVX2/FMA (the fixed baseline of a \
         plain `llama-cpp-sys-2` build).\n\n",
        kernels.available.len(),
        args.reps
    ));
    md.push_str("| kernels | prompt tok/s | decode tok/s | prompt × generic | decode × generic | same tokens as picked |\n");
    md.push_str("|---|---:|---:|---:|---:|---|\n");
    for (i, f) in summary.iter().enumerate() {
        let label = match &variants[i] {
            Some(_) => format!("`{}`", names[i]),
            None => format!("`{}` (picked by the host)", names[i]),
        };
        md.push_str(&format!(
            "| {label} | {:.1} | {:.1} | {:.2} | {:.2} | {} |\n",
            f.prompt_tps,
            f.decode_tps,
            f.prompt_tps / base.prompt_tps,
            f.decode_tps / base.decode_tps,
            if tokens[i] == tokens[picked] { "yes" } else { "no" },
        ));
    }
    let p = summary[picked];
    let mut notes = vec![format!(
        "The picked `{}` kernels decode {:.2}× and read prompts {:.2}× as fast as the generic \
         build on this machine.",
        names[picked],
        p.decode_tps / base.decode_tps,
        p.prompt_tps / base.prompt_tps
    )];
    let row = |label: &str, n: &Figures, same: &str| {
        format!(
            "| {label} | {:.1} | {:.1} | {:.2} | {:.2} | {same} |\n",
            n.prompt_tps,
            n.decode_tps,
            n.prompt_tps / base.prompt_tps,
            n.decode_tps / base.decode_tps,
        )
    };
    if !native_loop.is_empty() {
        let n = summarize(&native_loop);
        let same = if native_ids == tokens[picked] { "yes" } else { "no" };
        md.push_str(&row(
            "same loop and llama.cpp release, built statically with `-march=native` (native peer)",
            &n,
            same,
        ));
        notes.push(format!(
            "**Against a native build of the same llama.cpp running the same loop, the picked \
             kernels read prompts at {:.2}× and decode at {:.2}×** (target: the speed of a \
             native build).",
            p.prompt_tps / n.prompt_tps,
            p.decode_tps / n.decode_tps
        ));
    }
    if !native.is_empty() {
        let n = summarize(&native);
        md.push_str(&row(
            &format!("llama.cpp `llama-bench` (`GGML_NATIVE` build, peer; decode at depth {prompt_tokens})"),
            &n,
            "–",
        ));
        notes.push(format!(
            "Against `llama-bench`: prompt {:.2}×, decode {:.2}×. llama-bench comes from another \
             llama.cpp release (the `llama-cpp-python` sdist) and runs its own loop, so this is a \
             peer figure, not a like-for-like one.",
            p.prompt_tps / n.prompt_tps,
            p.decode_tps / n.decode_tps
        ));
    }
    if !skipped.is_empty() {
        notes.push(format!("Not run (this CPU cannot run them): {}.", skipped.join(", ")));
    }
    notes.push(
        "All variants are compiled at -O3 (CMake `Release`, like a native llama.cpp build). \
         The SSE-only variants spend most of their time in the scalar \
         `ggml_vec_dot_q4_1_q8_1_generic`, which GCC 12 vectorizes poorly at -O3; an -O2 build \
         makes them faster and the AVX2/AVX-512 variants slower."
            .to_string(),
    );
    md.push('\n');
    for n in notes {
        md.push_str(&format!("{n}\n\n"));
    }
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::foreign_sections;

    #[test]
    fn sections_other_benchmarks_wrote_are_kept_whatever_their_order() {
        let old = "# Benchmarks\n\n## Ours\nold figures\n\n## Theirs\nA\n\n## Ours too\nold\n\n## Others\nB\n";
        let ours = "# Benchmarks\n\n## Ours\nnew\n\n## Ours too\nnew\n";
        assert_eq!(foreign_sections(old, ours), "## Theirs\nA\n\n## Others\nB\n");
        assert_eq!(foreign_sections("# Benchmarks\n", ours), "");
    }
}
