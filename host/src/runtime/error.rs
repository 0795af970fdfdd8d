//! How a guest run can fail, by kind, so that callers (the CLI's exit codes, an HTTP front
//! end's status codes, tests) act on the kind rather than on text.

use std::path::PathBuf;
use std::time::Duration;

/// Why a guest run did not end with an exit code of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunError {
    /// The component file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The bytes are not a component wasmtime can compile.
    Compile {
        /// The file, when it came from one.
        path: Option<PathBuf>,
        /// wasmtime's reason.
        message: String,
    },
    /// The component's imports or exports do not fit the world it was run as.
    Instantiate(String),
    /// The run's configuration was refused (a directory that cannot be granted, a fuel limit
    /// on a host without fuel counting).
    Setup(String),
    /// The guest ran past its wall-clock deadline.
    Deadline {
        /// The deadline.
        limit: Duration,
        /// Whether it was stopped inside a host call rather than in wasm code.
        in_host_call: bool,
        /// The end of what it wrote to stderr.
        stderr_tail: String,
    },
    /// The guest burnt all its fuel.
    OutOfFuel {
        /// The fuel it had.
        fuel: u64,
        /// The end of what it wrote to stderr.
        stderr_tail: String,
    },
    /// The guest trapped after the host refused to grow its memory past the limit.
    MemoryLimit {
        /// The limit in bytes.
        limit_bytes: usize,
        /// The trap.
        message: String,
        /// The end of what it wrote to stderr.
        stderr_tail: String,
    },
    /// The guest overflowed its wasm stack.
    StackOverflow {
        /// The end of what it wrote to stderr.
        stderr_tail: String,
    },
    /// Any other trap: a wasm trap, a bad handle, a host call that refused its input.
    Trap {
        /// The trap and its causes.
        message: String,
        /// The end of what it wrote to stderr.
        stderr_tail: String,
    },
}

impl RunError {
    /// The end of the guest's stderr, for the kinds that ran it.
    pub fn stderr_tail(&self) -> &str {
        match self {
            Self::Deadline { stderr_tail, .. }
            | Self::OutOfFuel { stderr_tail, .. }
            | Self::MemoryLimit { stderr_tail, .. }
            | Self::StackOverflow { stderr_tail }
            | Self::Trap { stderr_tail, .. } => stderr_tail,
            _ => "",
        }
    }
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Read { path, message } => write!(f, "cannot read {}: {message}", path.display()),
            Self::Compile { path: Some(p), message } => {
                write!(f, "{} is not a valid component: {message}", p.display())
            }
            Self::Compile { path: None, message } => write!(f, "not a valid component: {message}"),
            Self::Instantiate(m) => write!(
                f,
                "cannot instantiate the component (does it import only WASI and tabagent:llm, and export wasi:cli/run?): {m}"
            ),
            Self::Setup(m) => f.write_str(m),
            Self::Deadline { limit, in_host_call, .. } => {
                write!(f, "the guest ran past its deadline of {limit:?}")?;
                if *in_host_call {
                    f.write_str(" inside a host call")?;
                }
                Ok(())
            }
            Self::OutOfFuel { fuel, .. } => write!(f, "the guest ran out of fuel ({fuel} units)"),
            Self::MemoryLimit { limit_bytes, message, .. } => write!(
                f,
                "the guest trapped after reaching its memory limit of {} MiB: {message}",
                limit_bytes >> 20
            ),
            Self::StackOverflow { .. } => f.write_str("the guest overflowed its stack"),
            Self::Trap { message, .. } => write!(f, "the guest trapped: {message}"),
        }?;
        let tail = self.stderr_tail().trim_end();
        if !tail.trim().is_empty() {
            write!(f, "; its stderr ends with: {tail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RunError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_kind_and_the_stderr_tail() {
        let e = RunError::Deadline {
            limit: Duration::from_millis(500),
            in_host_call: false,
            stderr_tail: "working...\n".into(),
        };
        assert_eq!(
            e.to_string(),
            "the guest ran past its deadline of 500ms; its stderr ends with: working..."
        );
        let e =
            RunError::Trap { message: "wasm trap: unreachable".into(), stderr_tail: String::new() };
        assert_eq!(e.to_string(), "the guest trapped: wasm trap: unreachable");
    }
}
