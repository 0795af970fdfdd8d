//! What one guest run may do and how it ended: grants, stdio, limits, outcome.

use crate::params::LlmLimits;
use crate::sandbox::GuestLimits;
use crate::source::ModelSource;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A host directory made visible to a guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    /// Directory on the host.
    pub host: PathBuf,
    /// Path the guest sees it under.
    pub guest: String,
    /// Whether the guest may only read.
    pub read_only: bool,
}

/// Where a guest's standard streams go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Stdio {
    /// The host process's own stdin, stdout and stderr.
    Inherit,
    /// No stdin; stdout and stderr both to the host process's stderr (for hosts whose own
    /// stdout carries a protocol, such as native messaging).
    Stderr,
    /// Stdin from the given bytes; stdout and stderr captured into [`RunOutcome`].
    #[default]
    Capture,
}

/// What one guest run may do.
#[derive(Debug, Clone, Default)]
pub struct GuestConfig {
    /// Program name (`argv[0]`).
    pub program: String,
    /// Arguments after the program name.
    pub args: Vec<String>,
    /// Granted models: the name the guest uses, and where the model comes from.
    pub models: BTreeMap<String, ModelSource>,
    /// Hub repositories the guest may pull from (`*` matches any run of characters); none by
    /// default.
    pub allow_pull: Vec<String>,
    /// Destinations the guest may send HTTP requests to (`HOST` or `HOST:PORT`, `*` matches
    /// any run of characters); none by default.
    pub allow_http: Vec<String>,
    /// Models granted as `wasi:nn` graphs (`graph.load-by-name`), by graph name.
    pub nn_graphs: BTreeMap<String, ModelSource>,
    /// Granted directories.
    pub dirs: Vec<DirGrant>,
    /// Environment variables the guest sees (none by default).
    pub env: Vec<(String, String)>,
    /// Standard streams.
    pub stdio: Stdio,
    /// Stdin bytes when [`Stdio::Capture`] is used.
    pub stdin: Vec<u8>,
    /// Limits on model use.
    pub limits: LlmLimits,
    /// Limits on time, fuel, memory and tables.
    pub sandbox: GuestLimits,
}

/// How a guest run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// The guest's exit code (0 for success).
    pub exit_code: i32,
    /// Captured stdout (empty when inherited).
    pub stdout: Vec<u8>,
    /// Captured stderr (empty when inherited).
    pub stderr: Vec<u8>,
}

impl RunOutcome {
    /// Stdout as text.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Stderr as text.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}
