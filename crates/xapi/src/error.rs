//! The one error every validation answers with: what was wrong and where.

use std::fmt;

/// A rejected input: `path` is where (a JSONPath-like location such as
/// `$.actor.mbox` or `$[3].result.score.scaled`, or a query parameter name such
/// as `?agent`), `rule` is a stable, short identifier of the rule that was
/// broken (e.g. `agent.exactly-one-ifi`), and `message` says it in words.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ValidationError {
    pub path: String,
    pub rule: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(
        path: impl Into<String>,
        rule: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            path: path.into(),
            rule: rule.into(),
            message: message.into(),
        }
    }

    /// Whether this is one of the store's own limits (`limit.*`: depth,
    /// list items, agents, extensions size, batch size, body size), which
    /// the HTTP layer answers with 413 rather than 400.
    pub fn is_limit(&self) -> bool {
        self.rule.starts_with("limit.")
    }

    /// The same error, one level deeper in a document: `$` becomes `prefix`.
    pub fn under(mut self, prefix: &str) -> Self {
        self.path = match self.path.strip_prefix('$') {
            Some(rest) => format!("{prefix}{rest}"),
            None => self.path,
        };
        self
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}: {}", self.rule, self.path, self.message)
    }
}

impl std::error::Error for ValidationError {}
