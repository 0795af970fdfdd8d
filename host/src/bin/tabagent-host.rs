//! `tabagent-host`: run sandboxed WebAssembly apps against local GGUF models.

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tabagent_host::config::Grants;
use tabagent_host::engine::Engine as _;
use tabagent_host::engine::llama::LlamaEngine;
use tabagent_host::runtime::{GuestConfig, Host, Stdio};

/// Exit code when the host itself could not run the guest (bad arguments, a component that
/// does not compile or traps).
const HOST_FAILURE: u8 = 126;

#[derive(Parser)]
#[command(
    name = "tabagent-host",
    version,
    about = "Run sandboxed WebAssembly apps against local GGUF models (llama.cpp)",
    long_about = "Run sandboxed WebAssembly apps against local GGUF models (llama.cpp).\n\n\
        Apps are WASI components that import the tabagent:llm interfaces. They get nothing they \
        were not granted: no network, no environment, no host files, and only the models named \
        with --model."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Use this llama.cpp CPU kernel variant (for example x64, sse42, haswell, zen4) instead of
    /// the best one for this CPU; `hw` lists them [env: TABAGENT_CPU_VARIANT]
    #[arg(long, global = true, value_name = "NAME")]
    cpu_variant: Option<String>,
    /// Folder holding llama.cpp's backend modules (libggml-cpu-*.so); default: backends/ beside
    /// this executable, then the build tree [env: TABAGENT_BACKENDS_DIR]
    #[arg(long, global = true, value_name = "DIR")]
    backends_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run an app component (its wasi:cli/run export); exits with the app's exit code
    #[command(after_help = "Examples:\n  \
        tabagent-host run chat.wasm --model smollm2=models/SmolLM2-135M-Instruct.Q4_1.gguf -- \"Hello!\"\n  \
        echo 'Hi' | tabagent-host run chat.wasm --model smollm2=model.gguf\n\n\
        Exit codes: the app's own, or 126 when the host could not run it.")]
    Run(RunArgs),
    /// Show the CPU, GPUs and memory of this machine
    Hw {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Internal: load a model file with llama.cpp in this process and exit 0 (used as the load
    /// probe, so that a file that crashes llama.cpp crashes only this process)
    #[command(hide = true)]
    ProbeModel {
        /// The GGUF file
        model: PathBuf,
    },
    /// Load a GGUF file and print its metadata
    Inspect {
        /// The GGUF file
        model: PathBuf,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct RunArgs {
    /// The app component (.wasm)
    app: PathBuf,
    /// Grant a model to the app under a name: NAME=PATH (repeatable)
    #[arg(long = "model", short = 'm', value_name = "NAME=PATH")]
    models: Vec<String>,
    /// Grant a host directory: HOST::GUEST, or HOST::GUEST:ro for read-only (repeatable)
    #[arg(long = "dir", value_name = "HOST::GUEST")]
    dirs: Vec<String>,
    /// Set an environment variable for the app: KEY=VALUE (repeatable)
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Read grants from a TOML file (models, dirs, env, limits)
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Largest context size a session may ask for
    #[arg(long, value_name = "TOKENS")]
    max_context: Option<u32>,
    /// Wall-clock limit for the app in seconds, generation included; 0 for none [default: 600]
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// Largest linear memory of the app, in MiB [default: 1024]
    #[arg(long, value_name = "MIB")]
    max_memory: Option<usize>,
    /// Fuel (roughly, wasm instructions) the app may burn; off by default
    #[arg(long, value_name = "UNITS")]
    fuel: Option<u64>,
    /// Largest wasm stack of the app, in KiB
    #[arg(long, value_name = "KIB", default_value_t = 512)]
    max_stack: usize,
    /// Arguments for the app (after --)
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TABAGENT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,llama.cpp=off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(HOST_FAILURE)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut backends = tabagent_host::engine::cpu_variants::BackendConfig::from_env();
    if cli.cpu_variant.is_some() {
        backends.cpu_variant = cli.cpu_variant;
    }
    if cli.backends_dir.is_some() {
        backends.backends_dir = cli.backends_dir;
    }
    let probe_args = probe_args(&backends);
    tabagent_host::engine::llama::configure(backends)?;
    if matches!(cli.command, Command::Run(_) | Command::Inspect { .. }) {
        // Fail before any guest runs if llama.cpp cannot start (no CPU kernels, bad variant).
        tabagent_host::engine::llama::cpu_kernels()?;
    }
    match cli.command {
        Command::Run(args) => run_app(args, probe_args),
        Command::Hw { json } => {
            hw(json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::ProbeModel { model } => {
            tabagent_host::engine::llama::probe_model_file(&model)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Inspect { model, json } => {
            inspect(&model, json, probe_args)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run_app(args: RunArgs, probe_args: Vec<String>) -> anyhow::Result<ExitCode> {
    let mut grants = Grants::default();
    if let Some(file) = &args.config {
        grants.merge(Grants::from_file(file)?);
    }
    for m in &args.models {
        grants.add_model(m)?;
    }
    for d in &args.dirs {
        grants.add_dir(d)?;
    }
    for e in &args.env {
        grants.add_env(e)?;
    }
    for (name, path) in &grants.models {
        if !path.is_file() {
            bail!("model '{name}': {} is not a file", path.display());
        }
    }
    for d in &grants.dirs {
        if !d.host.is_dir() {
            bail!("--dir {}: not a directory", d.host.display());
        }
    }
    let mut guest = GuestConfig {
        program: args
            .app
            .file_stem()
            .map_or_else(|| "app".into(), |s| s.to_string_lossy().into_owned()),
        args: args.args,
        models: grants.models,
        dirs: grants.dirs,
        env: grants.env,
        stdio: Stdio::Inherit,
        ..GuestConfig::default()
    };
    if let Some(n) = args.max_context.or(grants.max_context_size) {
        guest.limits.max_context_size = n;
    }
    let timeout = args.timeout.or(grants.timeout_secs).unwrap_or(600);
    guest.sandbox.deadline = (timeout > 0).then(|| std::time::Duration::from_secs(timeout));
    let memory_mib = args.max_memory.or(grants.max_memory_mib).unwrap_or(1024);
    guest.sandbox.memory_bytes = memory_mib.saturating_mul(1 << 20);
    guest.sandbox.fuel = args.fuel;
    let options = tabagent_host::runtime::HostOptions {
        fuel: args.fuel.is_some(),
        max_wasm_stack: args.max_stack.saturating_mul(1 << 10),
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let outcome = runtime.block_on(async {
        let host = Host::with_options(std::sync::Arc::new(probing_engine(probe_args)), options)?;
        let app = host.compile_file(&args.app)?;
        host.run(&app, guest).await
    })?;
    Ok(ExitCode::from(u8::try_from(outcome.exit_code).unwrap_or(1)))
}

/// The arguments of a `tabagent-host probe-model` child: the same backend choice as ours.
fn probe_args(backends: &tabagent_host::engine::cpu_variants::BackendConfig) -> Vec<String> {
    let mut args = vec!["probe-model".to_string()];
    if let Some(v) = &backends.cpu_variant {
        args.extend(["--cpu-variant".into(), v.clone()]);
    }
    if let Some(d) = &backends.backends_dir {
        args.extend(["--backends-dir".into(), d.to_string_lossy().into_owned()]);
    }
    args
}

/// The llama.cpp engine, probing each new model file in a child `tabagent-host probe-model`.
fn probing_engine(probe_args: Vec<String>) -> LlamaEngine {
    match std::env::current_exe() {
        Ok(exe) => LlamaEngine::with_probe(exe, probe_args),
        Err(e) => {
            tracing::warn!("cannot find this executable ({e}); loading models without a probe");
            LlamaEngine::new()
        }
    }
}

fn hw(json: bool) -> anyhow::Result<()> {
    let cpu = tabagent_host::hardware::cpu();
    let mem = tabagent_host::hardware::memory();
    let engine = LlamaEngine::new();
    // Without a CPU backend there is still a machine to describe: show it, then fail.
    let kernels = engine.cpu_kernels();
    let gpus = if kernels.is_ok() { engine.gpus() } else { Vec::new() };
    if json {
        let gpus: Vec<_> = gpus
            .iter()
            .map(|g| {
                serde_json::json!({
                    "index": g.index, "name": g.name, "description": g.description,
                    "backend": g.backend, "memoryTotal": g.memory_total, "memoryFree": g.memory_free,
                })
            })
            .collect();
        let k = match &kernels {
            Ok(k) => serde_json::to_value(k)?,
            Err(e) => serde_json::json!({ "error": e.to_string() }),
        };
        let v = serde_json::json!({ "cpu": cpu, "kernels": k, "memory": mem, "gpus": gpus });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return kernels.map(|_| ()).map_err(Into::into);
    }
    println!("CPU      {} ({})", cpu.brand, cpu.vendor);
    println!("         family {:#x} model {:#x} stepping {}", cpu.family, cpu.model, cpu.stepping);
    println!("         {} physical cores, {} threads", cpu.physical_cores, cpu.logical_threads);
    println!("         {} / variant {}", cpu.microarchitecture, cpu.variant);
    println!("         features: {}", cpu.features.join(" "));
    println!(
        "         caches: L1d {} KiB, L2 {} KiB, L3 {} KiB",
        cpu.l1d_cache >> 10,
        cpu.l2_cache >> 10,
        cpu.l3_cache >> 10
    );
    match &kernels {
        Ok(kernels) => {
            println!(
                "Kernels  {}{}{}",
                kernels.variant,
                if kernels.forced { " (forced)" } else { " (best for this CPU)" },
                kernels.path.as_ref().map(|p| format!(" from {}", p.display())).unwrap_or_default()
            );
            println!("         built for: {}", kernels.features.join(" "));
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
                println!("         run here (score): {}", list(true));
                println!("         cannot run here: {}", list(false));
            }
        }
        Err(e) => println!("Kernels  unavailable: {e}"),
    }
    println!("Memory   {} total, {} available", gib(mem.total), gib(mem.available));
    if gpus.is_empty() {
        println!("GPUs     none");
    }
    for g in &gpus {
        println!(
            "GPU {}    {} ({}, {}): {} free of {}",
            g.index,
            g.description,
            g.name,
            g.backend,
            gib(g.memory_free),
            gib(g.memory_total)
        );
    }
    kernels.map(|_| ()).map_err(Into::into)
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
}

fn inspect(path: &std::path::Path, json: bool, probe_args: Vec<String>) -> anyhow::Result<()> {
    let model = probing_engine(probe_args).load(path, &Default::default())?;
    let i = model.info();
    let (kind, gpu_layers, cpu_layers) = i.placement();
    let loaded_to = match kind {
        tabagent_host::engine::DeviceKind::Cpu => "CPU",
        tabagent_host::engine::DeviceKind::Gpu => "GPU",
        tabagent_host::engine::DeviceKind::Split => "split",
    };
    if json {
        let v = serde_json::json!({
            "architecture": i.architecture, "name": i.display_name, "vocabSize": i.vocab_size,
            "contextLength": i.context_length, "embeddingSize": i.embedding_size,
            "layerCount": i.layer_count, "headCount": i.head_count, "headCountKv": i.head_count_kv,
            "parameterCount": i.parameter_count, "fileSize": i.file_size, "fileType": i.file_type,
            "bosToken": i.bos_token, "eosToken": i.eos_token, "newlineToken": i.newline_token,
            "chatTemplate": i.chat_template,
            "loadedTo": { "device": loaded_to, "gpuLayers": gpu_layers, "cpuLayers": cpu_layers },
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("{}", path.display());
    println!("  architecture    {}", i.architecture);
    if let Some(name) = &i.display_name {
        println!("  name            {name}");
    }
    println!("  file type       {}", i.file_type);
    println!("  parameters      {}", i.parameter_count);
    println!("  file size       {} bytes", i.file_size);
    println!("  vocabulary      {}", i.vocab_size);
    println!("  context length  {}", i.context_length);
    println!("  embedding size  {}", i.embedding_size);
    println!("  layers          {}", i.layer_count);
    println!("  heads (kv)      {} ({})", i.head_count, i.head_count_kv);
    println!("  chat template   {}", if i.chat_template.is_some() { "yes" } else { "no" });
    println!("  loaded to       {loaded_to} ({gpu_layers} layers on GPU, {cpu_layers} on CPU)");
    Ok(())
}
