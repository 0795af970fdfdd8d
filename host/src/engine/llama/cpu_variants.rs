//! llama.cpp's CPU kernels, picked for this CPU when the engine starts.
//!
//! The host is built with ggml's CPU backend as loadable variants (`GGML_BACKEND_DL` with
//! `GGML_CPU_ALL_VARIANTS`): one `libggml-cpu-<variant>.so` per instruction-set level, from `x64`
//! (SSE2 only) through `haswell` (AVX2) to `zen4` and `sapphirerapids` (AVX-512, VNNI, BF16,
//! AMX). Each variant exports `ggml_backend_score`, which is 0 when the running CPU lacks an
//! instruction the variant needs and otherwise grows with the features it uses. Before the
//! backend starts we score every variant, load the best (or the one the operator named), and
//! keep what we chose so that `hw` and the `hardware` interface can report it. This is what the
//! seeds did with one `llama.dll` per CPU and `get_optimal_binary`, inside one process.
//!
//! Other backend modules in the same folder (`libggml-cuda.so`, `libggml-vulkan.so`, …) are
//! loaded too; each refuses to register when its device or driver is missing.

use crate::engine::{CpuKernels, KernelVariant};
use crate::error::LlmError;
use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};

/// Where the build put the CPU variants (the `llama-cpp-sys-2` build tree); `None` when the
/// engine was built without loadable backends.
pub const BUILD_BACKENDS_DIR: Option<&str> = option_env!("TABAGENT_BUILD_BACKENDS_DIR");

/// File-name prefix and suffix of backend modules as ggml names them (`.so` on every system
/// but Windows, macOS included).
#[cfg(not(windows))]
const MODULE_PREFIX: &str = "libggml-";
#[cfg(windows)]
const MODULE_PREFIX: &str = "ggml-";
#[cfg(not(windows))]
const MODULE_SUFFIX: &str = ".so";
#[cfg(windows)]
const MODULE_SUFFIX: &str = ".dll";
/// File-name prefix of a CPU variant module.
#[cfg(not(windows))]
const CPU_PREFIX: &str = "libggml-cpu-";
#[cfg(windows)]
const CPU_PREFIX: &str = "ggml-cpu-";

/// How to find and pick the CPU kernels. [`BackendConfig::from_env`] is the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendConfig {
    /// Folder holding the backend modules; by default `backends/` beside the executable, then
    /// the build tree.
    pub backends_dir: Option<PathBuf>,
    /// Use this CPU variant (for example `x64` or `haswell`) instead of the best-scoring one.
    pub cpu_variant: Option<String>,
}

impl BackendConfig {
    /// `TABAGENT_BACKENDS_DIR` and `TABAGENT_CPU_VARIANT` from the environment (empty = unset).
    pub fn from_env() -> Self {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        Self {
            backends_dir: var("TABAGENT_BACKENDS_DIR").map(PathBuf::from),
            cpu_variant: var("TABAGENT_CPU_VARIANT"),
        }
    }

    /// The folders to look in, in order: the configured one alone, or `backends/` beside the
    /// executable and then the build tree.
    pub fn search_dirs(&self) -> Vec<PathBuf> {
        if let Some(dir) = &self.backends_dir {
            return vec![dir.clone()];
        }
        let mut dirs = Vec::new();
        if let Some(exe_dir) =
            std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf))
        {
            let beside = exe_dir.join("backends");
            // An installed copy (a `backends/` folder beside it) never falls back to the tree
            // it was built in.
            if beside.is_dir() {
                return vec![beside];
            }
            dirs.push(beside);
        }
        if let Some(dir) = BUILD_BACKENDS_DIR {
            dirs.push(dir.into());
        }
        dirs
    }
}

/// Variants the host does not pick by itself, with the reason: they score well on CPUs that
/// have their instructions but crash there in this llama.cpp release. The `sapphirerapids`
/// variant's AMX kernels pass `_tile_loadconfig` a tile configuration the compiler has
/// optimized away, and the next tile instruction is illegal (seen on a Xeon with AMX: SIGILL in
/// `tinygemm_kernel_amx` at the first prompt); llama.cpp's fix is pending upstream. They can
/// still be forced with `--cpu-variant`.
pub const NOT_PICKED: &[(&str, &str)] = &[(
    "sapphirerapids",
    "its AMX kernels crash with an illegal instruction in this llama.cpp release",
)];

/// Why the host does not pick `variant` by itself, if it does not.
pub fn not_picked(variant: &str) -> Option<&'static str> {
    NOT_PICKED.iter().find(|(n, _)| *n == variant).map(|(_, why)| *why)
}

/// A CPU variant module found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Variant name (`zen4` for `libggml-cpu-zen4.so`).
    pub name: String,
    /// The module file.
    pub path: PathBuf,
    /// Its `ggml_backend_score` on this CPU; 0 when it cannot run here.
    pub score: u32,
    /// Why it could not be opened or scored (it then scores 0), for example a missing
    /// `libgomp.so.1`.
    pub error: Option<String>,
}

/// The CPU variant modules in `dir`, scored on this CPU, sorted by name. A module that cannot
/// be opened or has no score function scores 0 (with a warning).
pub fn scan(dir: &Path) -> Vec<Candidate> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<Candidate> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file() || t.is_symlink()))
        .filter_map(|e| {
            let file = e.file_name().into_string().ok()?;
            let name = file.strip_prefix(CPU_PREFIX)?.strip_suffix(MODULE_SUFFIX)?.to_string();
            let path = e.path();
            let (score, error) = match score(&path) {
                Ok(score) => (score, None),
                Err(why) => {
                    tracing::warn!("CPU variant {}: {why}", path.display());
                    (0, Some(why))
                }
            };
            Some(Candidate { name, path, score, error })
        })
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

/// Open a module just long enough to call its `ggml_backend_score`.
fn score(path: &Path) -> Result<u32, String> {
    // SAFETY: the module is one of ggml's backend modules; opening it runs no code that needs
    // instructions beyond the baseline (ggml opens every variant the same way to score it), and
    // the symbol has the signature `int ggml_backend_score(void)`.
    unsafe {
        let lib = libloading::Library::new(path).map_err(|e| e.to_string())?;
        let f: libloading::Symbol<unsafe extern "C" fn() -> std::os::raw::c_int> =
            lib.get(b"ggml_backend_score\0").map_err(|e| e.to_string())?;
        Ok(u32::try_from(f()).unwrap_or(0))
    }
}

/// Pick the variant to load: the named one, which must exist and suit this CPU, or else the
/// highest score (the first by name on a tie). Pure, so the rules are testable.
pub fn choose<'a>(
    candidates: &'a [Candidate],
    wanted: Option<&str>,
) -> Result<&'a Candidate, LlmError> {
    let names = || candidates.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ");
    match wanted {
        Some(name) => match candidates.iter().find(|c| c.name == name) {
            Some(c) if c.score > 0 => Ok(c),
            Some(c) if c.error.is_some() => Err(LlmError::Runtime(format!(
                "CPU variant '{name}' could not be opened: {}",
                c.error.as_deref().unwrap_or_default()
            ))),
            Some(_) => Err(LlmError::Unsupported(format!(
                "CPU variant '{name}' needs instructions this CPU lacks; variants that run here: {}",
                candidates
                    .iter()
                    .filter(|c| c.score > 0)
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
            None => Err(LlmError::invalid(format!(
                "no CPU variant '{name}'; the host has: {}",
                names()
            ))),
        },
        None => candidates
            .iter()
            .filter(|c| c.score > 0 && not_picked(&c.name).is_none())
            // max_by_key keeps the last maximum; iterate in reverse so the first name wins.
            .rev()
            .max_by_key(|c| c.score)
            .ok_or_else(|| match candidates.iter().find_map(|c| c.error.as_deref()) {
                // Modules that cannot even be opened say nothing about the CPU.
                Some(why) => LlmError::Runtime(format!(
                    "no CPU variant could be loaded ({}); for example: {why}",
                    names()
                )),
                None => LlmError::Unsupported(format!(
                    "none of the CPU variants ({}) runs on this CPU",
                    names()
                )),
            }),
    }
}

/// Register ggml's backends for this process and report the CPU kernels in use. Call once,
/// before llama.cpp's backend starts.
pub(crate) fn load(config: &BackendConfig) -> Result<CpuKernels, LlmError> {
    if let Some(kernels) = built_in() {
        return Ok(kernels);
    }
    let dirs = config.search_dirs();
    let Some((dir, candidates)) =
        dirs.iter().map(|d| (d, scan(d))).find(|(_, found)| !found.is_empty())
    else {
        let looked: Vec<_> = dirs.iter().map(|d| d.display().to_string()).collect();
        return Err(LlmError::NotFound(format!(
            "no llama.cpp CPU backend ({CPU_PREFIX}*{MODULE_SUFFIX}) in {}; point \
             --backends-dir or TABAGENT_BACKENDS_DIR at the folder that holds them",
            looked.join(" or ")
        )));
    };
    let chosen = choose(&candidates, config.cpu_variant.as_deref())?;
    let reg = load_module(&chosen.path)?;
    let features = features(reg);
    tracing::info!(
        "CPU kernels: {} (score {}) from {}",
        chosen.name,
        chosen.score,
        chosen.path.display()
    );
    load_accelerators(dir);
    Ok(CpuKernels {
        variant: chosen.name.clone(),
        forced: config.cpu_variant.is_some(),
        path: Some(chosen.path.clone()),
        features,
        available: candidates
            .iter()
            .map(|c| KernelVariant {
                name: c.name.clone(),
                score: c.score,
                not_picked: not_picked(&c.name).map(str::to_string),
            })
            .collect(),
    })
}

/// A CPU backend that is already registered is used as it is, reported as `built-in`: a build
/// with ggml's CPU backend linked in (no loadable variants), or an embedder that registered
/// one itself. Loading a second one would give llama.cpp two CPU devices.
fn built_in() -> Option<CpuKernels> {
    // SAFETY: plain registry queries; ggml's registry initialises itself on first use.
    let reg = unsafe {
        let dev = llama_cpp_sys_2::ggml_backend_dev_by_type(
            llama_cpp_sys_2::GGML_BACKEND_DEVICE_TYPE_CPU,
        );
        if dev.is_null() {
            return None;
        }
        llama_cpp_sys_2::ggml_backend_dev_backend_reg(dev)
    };
    Some(CpuKernels {
        variant: "built-in".into(),
        forced: false,
        path: None,
        features: features(reg),
        available: Vec::new(),
    })
}

/// `ggml_backend_load`: register one backend module; its error says why when it refuses.
fn load_module(path: &Path) -> Result<llama_cpp_sys_2::ggml_backend_reg_t, LlmError> {
    let c_path = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| LlmError::invalid(format!("{}: path has a NUL byte", path.display())))?;
    // SAFETY: a NUL-terminated path; ggml checks the module's score and API version itself.
    let (reg, why) = super::log::capture_errors(|| unsafe {
        llama_cpp_sys_2::ggml_backend_load(c_path.as_ptr())
    });
    if reg.is_null() {
        let why = why.unwrap_or_else(|| "no reason given".into());
        return Err(LlmError::Runtime(format!(
            "llama.cpp refused backend {}: {why}",
            path.display()
        )));
    }
    Ok(reg)
}

/// Load the non-CPU modules in `dir` (GPU backends); each registers only where it can run.
fn load_accelerators(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut modules: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|f| f.to_str()).is_some_and(|f| {
                f.starts_with(MODULE_PREFIX)
                    && !f.starts_with(CPU_PREFIX)
                    && f.ends_with(MODULE_SUFFIX)
            })
        })
        .collect();
    modules.sort();
    for path in modules {
        match load_module(&path) {
            Ok(_) => tracing::info!("loaded backend {}", path.display()),
            Err(e) => tracing::info!("{e}"),
        }
    }
}

/// The instruction-set features a registered CPU backend was built for (`AVX2`, `AVX512`, …;
/// valued ones as `NAME=value`), from its `ggml_backend_get_features`.
fn features(reg: llama_cpp_sys_2::ggml_backend_reg_t) -> Vec<String> {
    type GetFeatures = unsafe extern "C" fn(
        llama_cpp_sys_2::ggml_backend_reg_t,
    ) -> *const llama_cpp_sys_2::ggml_backend_feature;
    let mut out = Vec::new();
    // SAFETY: `reg` is a live registration; the proc address, when present, has the
    // `ggml_backend_get_features_t` signature and returns an array ended by a NULL name whose
    // strings live as long as the backend.
    unsafe {
        let f = llama_cpp_sys_2::ggml_backend_reg_get_proc_address(
            reg,
            c"ggml_backend_get_features".as_ptr(),
        );
        if f.is_null() {
            return out;
        }
        let get: GetFeatures = std::mem::transmute(f);
        let mut p = get(reg);
        while !p.is_null() && !(*p).name.is_null() {
            let name = CStr::from_ptr((*p).name).to_string_lossy();
            let value = if (*p).value.is_null() {
                "1".into()
            } else {
                CStr::from_ptr((*p).value).to_string_lossy()
            };
            out.push(if value == "1" { name.into_owned() } else { format!("{name}={value}") });
            p = p.add(1);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, score: u32) -> Candidate {
        let path = format!("/b/libggml-cpu-{name}.so").into();
        Candidate { name: name.into(), path, score, error: None }
    }

    #[test]
    fn best_score_wins_and_unsupported_never_does() {
        let all = [c("haswell", 40), c("skylakex", 0), c("sse42", 3), c("x64", 1)];
        assert_eq!(choose(&all, None).unwrap().name, "haswell");
        let all = [c("a", 7), c("b", 7), c("c", 2)];
        assert_eq!(choose(&all, None).unwrap().name, "a", "ties go to the first name");
        let none = [c("skylakex", 0), c("zen4", 0)];
        let e = choose(&none, None).unwrap_err().to_string();
        assert!(e.contains("none of the CPU variants (skylakex, zen4)"), "{e}");
        assert!(choose(&[], None).is_err());
    }

    #[test]
    fn modules_that_cannot_be_opened_are_not_blamed_on_the_cpu() {
        let broken = Candidate {
            error: Some("libgomp.so.1: cannot open shared object file".into()),
            ..c("haswell", 0)
        };
        let all = [broken, c("skylakex", 0)];
        let e = choose(&all, None).unwrap_err();
        assert!(matches!(e, LlmError::Runtime(_)), "{e:?}");
        assert!(e.to_string().contains("libgomp.so.1"), "{e}");
        let e = choose(&all, Some("haswell")).unwrap_err();
        assert!(e.to_string().contains("could not be opened: libgomp"), "{e}");
        // A real variant file that is not a shared object is reported the same way.
        let dir = std::env::temp_dir().join(format!("tabagent-variants-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{CPU_PREFIX}bogus{MODULE_SUFFIX}")), b"not ELF").unwrap();
        let found = scan(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].score, 0);
        assert!(found[0].error.is_some());
    }

    #[test]
    fn variants_known_to_crash_are_not_picked_but_can_be_forced() {
        let all = [c("sapphirerapids", 4032), c("x64", 1), c("zen4", 1984)];
        assert_eq!(choose(&all, None).unwrap().name, "zen4");
        assert_eq!(choose(&all, Some("sapphirerapids")).unwrap().name, "sapphirerapids");
        let only = [c("sapphirerapids", 4032)];
        assert!(choose(&only, None).is_err());
    }

    #[test]
    fn a_forced_variant_must_exist_and_run_here() {
        let all = [c("haswell", 40), c("skylakex", 0), c("x64", 1)];
        assert_eq!(choose(&all, Some("x64")).unwrap().name, "x64");
        let e = choose(&all, Some("skylakex")).unwrap_err();
        assert!(matches!(e, LlmError::Unsupported(_)), "{e:?}");
        assert!(e.to_string().contains("run here: haswell, x64"), "{e}");
        let e = choose(&all, Some("zen9")).unwrap_err();
        assert!(matches!(e, LlmError::InvalidInput(_)), "{e:?}");
        assert!(e.to_string().contains("haswell, skylakex, x64"), "{e}");
    }

    #[test]
    fn an_explicit_folder_is_the_only_one_searched() {
        let config = BackendConfig { backends_dir: Some("/opt/x".into()), cpu_variant: None };
        assert_eq!(config.search_dirs(), vec![PathBuf::from("/opt/x")]);
        let default = BackendConfig::default().search_dirs();
        assert!(default[0].ends_with("backends"), "{default:?}");
    }

    /// The variants this build ships, scored on the CPU running the test: the SSE2 baseline
    /// runs on every x86-64 CPU, and the scores follow the CPU's own features.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_built_variants_score_against_this_cpu() {
        let Some(dir) = BUILD_BACKENDS_DIR else {
            panic!("built without loadable CPU variants");
        };
        let found = scan(Path::new(dir));
        let names: Vec<_> = found.iter().map(|c| c.name.as_str()).collect();
        for want in ["x64", "sse42", "haswell", "skylakex", "zen4"] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        let score = |n: &str| found.iter().find(|c| c.name == n).unwrap().score;
        assert!(score("x64") > 0);
        let cpu = crate::hardware::cpu();
        let has = |f: &str| cpu.features.iter().any(|x| x == f);
        assert_eq!(score("haswell") > 0, has("avx2") && has("fma") && has("f16c") && has("bmi2"));
        assert_eq!(score("skylakex") > 0, has("avx512f"));
        if score("haswell") > 0 {
            assert!(score("haswell") > score("sse42") && score("sse42") > score("x64"));
        }
    }
}
