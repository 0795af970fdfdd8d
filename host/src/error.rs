//! The library's one error type for model work: what went wrong, by kind, with a message that
//! says which input or file and why. Every front end maps these kinds one to one: the WIT glue to
//! the `tabagent:llm/types.error` variant, an HTTP front end to status codes.

/// Why a call into the model layer failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    /// The caller asked for a model (or another capability) the user did not grant.
    #[error("not granted: {0}")]
    NotGranted(String),
    /// A file or other named thing does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A parameter or input is out of range or malformed.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The engine or model cannot do this.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A limit was reached.
    #[error("resource exhausted: {0}")]
    ResourceExhausted(String),
    /// The model was unloaded; load it again to use it.
    #[error("unloaded: {0}")]
    Unloaded(String),
    /// The engine failed.
    #[error("engine error: {0}")]
    Runtime(String),
}

impl LlmError {
    /// Shorthand for [`LlmError::InvalidInput`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::InvalidInput(msg.into())
    }

    /// Shorthand for [`LlmError::Runtime`].
    pub fn runtime(msg: impl Into<String>) -> Self {
        Self::Runtime(msg.into())
    }

    /// The kind's name as the WIT variant spells it (`not-granted`, `invalid-input`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotGranted(_) => "not-granted",
            Self::NotFound(_) => "not-found",
            Self::InvalidInput(_) => "invalid-input",
            Self::Unsupported(_) => "unsupported",
            Self::ResourceExhausted(_) => "resource-exhausted",
            Self::Unloaded(_) => "unloaded",
            Self::Runtime(_) => "runtime",
        }
    }

    /// The message without the kind.
    pub fn message(&self) -> &str {
        match self {
            Self::NotGranted(m)
            | Self::NotFound(m)
            | Self::InvalidInput(m)
            | Self::Unsupported(m)
            | Self::ResourceExhausted(m)
            | Self::Unloaded(m)
            | Self::Runtime(m) => m,
        }
    }
}

/// Results of the model layer.
pub type LlmResult<T> = Result<T, LlmError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_messages() {
        let e = LlmError::invalid("top-p must be in (0, 1]");
        assert_eq!(e.kind(), "invalid-input");
        assert_eq!(e.message(), "top-p must be in (0, 1]");
        assert_eq!(e.to_string(), "invalid input: top-p must be in (0, 1]");
        assert_eq!(LlmError::NotFound("x".into()).to_string(), "not found: x");
    }
}
