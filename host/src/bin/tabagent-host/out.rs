//! Writing a subcommand's output: a closed stdout (`tabagent-host hw | head -1`) ends the
//! command quietly instead of panicking.

use std::io::Write as _;

/// Write `text` to stdout. A reader that went away is not an error.
pub fn emit(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// Write `value` as pretty JSON and a newline.
pub fn emit_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    emit(&format!("{}\n", serde_json::to_string_pretty(value)?))
}
