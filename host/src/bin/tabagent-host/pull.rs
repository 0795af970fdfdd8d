//! `tabagent-host pull`: download a GGUF file (or split set) of a Hugging Face repository into
//! the local cache, verified, with progress.

use super::out::emit;
use super::progress::Display;
use clap::Args;
use tabagent_host::hub::{Hub, HubRef, PullPolicy};

#[derive(Args)]
pub struct PullArgs {
    /// ORG/REPO, ORG/REPO:FILE or ORG/REPO:QUANT (for example Q4_K_M), optionally @REVISION
    reference: String,
    /// A branch, tag or commit (overrides @REVISION)
    #[arg(long, value_name = "REV")]
    revision: Option<String>,
    /// Ask the hub for the revision's newest commit even when the cache already has the file
    #[arg(long)]
    update: bool,
}

/// The reference with `--revision` applied.
pub fn reference(spec: &str, revision: Option<&str>) -> anyhow::Result<HubRef> {
    let r = HubRef::parse(spec)?;
    Ok(match revision {
        Some(rev) => r.at(rev)?,
        None => r,
    })
}

pub fn pull(args: PullArgs, hub: &Hub) -> anyhow::Result<()> {
    let r = reference(&args.reference, args.revision.as_deref())?;
    let policy = if args.update { PullPolicy::Always } else { PullPolicy::Missing };
    let tracker = Display::tracker(&r);
    let model = hub.ensure(&r, policy, &tracker)?;
    for f in &model.files[1..] {
        eprintln!("  with {f}");
    }
    emit(&format!("{}\n", model.path.display()))
}
