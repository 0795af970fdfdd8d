//! Which files of a repository a reference means: by name, by quantization (`Q4_K_M`), or the
//! only GGUF file there is. Split GGUF files (`NAME-00001-of-00003.gguf`) are one choice and are
//! pulled as a set.

use super::reference::Selector;
use super::{HubError, HubResult};
use std::collections::BTreeMap;

/// `(stem, part, parts)` of a split GGUF file name `STEM-0000K-of-0000N.gguf`.
pub fn split_parts(file: &str) -> Option<(&str, u32, u32)> {
    let stem = file.strip_suffix(".gguf")?;
    let (rest, n) = stem.rsplit_once("-of-")?;
    let (stem, k) = rest.rsplit_once('-')?;
    let digits = |s: &str| s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(k) || !digits(n) {
        return None;
    }
    let (k, n) = (k.parse().ok()?, n.parse().ok()?);
    (k >= 1 && k <= n).then_some((stem, k, n))
}

/// All files of the set a file belongs to, first part first (just the file when not split).
pub fn set_of(file: &str) -> Vec<String> {
    match split_parts(file) {
        Some((stem, _, n)) => (1..=n).map(|k| format!("{stem}-{k:05}-of-{n:05}.gguf")).collect(),
        None => vec![file.to_string()],
    }
}

/// The quantization a GGUF file name carries (`Q4_K_M`, `IQ2_XS`, `F16`, `BF16`, `TQ1_0`, …).
pub fn quant_of(file: &str) -> Option<String> {
    let name = file.rsplit('/').next().unwrap_or(file);
    let stem =
        split_parts(name).map_or_else(|| name.strip_suffix(".gguf").unwrap_or(name), |p| p.0);
    stem.split(['.', '-']).rev().find(|t| is_quant(t)).map(str::to_ascii_uppercase)
}

fn is_quant(token: &str) -> bool {
    let t = token.to_ascii_uppercase();
    if matches!(t.as_str(), "F16" | "F32" | "BF16" | "F64") {
        return true;
    }
    let rest = t
        .strip_prefix("IQ")
        .or_else(|| t.strip_prefix("TQ"))
        .or_else(|| t.strip_prefix("Q"))
        .or_else(|| t.strip_prefix("I2_"));
    match rest {
        Some(r) => r.starts_with(|c: char| c.is_ascii_digit() || c == 'S'),
        None => false,
    }
}

/// Whether a file name carries the quantization `q` as a whole token.
fn has_quant(file: &str, q: &str) -> bool {
    let name = file.rsplit('/').next().unwrap_or(file);
    let stem =
        split_parts(name).map_or_else(|| name.strip_suffix(".gguf").unwrap_or(name), |p| p.0);
    stem.split(['.', '-']).any(|t| t.eq_ignore_ascii_case(q))
}

/// The GGUF choices of a listing: one entry per single file or split set, by its first part.
fn choices(files: &[String]) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for f in files.iter().filter(|f| f.ends_with(".gguf")) {
        let set = set_of(f);
        if set.iter().all(|p| files.contains(p)) {
            out.insert(set[0].clone(), set);
        }
    }
    out
}

/// Show a choice: the file, or the split set as `STEM-*-of-N.gguf`.
fn label(set: &[String]) -> String {
    match split_parts(&set[0]) {
        Some((stem, _, n)) => format!("{stem}-*-of-{n:05}.gguf"),
        None => set[0].clone(),
    }
}

/// The files `selector` picks from a repository listing.
pub fn choose(reference: &str, files: &[String], selector: &Selector) -> HubResult<Vec<String>> {
    let all = choices(files);
    let listed = || all.values().map(|s| label(s)).collect::<Vec<_>>();
    let matching: Vec<&Vec<String>> = match selector {
        Selector::File(f) => {
            let set = set_of(f);
            if set.iter().all(|p| files.contains(p)) {
                return Ok(set);
            }
            return Err(HubError::NoMatch { reference: reference.to_string(), choices: listed() });
        }
        Selector::Quant(q) => all.values().filter(|s| has_quant(&s[0], q)).collect(),
        Selector::Only => all.values().collect(),
    };
    match matching.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(HubError::NoMatch { reference: reference.to_string(), choices: listed() }),
        many => Err(HubError::Ambiguous {
            reference: reference.to_string(),
            choices: many.iter().map(|s| label(s)).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing() -> Vec<String> {
        [
            "README.md",
            "config.json",
            "SmolLM2-135M-Instruct.Q4_1.gguf",
            "SmolLM2-135M-Instruct-Q4_K_M.gguf",
            "SmolLM2-135M-Instruct-Q4_K.gguf",
            "big/SmolLM2-135M-Instruct-F16-00001-of-00002.gguf",
            "big/SmolLM2-135M-Instruct-F16-00002-of-00002.gguf",
            "other-q8_0.gguf",
            "more-Q8_0.gguf",
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn a_quantization_picks_its_file_and_whole_tokens_only() {
        let l = listing();
        let q = |s: &str| choose("r", &l, &Selector::Quant(s.into()));
        assert_eq!(q("Q4_K_M").unwrap(), ["SmolLM2-135M-Instruct-Q4_K_M.gguf"]);
        assert_eq!(q("q4_k").unwrap(), ["SmolLM2-135M-Instruct-Q4_K.gguf"]);
        assert_eq!(q("Q4_1").unwrap(), ["SmolLM2-135M-Instruct.Q4_1.gguf"]);
        assert_eq!(
            q("F16").unwrap(),
            [
                "big/SmolLM2-135M-Instruct-F16-00001-of-00002.gguf",
                "big/SmolLM2-135M-Instruct-F16-00002-of-00002.gguf"
            ]
        );
    }

    #[test]
    fn ambiguous_and_missing_choices_list_what_there_is() {
        let l = listing();
        match choose("r:Q8_0", &l, &Selector::Quant("Q8_0".into())) {
            Err(HubError::Ambiguous { choices, .. }) => {
                assert_eq!(choices, ["more-Q8_0.gguf", "other-q8_0.gguf"])
            }
            other => panic!("{other:?}"),
        }
        match choose("r:Q2_K", &l, &Selector::Quant("Q2_K".into())) {
            Err(e @ HubError::NoMatch { .. }) => {
                let m = e.to_string();
                assert!(m.contains("SmolLM2-135M-Instruct-Q4_K_M.gguf"), "{m}");
                assert!(m.contains("big/SmolLM2-135M-Instruct-F16-*-of-00002.gguf"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(choose("r", &l, &Selector::Only), Err(HubError::Ambiguous { .. })));
        let one = vec!["a.gguf".to_string(), "README.md".to_string()];
        assert_eq!(choose("r", &one, &Selector::Only).unwrap(), ["a.gguf"]);
        let missing_part = vec!["x-00001-of-00002.gguf".to_string()];
        assert!(matches!(
            choose("r", &missing_part, &Selector::Only),
            Err(HubError::NoMatch { .. })
        ));
    }

    #[test]
    fn quantizations_and_split_sets_are_read_from_names() {
        assert_eq!(quant_of("SmolLM2-135M-Instruct.Q4_1.gguf").as_deref(), Some("Q4_1"));
        assert_eq!(quant_of("a/b-IQ2_XS-00001-of-00003.gguf").as_deref(), Some("IQ2_XS"));
        assert_eq!(quant_of("bitnet-TQ2_0.gguf").as_deref(), Some("TQ2_0"));
        assert_eq!(quant_of("model.gguf"), None);
        assert_eq!(set_of("m-00002-of-00003.gguf")[0], "m-00001-of-00003.gguf");
        assert_eq!(split_parts("m-00004-of-00003.gguf"), None);
    }
}
