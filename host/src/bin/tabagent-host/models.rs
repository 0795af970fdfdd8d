//! `tabagent-host models list|show|rm`: what the Hugging Face cache holds.

use super::out::{emit, emit_json};
use super::pull::reference;
use anyhow::bail;
use clap::Subcommand;
use indicatif::HumanBytes;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;
use tabagent_host::engine::llama::LlamaEngine;
use tabagent_host::hub::{CachedFile, Hub, HubRef, Selector, select};

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// List the GGUF files in the cache
    List {
        /// Only this repository
        repo: Option<String>,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show a cached model's GGUF metadata (as `inspect` does)
    Show {
        /// ORG/REPO[:FILE|:QUANT][@REVISION]
        name: String,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show downloads in progress (in any process) and interrupted ones the next pull resumes
    Ps {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Remove cached files, and the blobs no other file uses
    Rm {
        /// ORG/REPO (every file), or ORG/REPO:FILE or ORG/REPO:QUANT; @REVISION for one revision
        name: String,
    },
}

/// One `models list` row.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Row {
    #[serde(flatten)]
    file: CachedFile,
    quantization: Option<String>,
    architecture: Option<String>,
}

/// Architecture and quantization from the file's header (bounded read), else from its name.
fn describe(path: &Path, file: &str) -> (Option<String>, Option<String>) {
    match tabagent_host::gguf::GgufFile::open(path) {
        Ok(g) => {
            let quant = g
                .get("general.file_type")
                .and_then(|v| v.as_u64())
                .and_then(|t| u32::try_from(t).ok())
                .map(tabagent_host::format::file_type_name)
                .or_else(|| select::quant_of(file));
            (g.architecture().map(str::to_string), quant)
        }
        Err(_) => (None, select::quant_of(file)),
    }
}

fn gguf_rows(hub: &Hub, repo: Option<&str>) -> anyhow::Result<Vec<Row>> {
    let files = hub.cache().list(repo)?;
    Ok(files
        .into_iter()
        .filter(|f| f.file.ends_with(".gguf"))
        .map(|f| {
            let (architecture, quantization) = describe(&f.path, &f.file);
            Row { file: f, quantization, architecture }
        })
        .collect())
}

/// The cached files a name means: a whole repository, or the files a selector picks; at one
/// revision when the name has `@REV`.
fn matching(hub: &Hub, spec: &str) -> anyhow::Result<(HubRef, Vec<CachedFile>)> {
    let r = reference(spec, None)?;
    let commit = if spec.contains('@') {
        match hub.cache().commit_of(&r.repo, &r.revision) {
            Some(c) => Some(c),
            None => bail!("{r}: the cache has no revision {}", r.revision),
        }
    } else {
        None
    };
    let all = hub.cache().list(Some(&r.repo))?;
    let files: Vec<CachedFile> = all
        .into_iter()
        .filter(|f| commit.as_ref().is_none_or(|c| *c == f.commit))
        .filter(|f| match &r.selector {
            Selector::Only => true,
            Selector::File(x) => select::set_of(x).contains(&f.file),
            Selector::Quant(q) => {
                select::quant_of(&f.file).is_some_and(|fq| fq.eq_ignore_ascii_case(q))
            }
        })
        .collect();
    if files.is_empty() {
        bail!("{r} is not in the Hugging Face cache ({})", hub.cache().root().display());
    }
    Ok((r, files))
}

pub fn models(command: ModelsCommand, hub: &Hub, engine: LlamaEngine) -> anyhow::Result<()> {
    match command {
        ModelsCommand::List { repo, json } => {
            let rows = gguf_rows(hub, repo.as_deref())?;
            if json {
                return emit_json(&rows);
            }
            if rows.is_empty() {
                eprintln!("no GGUF files in {}", hub.cache().root().display());
                return Ok(());
            }
            let mut s = String::new();
            let w =
                rows.iter().map(|r| r.file.repo.len() + r.file.file.len() + 1).max().unwrap_or(4);
            let _ = writeln!(
                s,
                "{:w$}  {:>9}  {:8}  {:10}  {:8}  PATH",
                "MODEL", "SIZE", "QUANT", "ARCH", "COMMIT"
            );
            for r in &rows {
                let _ = writeln!(
                    s,
                    "{:w$}  {:>9}  {:8}  {:10}  {:8}  {}",
                    format!("{}:{}", r.file.repo, r.file.file),
                    HumanBytes(r.file.size).to_string(),
                    r.quantization.as_deref().unwrap_or("-"),
                    r.architecture.as_deref().unwrap_or("-"),
                    &r.file.commit[..8],
                    r.file.path.display()
                );
            }
            emit(&s)
        }
        ModelsCommand::Show { name, json } => {
            let r = reference(&name, None)?;
            let model = match hub.cached(&r)? {
                Some(m) => m,
                None => bail!(
                    "{r} is not in the Hugging Face cache ({}); pull it with `tabagent-host pull {r}`",
                    hub.cache().root().display()
                ),
            };
            if !json {
                eprintln!("{}:{} at commit {}", model.repo, model.files.join(", "), model.commit);
            }
            let kernels = tabagent_host::engine::llama::cpu_kernels()?.variant.clone();
            let path = model.path.display().to_string();
            super::inspect::inspect(&path, json, true, engine, Some(hub), Some(&kernels))
        }
        ModelsCommand::Ps { json } => {
            let partials = hub.cache().partials();
            if json {
                return emit_json(&partials);
            }
            if partials.is_empty() {
                eprintln!("no downloads in progress or interrupted");
                return Ok(());
            }
            let mut s = String::new();
            let _ = writeln!(s, "{:50}  {:16}  {:>10}  STATE", "REPOSITORY", "BLOB", "RECEIVED");
            for p in &partials {
                let state = if p.active { "downloading" } else { "interrupted (pull resumes it)" };
                let blob = &p.blob[..p.blob.len().min(16)];
                let _ = writeln!(
                    s,
                    "{:50}  {blob:16}  {:>10}  {state}",
                    p.repo,
                    HumanBytes(p.bytes).to_string()
                );
            }
            emit(&s)
        }
        ModelsCommand::Rm { name } => {
            let (r, files) = matching(hub, &name)?;
            let removed = hub.cache().remove(&r.repo, &files)?;
            let mut s = String::new();
            for f in &removed.files {
                let _ = writeln!(s, "removed {}:{f}", r.repo);
            }
            let _ = writeln!(
                s,
                "freed {} ({} blobs){}",
                HumanBytes(removed.bytes_freed),
                removed.blobs.len(),
                if removed.blobs_kept.is_empty() {
                    String::new()
                } else {
                    format!("; kept {} blobs other files use", removed.blobs_kept.len())
                }
            );
            emit(&s)
        }
    }
}
