//! What a user or a guest names on the hub: `REPO[:FILE|:QUANT][@REVISION]`, checked so that no
//! part of it can reach outside the cache or the repository it names.

use super::HubError;

/// The branch a reference means when it names none.
pub const DEFAULT_REVISION: &str = "main";

/// Which file of a repository a reference means.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Selector {
    /// The only GGUF file (or split set) of the repository.
    Only,
    /// A file by its path in the repository.
    File(String),
    /// The GGUF file whose name carries this quantization (`Q4_K_M`), case-insensitive.
    Quant(String),
}

/// A file (or split set) of a Hugging Face model repository at a revision.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HubRef {
    /// `org/name`.
    pub repo: String,
    /// Which file.
    pub selector: Selector,
    /// A branch, tag or 40-hex-digit commit.
    pub revision: String,
}

impl HubRef {
    /// Parse `REPO[:FILE|:QUANT][@REVISION]`; a leading `hf:`, `hf.co/` or `huggingface.co/`
    /// is allowed. `:X` is a file when it ends in `.gguf` or holds a `/`, else a quantization.
    pub fn parse(spec: &str) -> Result<Self, HubError> {
        let bad = |why: &str| HubError::BadReference(format!("'{}': {why}", spec.escape_debug()));
        let mut s = spec.trim();
        for prefix in ["hf:", "https://huggingface.co/", "huggingface.co/", "hf.co/"] {
            if let Some(rest) = s.strip_prefix(prefix) {
                s = rest;
                break;
            }
        }
        let (s, revision) = match s.rsplit_once('@') {
            Some((s, rev)) => (s, rev.to_string()),
            None => (s, DEFAULT_REVISION.to_string()),
        };
        let (repo, selector) = match s.split_once(':') {
            None => (s, Selector::Only),
            Some((_, "")) => return Err(bad("nothing after ':'")),
            Some((repo, sel)) if sel.ends_with(".gguf") || sel.contains('/') => {
                (repo, Selector::File(sel.to_string()))
            }
            Some((repo, sel)) => (repo, Selector::Quant(sel.to_string())),
        };
        let r = Self { repo: repo.to_string(), selector, revision };
        r.check().map_err(|e| match e {
            HubError::BadReference(why) => bad(&why),
            e => e,
        })?;
        Ok(r)
    }

    /// A reference to one file of a repository.
    pub fn file(repo: &str, file: &str, revision: &str) -> Result<Self, HubError> {
        let r = Self {
            repo: repo.to_string(),
            selector: Selector::File(file.to_string()),
            revision: revision.to_string(),
        };
        r.check()?;
        Ok(r)
    }

    /// The same reference at another revision.
    pub fn at(mut self, revision: &str) -> Result<Self, HubError> {
        self.revision = revision.to_string();
        self.check()?;
        Ok(self)
    }

    /// Refuse what could leave the cache or the repository: `..`, absolute paths, empty or
    /// hidden parts, NUL and control characters, backslashes, over-long names.
    pub fn check(&self) -> Result<(), HubError> {
        check_repo(&self.repo)?;
        check_revision(&self.revision)?;
        match &self.selector {
            Selector::Only => Ok(()),
            Selector::File(f) => check_file(f),
            Selector::Quant(q) => {
                let ok = !q.is_empty()
                    && q.len() <= 64
                    && q.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
                if ok {
                    Ok(())
                } else {
                    Err(HubError::BadReference(format!("bad quantization '{q}'")))
                }
            }
        }
    }

    /// The same reference in one spelling: quantizations upper-case, commits lower-case (so
    /// that `:q4_k_m` and `:Q4_K_M` are one pull).
    pub fn normalized(&self) -> Self {
        let mut r = self.clone();
        if let Selector::Quant(q) = &mut r.selector {
            *q = q.to_ascii_uppercase();
        }
        if is_commit(&r.revision) {
            r.revision = r.revision.to_ascii_lowercase();
        }
        r
    }

    /// Whether the revision is a commit (which never moves) rather than a branch or tag.
    pub fn pinned(&self) -> bool {
        is_commit(&self.revision)
    }
}

impl std::fmt::Display for HubRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.repo)?;
        match &self.selector {
            Selector::Only => {}
            Selector::File(x) | Selector::Quant(x) => write!(f, ":{x}")?,
        }
        if self.revision != DEFAULT_REVISION {
            write!(f, "@{}", self.revision)?;
        }
        Ok(())
    }
}

/// Whether `s` is a full commit hash.
pub fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn name_part_ok(part: &str) -> bool {
    !part.is_empty()
        && part.len() <= 96
        && !part.starts_with('.')
        && !part.starts_with('-')
        && part.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !part.contains("--")
        && !part.contains("..")
}

/// `org/name`: the hub's own rules (letters, digits, `.`, `_`, `-`; no `--` or `..`).
pub fn check_repo(repo: &str) -> Result<(), HubError> {
    match repo.split_once('/') {
        Some((org, name)) if name_part_ok(org) && name_part_ok(name) => Ok(()),
        _ => Err(HubError::BadReference(format!(
            "repository '{}' is not of the form org/name (letters, digits, '.', '_', '-')",
            repo.escape_debug()
        ))),
    }
}

/// A branch, tag or commit, by git's rules for ref names: `/`-separated parts that are not
/// empty, do not start with `.` or end with `.lock`; no `..`; letters, digits, `.`, `_`, `-`.
pub fn check_revision(rev: &str) -> Result<(), HubError> {
    let ok = !rev.is_empty()
        && rev.len() <= 128
        && !rev.contains("..")
        && rev.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
        && rev.split('/').all(|p| !p.is_empty() && !p.starts_with('.') && !p.ends_with(".lock"));
    if ok {
        Ok(())
    } else {
        Err(HubError::BadReference(format!("bad revision '{}'", rev.escape_debug())))
    }
}

/// A file path inside a repository: relative, `/`-separated, no `.`/`..`/empty parts.
pub fn check_file(file: &str) -> Result<(), HubError> {
    let ok = !file.is_empty()
        && file.len() <= 512
        && !file.starts_with('/')
        && !file.contains('\\')
        && !file.chars().any(char::is_control)
        && file.split('/').all(|p| !p.is_empty() && p != "." && p != "..");
    if ok {
        Ok(())
    } else {
        Err(HubError::BadReference(format!("bad file name '{}'", file.escape_debug())))
    }
}

/// Whether a repository id matches a pattern where `*` matches any run of characters
/// (case-insensitive, as the hub's ids are).
pub fn pattern_matches(pattern: &str, repo: &str) -> bool {
    if !pattern.contains('*') {
        return pattern.eq_ignore_ascii_case(repo);
    }
    let (p, r) = (pattern.to_ascii_lowercase(), repo.to_ascii_lowercase());
    let parts: Vec<&str> = p.split('*').collect();
    let mut rest = r.as_str();
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(x) => rest = x,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_repository_ids() {
        let matches = pattern_matches;
        assert!(matches("*", "a/b"));
        assert!(matches("HuggingFaceTB/*", "huggingfacetb/SmolLM2"));
        assert!(matches("org/exact", "org/exact"));
        assert!(!matches("org/exact", "org/exact2"));
        assert!(!matches("HuggingFaceTB/*", "evil/HuggingFaceTB/x"));
        assert!(matches("*/SmolLM2-*-GGUF", "x/SmolLM2-135M-GGUF"));
        assert!(!matches("*/SmolLM2-*-GGUF", "x/SmolLM2-135M-GGUF-evil"));
    }

    #[test]
    fn references_parse_into_repo_selector_and_revision() {
        let r = HubRef::parse("HuggingFaceTB/SmolLM2-135M-Instruct-GGUF:Q4_K_M").unwrap();
        assert_eq!(r.repo, "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF");
        assert_eq!(r.selector, Selector::Quant("Q4_K_M".into()));
        assert_eq!(r.revision, "main");
        let r = HubRef::parse("hf:org/m:sub/model.Q4_1.gguf@v1.0").unwrap();
        assert_eq!(r.selector, Selector::File("sub/model.Q4_1.gguf".into()));
        assert_eq!(r.revision, "v1.0");
        assert_eq!(r.to_string(), "org/m:sub/model.Q4_1.gguf@v1.0");
        let r = HubRef::parse("org/m@0123456789abcdef0123456789abcdef01234567").unwrap();
        assert!(r.pinned());
        assert_eq!(r.selector, Selector::Only);
        assert_eq!(HubRef::parse("org/m:a.gguf@refs/pr/1").unwrap().revision, "refs/pr/1");
        let q = HubRef::parse("org/m:q4_k_m").unwrap().normalized();
        assert_eq!(q, HubRef::parse("org/m:Q4_K_M").unwrap());
    }

    #[test]
    fn references_that_could_leave_the_cache_are_refused() {
        for bad in [
            "../etc:x.gguf",
            "org/..:x.gguf",
            "/abs/olute",
            "org/m:../../x.gguf",
            "org/m:/etc/passwd.gguf",
            "org/m:a//b.gguf",
            "org/m:a\\..\\b.gguf",
            "org/m:a\0.gguf",
            "org/m@../x",
            "org/m@/x",
            "org/m@a\0b",
            "org/m@feature/",
            "org/m@a/.b",
            "org/m@main.lock",
            "org\0/m",
            "org/m/extra",
            "org/m:",
            "org--x/m",
            "noslash",
        ] {
            let e = HubRef::parse(bad).unwrap_err();
            assert!(matches!(e, HubError::BadReference(_)), "{bad:?}: {e}");
        }
    }
}
