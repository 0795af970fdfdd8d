//! What the machine has: CPU (through `raw-cpuid`), memory, and a GPU/CPU layer split.
//!
//! GPUs are listed by the engine ([`crate::engine::Engine::gpus`]), since only the engine knows
//! which devices its build can drive.

use serde::Serialize;

/// The host CPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CpuInfo {
    /// Vendor id, e.g. `AuthenticAMD`.
    pub vendor: String,
    /// Brand string.
    pub brand: String,
    /// Display family.
    pub family: u32,
    /// Display model.
    pub model: u32,
    /// Stepping.
    pub stepping: u32,
    /// Physical cores available to this process.
    pub physical_cores: u32,
    /// Hardware threads available to this process.
    pub logical_threads: u32,
    /// Inference-relevant instruction-set features, lower-case.
    pub features: Vec<String>,
    /// L1 data cache per core, in bytes (0 when not reported).
    pub l1d_cache: u64,
    /// L2 cache per core, in bytes (0 when not reported).
    pub l2_cache: u64,
    /// L3 cache (shared), in bytes (0 when not reported).
    pub l3_cache: u64,
    /// Micro-architecture name, e.g. `zen3`.
    pub microarchitecture: String,
    /// Variant name in TabAgent's style, e.g. `bitnet-amd-zen3`.
    pub variant: String,
}

/// Detect the host CPU.
pub fn cpu() -> CpuInfo {
    let logical = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let physical = physical_cores().unwrap_or(logical).clamp(1, logical);
    let mut info = detect_cpu();
    info.physical_cores = physical;
    info.logical_threads = logical;
    info
}

#[cfg(target_arch = "x86_64")]
fn detect_cpu() -> CpuInfo {
    detect_with(raw_cpuid::CpuId::new())
}

/// Describe the CPU whose CPUID a reader answers for (the host's own, or recorded leaves).
/// Cores and threads are left 0: they come from the operating system, not CPUID.
pub fn detect_with<R: raw_cpuid::CpuIdReader>(id: raw_cpuid::CpuId<R>) -> CpuInfo {
    let vendor = id.get_vendor_info().map_or_else(|| "unknown".into(), |v| v.as_str().to_string());
    let brand =
        id.get_processor_brand_string().map_or_else(String::new, |b| b.as_str().trim().to_string());
    let (family, model, stepping) = id.get_feature_info().map_or((0, 0, 0), |f| {
        (u32::from(f.family_id()), u32::from(f.model_id()), u32::from(f.stepping_id()))
    });
    let mut features = Vec::new();
    let mut add = |on: bool, name: &str| {
        if on {
            features.push(name.to_string());
        }
    };
    if let Some(f) = id.get_feature_info() {
        add(f.has_sse42(), "sse4.2");
        add(f.has_avx(), "avx");
        add(f.has_fma(), "fma");
        add(f.has_f16c(), "f16c");
    }
    if let Some(f) = id.get_extended_feature_info() {
        add(f.has_avx2(), "avx2");
        add(f.has_bmi2(), "bmi2");
        add(f.has_avx512f(), "avx512f");
        add(f.has_avx512bw(), "avx512bw");
        add(f.has_avx512vl(), "avx512vl");
        add(f.has_avx512vnni(), "avx512vnni");
        add(f.has_avx_vnni(), "avx-vnni");
        add(f.has_avx512_bf16(), "avx512bf16");
        add(f.has_amx_tile(), "amx-tile");
    }
    let (mut l1d_cache, mut l2_cache, mut l3_cache) = (0, 0, 0);
    for c in id.get_cache_parameters().into_iter().flatten() {
        let size =
            (c.associativity() * c.sets() * c.coherency_line_size() * c.physical_line_partitions())
                as u64;
        match (c.level(), c.cache_type()) {
            (1, raw_cpuid::CacheType::Data) => l1d_cache = size,
            (2, _) => l2_cache = size,
            (3, _) => l3_cache = size,
            _ => {}
        }
    }
    let microarchitecture = microarchitecture(&vendor, family, model).to_string();
    let variant = variant_name(&vendor, &microarchitecture);
    CpuInfo {
        vendor,
        brand,
        family,
        model,
        stepping,
        physical_cores: 0,
        logical_threads: 0,
        features,
        l1d_cache,
        l2_cache,
        l3_cache,
        microarchitecture,
        variant,
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect_cpu() -> CpuInfo {
    let mut features = Vec::new();
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            features.push("neon".to_string());
        }
        if std::arch::is_aarch64_feature_detected!("dotprod") {
            features.push("dotprod".to_string());
        }
        if std::arch::is_aarch64_feature_detected!("i8mm") {
            features.push("i8mm".to_string());
        }
    }
    CpuInfo {
        vendor: "unknown".into(),
        brand: String::new(),
        family: 0,
        model: 0,
        stepping: 0,
        physical_cores: 0,
        logical_threads: 0,
        features,
        l1d_cache: 0,
        l2_cache: 0,
        l3_cache: 0,
        microarchitecture: "generic".into(),
        variant: "generic".into(),
    }
}

/// Micro-architecture from CPUID vendor, display family and display model.
pub fn microarchitecture(vendor: &str, family: u32, model: u32) -> &'static str {
    match vendor {
        "AuthenticAMD" | "HygonGenuine" => match (family, model) {
            (0x17, 0x00..=0x2f) => "zen",
            (0x17, 0x30..=0xff) => "zen2",
            (0x19, 0x00..=0x0f) | (0x19, 0x20..=0x5f) => "zen3",
            (0x19, 0x10..=0x1f) | (0x19, 0x60..=0xaf) => "zen4",
            (0x1a, _) => "zen5",
            _ => "generic",
        },
        "GenuineIntel" if family == 6 => match model {
            0x3c | 0x3f | 0x45 | 0x46 => "haswell",
            0x3d | 0x47 | 0x4f | 0x56 => "broadwell",
            0x4e | 0x5e | 0x8e | 0x9e | 0xa5 | 0xa6 => "skylake",
            0x55 => "skylake-x",
            0x7d | 0x7e | 0x6a | 0x6c => "icelake",
            0x8c | 0x8d => "tigerlake",
            0xa7 => "rocketlake",
            0x97 | 0x9a | 0xb7 | 0xba | 0xbf => "alderlake",
            0xaa | 0xac => "meteorlake",
            0x8f | 0xcf => "sapphirerapids",
            0xad | 0xae => "graniterapids",
            _ => "generic",
        },
        _ => "generic",
    }
}

/// Variant name in the style of TabAgent's per-CPU builds (`bitnet-amd-zen3`, `generic`).
pub fn variant_name(vendor: &str, microarchitecture: &str) -> String {
    let brand = match vendor {
        "AuthenticAMD" | "HygonGenuine" => "amd",
        "GenuineIntel" => "intel",
        _ => return "generic".into(),
    };
    if microarchitecture == "generic" {
        "generic".into()
    } else {
        format!("bitnet-{brand}-{microarchitecture}")
    }
}

/// Physical cores among the CPUs this process may run on (Linux sysfs), if known.
fn physical_cores() -> Option<u32> {
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").ok()?;
    let mut cores = std::collections::BTreeSet::new();
    for cpu in parse_cpu_list(online.trim()) {
        let base = format!("/sys/devices/system/cpu/cpu{cpu}/topology");
        let package = std::fs::read_to_string(format!("{base}/physical_package_id")).ok()?;
        let core = std::fs::read_to_string(format!("{base}/core_id")).ok()?;
        cores.insert((package.trim().to_string(), core.trim().to_string()));
    }
    (!cores.is_empty()).then_some(cores.len() as u32)
}

/// Parse a Linux CPU list such as `0-3,8,10-11`.
fn parse_cpu_list(list: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    out.extend(a..=b.min(a.saturating_add(4096)));
                }
            }
            None => out.extend(part.parse::<u32>().ok()),
        }
    }
    out
}

/// Default thread count for llama.cpp: the physical cores.
pub fn default_threads() -> u32 {
    cpu().physical_cores.max(1)
}

/// System memory in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemoryInfo {
    /// Total.
    pub total: u64,
    /// Available.
    pub available: u64,
}

/// Read system memory (Linux `/proc/meminfo`; zeros where unknown).
pub fn memory() -> MemoryInfo {
    std::fs::read_to_string("/proc/meminfo")
        .map_or(MemoryInfo { total: 0, available: 0 }, |s| parse_meminfo(&s))
}

fn parse_meminfo(text: &str) -> MemoryInfo {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name)?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()
            })
            .map_or(0, |kb| kb * 1024)
    };
    MemoryInfo { total: field("MemTotal:"), available: field("MemAvailable:") }
}

/// How many layers to offload to a GPU, and the numbers behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SplitRecommendation {
    /// Layers to offload.
    pub gpu_layers: u32,
    /// Layers in the model.
    pub total_layers: u32,
    /// Bytes of weights per layer.
    pub bytes_per_layer: u64,
    /// Bytes of KV cache for the context.
    pub kv_cache_bytes: u64,
    /// Safety margin kept free.
    pub margin_bytes: u64,
    /// Free device memory used for the decision.
    pub free_device_memory: u64,
    /// Explanation.
    pub explanation: String,
}

/// What the split is computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitInput {
    /// Bytes of weights of each layer, in order.
    pub layer_bytes: Vec<u64>,
    /// Bytes of weights outside the layers (output head, embeddings, norms); llama.cpp offloads
    /// the output with one extra "layer" beyond the last block.
    pub output_bytes: u64,
    /// Bytes of KV cache per layer at the wanted context size.
    pub kv_bytes_per_layer: u64,
    /// Free memory of the best GPU, `None` without a GPU.
    pub free_device_memory: Option<u64>,
}

impl SplitInput {
    /// Read the layer sizes from a GGUF header and size the KV cache (F16 keys and values) for
    /// `context_size` tokens.
    pub fn from_gguf(
        f: &crate::gguf::GgufFile,
        context_size: u32,
        free_device_memory: Option<u64>,
    ) -> Self {
        let embd = f.arch_u64("embedding_length").unwrap_or(0);
        let heads = f.arch_u64("attention.head_count").unwrap_or(1).max(1);
        let kv_heads = f.arch_u64("attention.head_count_kv").unwrap_or(heads).max(1);
        let head_k = f.arch_u64("attention.key_length").unwrap_or(embd / heads);
        let head_v = f.arch_u64("attention.value_length").unwrap_or(embd / heads);
        let kv_bytes_per_layer = 2 * (head_k + head_v) * kv_heads * u64::from(context_size);
        Self {
            layer_bytes: f.layer_bytes(),
            output_bytes: f.non_layer_bytes(),
            kv_bytes_per_layer,
            free_device_memory,
        }
    }
}

/// Recommend a layer split: offload as many layers as fit in free device memory, each with its
/// KV cache, keeping a margin of 10% of free memory (at least 256 MiB); when every layer fits and
/// the output head does too, offload that as well (`gpu-layers` = layers + 1).
pub fn recommend_split(input: &SplitInput) -> SplitRecommendation {
    let layers = input.layer_bytes.len() as u32;
    let weights: u64 = input.layer_bytes.iter().sum();
    let bytes_per_layer = weights.checked_div(u64::from(layers)).unwrap_or(0);
    let kv = input.kv_bytes_per_layer;
    let kv_cache_bytes = kv * u64::from(layers);
    let Some(free) = input.free_device_memory else {
        return SplitRecommendation {
            gpu_layers: 0,
            total_layers: layers,
            bytes_per_layer,
            kv_cache_bytes,
            margin_bytes: 0,
            free_device_memory: 0,
            explanation: format!(
                "no GPU: all {layers} layers ({weights} bytes of weights, {kv_cache_bytes} bytes of KV cache) run on the CPU"
            ),
        };
    };
    let margin = (free / 10).max(256 << 20);
    let usable = free.saturating_sub(margin);
    // llama.cpp offloads the last layers first.
    let mut used = 0u64;
    let mut fit = 0u32;
    for bytes in input.layer_bytes.iter().rev() {
        if used + bytes + kv > usable {
            break;
        }
        used += bytes + kv;
        fit += 1;
    }
    let with_output = fit == layers && used + input.output_bytes <= usable;
    let gpu_layers = if with_output { layers + 1 } else { fit };
    let explanation = format!(
        "{fit} of {layers} layers fit{}: about {bytes_per_layer} bytes of weights + {kv} bytes of KV per layer, in {usable} usable bytes ({free} free - {margin} margin)",
        if with_output { ", and the output head" } else { "" }
    );
    SplitRecommendation {
        gpu_layers,
        total_layers: layers,
        bytes_per_layer,
        kv_cache_bytes,
        margin_bytes: margin,
        free_device_memory: free,
        explanation,
    }
}

#[cfg(test)]
mod cpuid_fixtures;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_cpus_are_named_and_their_features_found() {
        let fixtures = cpuid_fixtures::FIXTURES;
        assert!(fixtures.len() >= 8);
        for f in fixtures {
            let leaves = f.leaves;
            let reader = move |leaf: u32, sub: u32| {
                let r =
                    leaves.iter().find(|(l, s, _)| *l == leaf && *s == sub).map_or([0; 4], |x| x.2);
                raw_cpuid::CpuIdResult { eax: r[0], ebx: r[1], ecx: r[2], edx: r[3] }
            };
            let c = detect_with(raw_cpuid::CpuId::with_cpuid_reader(reader));
            assert_eq!(c.microarchitecture, f.microarchitecture, "{}", f.name);
            assert_eq!((c.family, c.model), (f.family, f.model), "{}", f.name);
            assert_eq!(c.features, f.features, "{}", f.name);
            assert!(
                c.brand.contains(f.name.split_whitespace().last().unwrap()),
                "{} vs {}",
                c.brand,
                f.name
            );
            assert!(c.l1d_cache >= 16 << 10 && c.l2_cache >= 256 << 10, "{}: {c:?}", f.name);
            let vendor = if f.name.starts_with("AMD") { "amd" } else { "intel" };
            let expect_variant = if f.microarchitecture == "generic" {
                "generic".to_string()
            } else {
                format!("bitnet-{vendor}-{}", f.microarchitecture)
            };
            assert_eq!(c.variant, expect_variant, "{}", f.name);
        }
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,8,10-11"), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cpu_list("0"), vec![0]);
        assert_eq!(parse_cpu_list(""), Vec::<u32>::new());
    }

    #[test]
    fn microarchitectures() {
        assert_eq!(microarchitecture("AuthenticAMD", 0x19, 0x01), "zen3");
        assert_eq!(microarchitecture("AuthenticAMD", 0x17, 0x31), "zen2");
        assert_eq!(microarchitecture("AuthenticAMD", 0x19, 0x61), "zen4");
        assert_eq!(microarchitecture("GenuineIntel", 6, 0x97), "alderlake");
        assert_eq!(microarchitecture("GenuineIntel", 6, 0x01), "generic");
        assert_eq!(variant_name("AuthenticAMD", "zen3"), "bitnet-amd-zen3");
        assert_eq!(variant_name("GenuineIntel", "generic"), "generic");
    }

    #[test]
    fn meminfo() {
        let m =
            parse_meminfo("MemTotal:       24000 kB\nMemFree: 1 kB\nMemAvailable:   12000 kB\n");
        assert_eq!(m, MemoryInfo { total: 24000 * 1024, available: 12000 * 1024 });
    }

    #[test]
    fn this_cpu_is_sane() {
        let c = cpu();
        assert!(c.physical_cores >= 1 && c.physical_cores <= c.logical_threads);
        assert!(!c.microarchitecture.is_empty());
    }

    fn input(free: Option<u64>) -> SplitInput {
        // 30 layers of 1 MiB, 3 MiB of KV each, a 20 MiB output head.
        SplitInput {
            layer_bytes: vec![1 << 20; 30],
            output_bytes: 20 << 20,
            kv_bytes_per_layer: 3 << 20,
            free_device_memory: free,
        }
    }

    #[test]
    fn split_without_gpu_is_cpu_only() {
        let r = recommend_split(&input(None));
        assert_eq!(r.gpu_layers, 0);
        assert_eq!(r.total_layers, 30);
        assert_eq!(r.kv_cache_bytes, 90 << 20);
        assert!(r.explanation.contains("no GPU"));
    }

    #[test]
    fn split_all_partial_none() {
        // All fits, output head included.
        let all = recommend_split(&input(Some(8 << 30)));
        assert_eq!(all.gpu_layers, 31);
        assert!(all.explanation.contains("output head"), "{}", all.explanation);
        // 256 MiB margin + 12 MiB usable: three layers of 4 MiB.
        let partial = recommend_split(&input(Some((256 << 20) + (12 << 20))));
        assert_eq!(partial.gpu_layers, 3, "{}", partial.explanation);
        assert_eq!(partial.margin_bytes, 256 << 20);
        // Every layer fits but not the head: 30 layers.
        let no_head = recommend_split(&input(Some((256 << 20) + (125 << 20))));
        assert_eq!(no_head.gpu_layers, 30, "{}", no_head.explanation);
        // Nothing fits.
        assert_eq!(recommend_split(&input(Some(100 << 20))).gpu_layers, 0);
    }
}
