//! Recorded CPUID leaves of real CPUs, for unit tests of CPU detection.
//! Sources: InstLatx64 CPUID dumps (see the list below).
//!
//! All dumps come from the InstLatx64 CPUID collection,
//! <https://github.com/InstLatx64/InstLatx64> (snapshot at commit
//! 087af2c7d72c9a6af85a3a079e8fdb878db23ba1).
//! Each fixture names its file in that repository. The values are logical CPU #0
//! of each dump, copied verbatim (`CPUID llllllll: eax-ebx-ecx-edx [SL ss]` lines).
//! Only the leaves listed below are kept; a leaf or subleaf that the dump does not
//! record (e.g. leaf 7 subleaf 1 when leaf 7.0 EAX is 0) is left out, so a test
//! reader should answer zeros for anything not in `leaves`.
//!
//! - AMD Ryzen 7 1700X: `AuthenticAMD/AuthenticAMD0800F11_K17_Zen2_CPUID.txt`
//! - AMD EPYC 7551P: `AuthenticAMD/AuthenticAMD0800F12_K17_Zen_CPUID.txt`
//! - AMD Ryzen 9 3900X: `AuthenticAMD/AuthenticAMD0870F10_K17_Matisse_CPUID3.txt`
//! - AMD EPYC 7742: `AuthenticAMD/AuthenticAMD0830F10_K17_Rome_CPUID.txt`
//! - AMD Ryzen 9 5950X: `AuthenticAMD/AuthenticAMD0A20F10_K19_Vermeer_CPUID1.txt`
//! - AMD EPYC 7763: `AuthenticAMD/AuthenticAMD0A00F11_K19_Milan_CPUID2.txt`
//! - AMD Ryzen 9 7950X: `AuthenticAMD/AuthenticAMD0A60F12_K19_Raphael_04_CPUID.txt`
//! - AMD EPYC 9654: `AuthenticAMD/AuthenticAMD0A10F11_K19_Genoa_01_CPUID.txt`
//! - AMD Ryzen 9 9950X: `AuthenticAMD/AuthenticAMD0B40F40_K20_GraniteRidge_02_CPUID.txt`
//! - Intel Core i7-4770: `GenuineIntel/GenuineIntel00306C3_Haswell_CPUID.txt`
//! - Intel Core i7-6700K: `GenuineIntel/GenuineIntel00506E3_SkyLake_01_CPUID.txt`
//! - Intel Core i9-7900X: `GenuineIntel/GenuineIntel0050654_SkylakeX_CPUID.txt`
//! - Intel Xeon Gold 6130: `GenuineIntel/GenuineIntel0050654_SkylakeXeon_CPUID2.txt`
//! - Intel Core i7-1065G7: `GenuineIntel/GenuineIntel00706E5_IceLakeY_CPUID.txt`
//! - Intel Xeon Gold 6330: `GenuineIntel/GenuineIntel00606A6_ICX_CPUID2.txt`
//! - Intel Core i9-12900K: `GenuineIntel/GenuineIntel0090672_AlderLake_01_LC_BC_CPUID.txt`
//! - Intel Core i9-13900K: `GenuineIntel/GenuineIntel00B0671_RaptorLake_01_CPUID.txt`
//! - Intel Xeon w9-3475X: `GenuineIntel/GenuineIntel00806F8_SapphireRapids_06_CPUID.txt`
//! - Intel Core i7-2600: `GenuineIntel/GenuineIntel00206A7_SandyBridge2_CPUID.txt`
//! - Intel Celeron J3455: `GenuineIntel/GenuineIntel00506C9_Goldmont2_CPUID.txt`

/// One CPUID result: (leaf, subleaf, [eax, ebx, ecx, edx]).
pub(crate) type Leaf = (u32, u32, [u32; 4]);

/// A real CPU's recorded CPUID leaves and what detection should say about it.
pub(crate) struct Fixture {
    /// Marketing name, e.g. "AMD Ryzen 9 5950X".
    pub name: &'static str,
    /// Expected micro-architecture: one of "zen", "zen2", "zen3", "zen4", "zen5", "haswell",
    /// "skylake", "skylake-x", "icelake", "alderlake", "sapphirerapids", "generic" (anything else,
    /// e.g. pre-Haswell).
    pub microarchitecture: &'static str,
    /// Expected display family and model (family = base + extended family when base is 0xF;
    /// model = (extended model << 4) + base model when family is 6 or >= 0xF).
    pub family: u32,
    pub model: u32,
    /// Expected inference features, from this set only, lower-case, in this order:
    /// "sse4.2", "avx", "fma", "f16c", "avx2", "bmi2", "avx512f", "avx512bw", "avx512vl",
    /// "avx512vnni", "avx-vnni", "avx512bf16", "amx-tile".
    pub features: &'static [&'static str],
    /// The recorded leaves.
    pub leaves: &'static [Leaf],
}

pub(crate) const FIXTURES: &[Fixture] = &[
    // AMD Ryzen 7 1700X Eight-Core Processor
    // Source: InstLatx64/InstLatx64 AuthenticAMD/AuthenticAMD0800F11_K17_Zen2_CPUID.txt
    Fixture {
        name: "AMD Ryzen 7 1700X",
        microarchitecture: "zen",
        family: 0x17,
        model: 0x1,
        features: &["sse4.2", "avx", "fma", "f16c", "avx2", "bmi2"],
        leaves: &[
            (0x00000000, 0, [0x0000000D, 0x68747541, 0x444D4163, 0x69746E65]),
            (0x00000001, 0, [0x00800F11, 0x00100800, 0x7ED8320B, 0x178BFBFF]),
            (0x00000007, 0, [0x00000000, 0x209C01A9, 0x00000000, 0x00000000]),
            (0x80000000, 0, [0x8000001F, 0x68747541, 0x444D4163, 0x69746E65]),
            (0x80000001, 0, [0x00800F11, 0x20000000, 0x35C233FF, 0x2FD3FBFF]),
            (0x80000002, 0, [0x20444D41, 0x657A7952, 0x2037206E, 0x30303731]),
            (0x80000003, 0, [0x69452058, 0x2D746867, 0x65726F43, 0x6F725020]),
            (0x80000004, 0, [0x73736563, 0x2020726F, 0x20202020, 0x00202020]),
            (0x80000005, 0, [0xFF40FF40, 0xFF40FF40, 0x20080140, 0x40040140]),
            (0x80000006, 0, [0x26006400, 0x66006400, 0x02006140, 0x00808140]),
            (0x80000008, 0, [0x00003030, 0x00000007, 0x0000400F, 0x00000000]),
            (0x8000001D, 0, [0x00004121, 0x01C0003F, 0x0000003F, 0x00000000]),
            (0x8000001D, 1, [0x00004122, 0x00C0003F, 0x000000FF, 0x00000000]),
            (0x8000001D, 2, [0x00004143, 0x01C0003F, 0x000003FF, 0x00000002]),
            (0x8000001D, 3, [0x0001C163, 0x03C0003F, 0x00001FFF, 0x00000001]),
            (0x8000001E, 0, [0x00000000, 0x00000100, 0x00000000, 0x00000000]),
        ],
    },
    // AMD EPYC 7551P 32-Core Processor
    // Source: InstLatx64/InstLatx64 AuthenticAMD/AuthenticAMD0800F12_K17_Zen_CPUID.txt
    Fixture {
        name: "AMD EPYC 7551P",
        microarchitecture: "zen",
        family: 0x17,
        model: 0x1,
        features: &["sse4.2", "avx", "fma", "f16c", "avx2", "bmi2"],
        leaves: &[
            (0x00000000, 0, [0x0000000D, 0x68747541, 0x444D4163, 0x69746E65]),
            (0x00000001, 0, [0x00800F12, 0x00400800, 0x7ED8320B, 0x178BFBFF]),
            (0x00000007, 0, [0x00000000, 0x209C01A9, 0x00000000, 0x00000000]),
            (0x80000000, 0, [0x8000001F, 0x68747541, 0x444D4163, 0x69746E65]),
            (0x80000001, 0, [0x00800F12, 0x40000000, 0x35C233FF, 0x2FD3FBFF]),
            (0x80000002, 0, [0x20444D41, 0x43595045, 0x35353720, 0x33205031]),
            (0x80000003, 0, [0x6F432D32, 0x50206572, 0x65636F72, 0x726F7373]),
            (0x80000004, 0, [0x20202020, 0x20202020, 0x20202020, 0x00202020]),
            (0x80000005, 0, [0xFF40FF40, 0xFF40FF40, 0x20080140, 0x40040140]),
            (0x80000006, 0, [0x36006400, 0x56006400, 0x02006140, 0x0200C140]),
            (0x80000008, 0, [0x00003030, 0x00000007, 0x0000603F, 0x00000000]),
            (0x8000001D, 0, [0x00004121, 0x01C0003F, 0x0000003F, 0x00000000]),
            (0x8000001D, 1, [0x00004122, 0x00C0003F, 0x000000FF, 0x00000000]),
            (0x8000001D, 2, [0x00004143, 0x01C0003F, 0x000003FF, 0x00000002]),
            (0x8000001D, 3, [0x0001C163, 0x03C0003F, 0x00001FFF, 0x00000001]),
            (0x8000001E, 0, [0x00000000, 0x00000100, 0x00000300, 0x00000000]),
        ],
    },
    // AMD Ryzen 9 3900X 12-Core Processor
    // Source: InstLatx64/InstLatx64 AuthenticAMD/AuthenticAMD0870F10_K17_Matisse_CPUID3.txt
    Fixture {
        name: "AMD Ryzen 9 3900X",
        microarchitecture: "zen2",
        family: 0x17,
        model: 0x71,
        features: &["sse4.2", "avx", "fma", "f16c", "avx2", "bmi2"],
        leaves: &[
            (0x00000000, 0, [0x00000010, 0x68747541, 0x444D4163, 0x69746E65]),
            (0x00000001, 0, [0x00870F10, 0x00180800, 0x7ED8320B, 0x178BFBFF]),
            (0x00000007, 0, [0x00000000, 0x219C91A9, 0x00400004, 0x00000000]),
            (0x0000000B, 0, [0x00000001, 0x00000002, 0x00000100, 0x00000000]),
            (0x0000000B, 1, [0x00000007, 0x00000018, 0x00000201, 0x00000000]),
            (0x80000000, 0, [0x80000020, 0x68747541, 0x444D4163, 0x69746E65]),
            (0x80000001, 0, [0x00870F10, 0x20000000, 0x75C237FF, 0x2FD3FBFF]),
            (0x80000002, 0, [0x20444D41, 0x657A7952, 0x2039206E, 0x30303933]),
            (0x80000003, 0, [0x32312058, 0x726F432D, 0x72502065, 0x7365636F]),
            (0x80000004, 0, [0x20726F73, 0x20202020, 0x20202020, 0x00202020]),
            (0x80000005, 0, [0xFF40FF40, 0xFF40FF40, 0x20080140, 0x20080140]),
            (0x80000006, 0, [0x48006400, 0x68006400, 0x02006140, 0x02009140]),
            (0x80000008, 0, [0x00003030, 0x010EB757, 0x00007017, 0x00010000]),
            (0x8000001D, 0, [0x00004121, 0x01C0003F, 0x0000003F, 0x00000000]),
            (0x8000001D, 1, [0x00004122, 0x01C0003F, 0x0000003F, 0x00000000]),
            (0x8000001D, 2, [0x00004143, 0x01C0003F, 0x000003FF, 0x00000002]),
            (0x8000001D, 3, [0x00014163, 0x03C0003F, 0x00003FFF, 0x00000001]),
            (0x8000001E, 0, [0x00000000, 0x00000100, 0x00000000, 0x00000000]),
        ],
    },
    // AMD EPYC 7742 64-Core Processor
    // Source: InstLatx64/InstLatx64 AuthenticAMD/AuthenticAMD0830F10_K17_Rome_CPUID.txt
    Fixture {
        name: "AMD EPYC 7742",
        microarchitecture: "zen2",
        family: 0x17,
        model: 0x31,
        features: &["sse4.2", "avx", "fma", "f16c", "avx2", "bmi2"],
        leaves: &[
            (0x00000000, 0, [0x00000010, 0x68747541, 0x444D4163, 0x69746E65]),
            (0x00000001, 0, [0x00830F10, 0x00800800, 0x7EF8320B, 0x178BFBFF]),
            (0x00000007, 0, [0x00000000, 0x219C91A9, 0x00400004, 0x00000000]),
            (0x0000000B, 0, [0x00000001, 0x00000002, 0x00000100, 0x00000000]),
            (0x0000000B, 1, [0x00000007, 0x00000080, 0x00000201, 0x00000000]),
            (0x80000000, 0, [0x80000020, 0x68747541, 0x444D4163, 0x69746E65]),
            (0x80000001, 0, [0x00830F10, 0x40000000, 0x75C237FF, 0x2FD3FBFF]),
            (0x80000002, 0, [0x20444D41, 0x43595045, 0x34373720, 0x34362032]),
            (0x80000003, 0, [0x726F432D, 0x72502065, 0x7365636F, 0x20726F73]),
            (0x80000004, 0, [0x20202020, 0x20202020, 0x20202020, 0x00202020]),
            (0x80000005, 0, [0xFF40FF40, 0xFF40FF40, 0x20080140, 0x20080140]),
            (0x80000006, 0, [0x48006400, 0x68006400, 0x02006140, 0x08009140]),
            (0x80000008, 0, [0x00003030, 0x018EF757, 0x0000707F, 0x00010000]),
            (0x8000001D, 0, [0x00004121, 0x01C0003F, 0x0000003F, 0x00000000]),
            (0x8000001D, 1, [0x00004122, 0x01C0003F, 0x0000003F, 0x00000000]),
            (0x8000001D, 2, [0x00004143, 0x01C0003F, 0x000003FF, 0x00000002]),
            (0x8000001D, 3, [0x0001C163, 0x03C0003F, 0x00003FFF, 0x00000001]),
            (0x8000001E, 0, [0x00000000, 0x00000100, 0x00000000, 0x00000000]),
        ],
    },
    // AMD Ryzen 9 5950X 16-Core Processor
    // Source: InstLatx64/InstLatx64 AuthenticAMD/AuthenticAMD0A20F10_K19_Vermeer_CPUID1.txt
    Fixture {
        name: "AMD Ryzen 9 5950X",
        microarchitecture: "zen3",
        family: 0x19,
        model: 0x21,
        features: &["sse4.2", "avx", "fma", "f16c", "avx2", "bmi2"],
        leaves: &[
            (0x00000000, 0, [0x00000010, 0x68747541, 0x444D4163, 0x69746E65]),
            (0x00000001, 0, [0x00A20F10, 0x00200800, 0x7ED8320B, 0x178BFBFF]),
            (0x00000004, 0, [0x00000000, 0x00000000, 0x00000000, 0x00000000]),
            (0x00000007, 0, [0x00000000, 0x219C97A9, 0x0040068C, 0x00000010]),
            (0x0000000B, 0, [0x00000001, 0x00000002, 0x00000100, 0x00000000]),
            (0x0000000B, 1, [0x00000005, 0x00000020, 0x00000201, 0x00000000]),
            (0x80000000, 0, [0x80000023, 0x68747541, 0x444D4163, 0x69746E65]),
            (0x80000001, 0, [0x00A20F10, 0x20000000, 0x75C237FF, 0x2FD3FBFF]),
            (0x80000002, 0, [0x20444D41, 0x657A7952, 0x2039206E, 0x30353935]),
            (0x80000003, 0, [0x36312058, 0x726F432D, 0x72502065, 0x7365636F]),
            (0x80000004, 0, [0x20726F73, 0x20202020, 0x20202020, 0x00202020]),
            (0x80000005, 0, [0xFF40FF40, 0xFF40FF40, 0x20080140, 0x20080140]),
            (0x80000006, 0, [0x48002200, 0x68004200, 0x02006140, 0x02009140]),
            (0x80000008, 0, [0x00003030, 0x111EF657, 0x0000501F, 0x00010000]),
            (0x8000001D, 0, [0x00004121, 0x01C0003F, 0x0000003F, 0x00000000]),
            (0x8000001D, 1, [0x00004122, 0x01C0003F, 0x0000003F, 0x00000000]),
            (0x8000001D, 2, [0x00004143, 0x01C0003F, 0x000003FF, 0x00000002]),
            (0x8000001D, 3, [0x0003C163, 0x03C0003F, 0x00007FFF, 0x00000001]),
            (0x8000001E, 0, [0x00000000, 0x00000100, 0x00000000, 0x00000000]),
        ],
    },
    // AMD EPYC 7763 64-Core Processor
    // Source: InstLatx64/InstLatx64 AuthenticAMD/AuthenticAMD0A00F11_K19_Milan_CPUID2.txt
    Fixture {
        name: "AMD EPYC 7763",
        microarchitecture: "zen3",
        family: 0x19,
        model: 0x1,
        features: &["sse4.2", "avx", "fma", "f16c", "avx2", "bmi2"],
        leaves: &[
            (0x00000000, 0, [0x00000010, 0x68747541, 0x444D4163, 0x69746E65]),
            (0x00000001, 0, [0x00A00F11, 0x00800800, 0x7EFA320B, 0x178BFBFF]),
            (0x00000007, 0, [0x00000000, 0x219C97A9, 0x0040068C, 0x00000010]),
            (0x0000000B, 0, [0x00000001, 0x00000002, 0x00000100, 0x00000000]),
            (0x0000000B, 1, [0x00000007, 0x00000080, 0x00000201, 0x00000000]),
            (0x80000000, 0, [0x80000023, 0x68747541, 0x444D4163, 0x69746E65]),
            (0x80000001, 0, [0x00A00F11, 0x40000000, 0x75C237FF, 0x2FD3FBFF]),
            (0x80000002, 0, [0x20444D41, 0x43595045, 0x36373720, 0x34362033]),
            (0x80000003, 0, [0x726F432D, 0x72502065, 0x7365636F, 0x20726F73]),
            (0x80000004, 0, [0x20202020, 0x20202020, 0x20202020, 0x00202020]),
            (0x80000005, 0, [0xFF40FF40, 0xFF40FF40, 0x20080140, 0x20080140]),
            (0x80000006, 0, [0x48002200, 0x68004200, 0x02006140, 0x08009140]),
            (0x80000008, 0, [0x00003030, 0x91BEF75F, 0x0000707F, 0x00010007]),
            (0x8000001D, 0, [0x00004121, 0x01C0003F, 0x0000003F, 0x00000000]),
            (0x8000001D, 1, [0x00004122, 0x01C0003F, 0x0000003F, 0x00000000]),
            (0x8000001D, 2, [0x00004143, 0x01C0003F, 0x000003FF, 0x00000002]),
            (0x8000001D, 3, [0x0003C163, 0x03C0003F, 0x00007FFF, 0x00000001]),
            (0x8000001E, 0, [0x00000000, 0x00000100, 0x00000000, 0x00000000]),
        ],
    },
    // AMD Ryzen 9 7950X 16-Core Processor
    // Source: InstLatx64/InstLatx64 AuthenticAMD/AuthenticAMD0A60F12_K19_Raphael_04_CPUID.txt
    Fixture {
        name: "AMD Ryzen 9 7950X",
        microarchitecture: "zen4",
        family: 0x19,
        model: 0x61,
        features: &[
            "sse4.2",
            "avx",
            "fma",
            "f16c",
            "avx2",
            "bmi2",
            "avx512f",
            "avx512bw",
            "avx512vl",
            "avx512vnni",
            "avx512bf16",
        ],
        leaves: &[
            (0x00000000, 0, [0x00000010, 0x68747541, 0x444D4163, 0x69746E65]),
            (0x00000001, 0, [0x00A60F12, 0x00200800, 0x7EF8320B, 0x178BFBFF]),
            (0x00000007, 0, [0x00000001, 0xF1BF97A9, 0x00405FCE, 0x10000010]),
            (0x00000007, 1, [0x00000020, 0x00000000, 0x00000000, 0x00000000]),
            (0x0000000B, 0, [0x00000001, 0x00000002, 0x00000100, 0x00000000]),
            (0x0000000B, 1, [0x00000005, 0x00000020, 0x00000201, 0x00000000]),
            (0x80000000, 0, [0x80000028, 0x68747541, 0x444D4163, 0x69746E65]),
            (0x80000001, 0, [0x00A60F12, 0x00000000, 0x75C237FF, 0x2FD3FBFF]),
            (0x80000002, 0, [0x20444D41, 0x657A7952, 0x2039206E, 0x30353937]),
            (0x80000003, 0, [0x36312058, 0x726F432D, 0x72502065, 0x7365636F]),
            (0x80000004, 0, [0x20726F73, 0x20202020, 0x20202020, 0x00202020]),
            (0x80000005, 0, [0xFF48FF40, 0xFF48FF40, 0x20080140, 0x20080140]),
            (0x80000006, 0, [0x5C002200, 0x6C004200, 0x04006140, 0x02009140]),
            (0x80000008, 0, [0x00003030, 0x191EF257, 0x0000501F, 0x00010000]),
            (0x8000001D, 0, [0x00004121, 0x01C0003F, 0x0000003F, 0x00000000]),
            (0x8000001D, 1, [0x00004122, 0x01C0003F, 0x0000003F, 0x00000000]),
            (0x8000001D, 2, [0x00004143, 0x01C0003F, 0x000007FF, 0x00000002]),
            (0x8000001D, 3, [0x0003C163, 0x03C0003F, 0x00007FFF, 0x00000001]),
            (0x8000001E, 0, [0x00000000, 0x00000100, 0x00000000, 0x00000000]),
        ],
    },
    // AMD EPYC 9654 96-Core Processor
    // Source: InstLatx64/InstLatx64 AuthenticAMD/AuthenticAMD0A10F11_K19_Genoa_01_CPUID.txt
    Fixture {
        name: "AMD EPYC 9654",
        microarchitecture: "zen4",
        family: 0x19,
        model: 0x11,
        features: &[
            "sse4.2",
            "avx",
            "fma",
            "f16c",
            "avx2",
            "bmi2",
            "avx512f",
            "avx512bw",
            "avx512vl",
            "avx512vnni",
            "avx512bf16",
        ],
        leaves: &[
            (0x00000000, 0, [0x00000010, 0x68747541, 0x444D4163, 0x69746E65]),
            (0x00000001, 0, [0x00A10F11, 0x00C00800, 0x7EFA320B, 0x178BFBFF]),
            (0x00000007, 0, [0x00000001, 0xF1BF97A9, 0x00415FCE, 0x10000010]),
            (0x00000007, 1, [0x00000020, 0x00000000, 0x00000000, 0x00000000]),
            (0x0000000B, 0, [0x00000001, 0x00000002, 0x00000100, 0x00000000]),
            (0x0000000B, 1, [0x00000008, 0x000000C0, 0x00000201, 0x00000000]),
            (0x80000000, 0, [0x80000028, 0x68747541, 0x444D4163, 0x69746E65]),
            (0x80000001, 0, [0x00A10F11, 0x40000000, 0x75C237FF, 0x2FD3FBFF]),
            (0x80000002, 0, [0x20444D41, 0x43595045, 0x35363920, 0x36392034]),
            (0x80000003, 0, [0x726F432D, 0x72502065, 0x7365636F, 0x20726F73]),
            (0x80000004, 0, [0x20202020, 0x20202020, 0x20202020, 0x00202020]),
            (0x80000005, 0, [0xFF48FF40, 0xFF48FF40, 0x20080140, 0x20080140]),
            (0x80000006, 0, [0x5C002200, 0x6C004200, 0x04006140, 0x0C009140]),
            (0x80000008, 0, [0x00003934, 0x79BEF25F, 0x000080BF, 0x00010007]),
            (0x8000001D, 0, [0x00004121, 0x01C0003F, 0x0000003F, 0x00000000]),
            (0x8000001D, 1, [0x00004122, 0x01C0003F, 0x0000003F, 0x00000000]),
            (0x8000001D, 2, [0x00004143, 0x01C0003F, 0x000007FF, 0x00000002]),
            (0x8000001D, 3, [0x0003C163, 0x03C0003F, 0x00007FFF, 0x00000001]),
            (0x8000001E, 0, [0x00000000, 0x00000100, 0x00000000, 0x00000000]),
        ],
    },
    // AMD Ryzen 9 9950X 16-Core Processor
    // Source: InstLatx64/InstLatx64 AuthenticAMD/AuthenticAMD0B40F40_K20_GraniteRidge_02_CPUID.txt
    Fixture {
        name: "AMD Ryzen 9 9950X",
        microarchitecture: "zen5",
        family: 0x1A,
        model: 0x44,
        features: &[
            "sse4.2",
            "avx",
            "fma",
            "f16c",
            "avx2",
            "bmi2",
            "avx512f",
            "avx512bw",
            "avx512vl",
            "avx512vnni",
            "avx-vnni",
            "avx512bf16",
        ],
        leaves: &[
            (0x00000000, 0, [0x00000010, 0x68747541, 0x444D4163, 0x69746E65]),
            (0x00000001, 0, [0x00B40F40, 0x00200800, 0x7ED8320B, 0x178BFBFF]),
            (0x00000007, 0, [0x00000001, 0xF1BF97AB, 0x19405FCE, 0x10000110]),
            (0x00000007, 1, [0x00000030, 0x00000000, 0x00000000, 0x00000000]),
            (0x0000000B, 0, [0x00000001, 0x00000002, 0x00000100, 0x00000000]),
            (0x0000000B, 1, [0x00000005, 0x00000020, 0x00000201, 0x00000000]),
            (0x80000000, 0, [0x80000028, 0x68747541, 0x444D4163, 0x69746E65]),
            (0x80000001, 0, [0x00B40F40, 0x00000000, 0x75C237FF, 0x2FD3FBFF]),
            (0x80000002, 0, [0x20444D41, 0x657A7952, 0x2039206E, 0x30353939]),
            (0x80000003, 0, [0x36312058, 0x726F432D, 0x72502065, 0x7365636F]),
            (0x80000004, 0, [0x20726F73, 0x20202020, 0x20202020, 0x00202020]),
            (0x80000005, 0, [0xFF60FF40, 0xFF60FF40, 0x300C0140, 0x20080140]),
            (0x80000006, 0, [0x40802040, 0x60804040, 0x04008140, 0x02009140]),
            (0x80000008, 0, [0x00003030, 0x791EF257, 0x0000501F, 0x00010000]),
            (0x8000001D, 0, [0x00004121, 0x02C0003F, 0x0000003F, 0x00000000]),
            (0x8000001D, 1, [0x00004122, 0x01C0003F, 0x0000003F, 0x00000000]),
            (0x8000001D, 2, [0x00004143, 0x03C0003F, 0x000003FF, 0x00000002]),
            (0x8000001D, 3, [0x0003C163, 0x03C0003F, 0x00007FFF, 0x00000001]),
            (0x8000001E, 0, [0x00000000, 0x00000100, 0x00000000, 0x00000000]),
        ],
    },
    // Intel(R) Core(TM) i7-4770 CPU @ 3.40GHz
    // Source: InstLatx64/InstLatx64 GenuineIntel/GenuineIntel00306C3_Haswell_CPUID.txt
    Fixture {
        name: "Intel Core i7-4770",
        microarchitecture: "haswell",
        family: 0x6,
        model: 0x3C,
        features: &["sse4.2", "avx", "fma", "f16c", "avx2", "bmi2"],
        leaves: &[
            (0x00000000, 0, [0x0000000D, 0x756E6547, 0x6C65746E, 0x49656E69]),
            (0x00000001, 0, [0x000306C3, 0x00100800, 0x7FFAFBFF, 0xBFEBFBFF]),
            (0x00000004, 0, [0x1C004121, 0x01C0003F, 0x0000003F, 0x00000000]),
            (0x00000004, 1, [0x1C004122, 0x01C0003F, 0x0000003F, 0x00000000]),
            (0x00000004, 2, [0x1C004143, 0x01C0003F, 0x000001FF, 0x00000000]),
            (0x00000004, 3, [0x1C03C163, 0x03C0003F, 0x00001FFF, 0x00000006]),
            (0x00000007, 0, [0x00000000, 0x000027AB, 0x00000000, 0x00000000]),
            (0x0000000B, 0, [0x00000001, 0x00000002, 0x00000100, 0x00000000]),
            (0x0000000B, 1, [0x00000004, 0x00000008, 0x00000201, 0x00000000]),
            (0x80000000, 0, [0x80000008, 0x00000000, 0x00000000, 0x00000000]),
            (0x80000001, 0, [0x00000000, 0x00000000, 0x00000021, 0x2C100000]),
            (0x80000002, 0, [0x65746E49, 0x2952286C, 0x726F4320, 0x4D542865]),
            (0x80000003, 0, [0x37692029, 0x3737342D, 0x50432030, 0x20402055]),
            (0x80000004, 0, [0x30342E33, 0x007A4847, 0x00000000, 0x00000000]),
            (0x80000005, 0, [0x00000000, 0x00000000, 0x00000000, 0x00000000]),
            (0x80000006, 0, [0x00000000, 0x00000000, 0x01006040, 0x00000000]),
            (0x80000008, 0, [0x00003027, 0x00000000, 0x00000000, 0x00000000]),
        ],
    },
    // Intel(R) Core(TM) i7-6700K CPU @ 4.00GHz
    // Source: InstLatx64/InstLatx64 GenuineIntel/GenuineIntel00506E3_SkyLake_01_CPUID.txt
    Fixture {
        name: "Intel Core i7-6700K",
        microarchitecture: "skylake",
        family: 0x6,
        model: 0x5E,
        features: &["sse4.2", "avx", "fma", "f16c", "avx2", "bmi2"],
        leaves: &[
            (0x00000000, 0, [0x00000016, 0x756E6547, 0x6C65746E, 0x49656E69]),
            (0x00000001, 0, [0x000506E3, 0x00100800, 0x7FFAFBBF, 0xBFEBFBFF]),
            (0x00000004, 0, [0x1C004121, 0x01C0003F, 0x0000003F, 0x00000000]),
            (0x00000004, 1, [0x1C004122, 0x01C0003F, 0x0000003F, 0x00000000]),
            (0x00000004, 2, [0x1C004143, 0x00C0003F, 0x000003FF, 0x00000000]),
            (0x00000004, 3, [0x1C03C163, 0x03C0003F, 0x00001FFF, 0x00000006]),
            (0x00000007, 0, [0x00000000, 0x029C6FBF, 0x00000000, 0x9C002400]),
            (0x0000000B, 0, [0x00000001, 0x00000002, 0x00000100, 0x00000000]),
            (0x0000000B, 1, [0x00000004, 0x00000008, 0x00000201, 0x00000000]),
            (0x80000000, 0, [0x80000008, 0x00000000, 0x00000000, 0x00000000]),
            (0x80000001, 0, [0x00000000, 0x00000000, 0x00000121, 0x2C100800]),
            (0x80000002, 0, [0x65746E49, 0x2952286C, 0x726F4320, 0x4D542865]),
            (0x80000003, 0, [0x37692029, 0x3037362D, 0x43204B30, 0x40205550]),
            (0x80000004, 0, [0x302E3420, 0x7A484730, 0x00000000, 0x00000000]),
            (0x80000005, 0, [0x00000000, 0x00000000, 0x00000000, 0x00000000]),
            (0x80000006, 0, [0x00000000, 0x00000000, 0x01006040, 0x00000000]),
            (0x80000008, 0, [0x00003027, 0x00000000, 0x00000000, 0x00000000]),
        ],
    },
    // Intel(R) Core(TM) i9-7900X CPU @ 3.30GHz
    // Source: InstLatx64/InstLatx64 GenuineIntel/GenuineIntel0050654_SkylakeX_CPUID.txt
    Fixture {
        name: "Intel Core i9-7900X",
        microarchitecture: "skylake-x",
        family: 0x6,
        model: 0x55,
        features: &[
            "sse4.2", "avx", "fma", "f16c", "avx2", "bmi2", "avx512f", "avx512bw", "avx512vl",
        ],
        leaves: &[
            (0x00000000, 0, [0x00000016, 0x756E6547, 0x6C65746E, 0x49656E69]),
            (0x00000001, 0, [0x00050654, 0x00200800, 0x7FFEFBBF, 0xBFEBFBFF]),
            (0x00000004, 0, [0x3C004121, 0x01C0003F, 0x0000003F, 0x00000000]),
            (0x00000004, 1, [0x3C004122, 0x01C0003F, 0x0000003F, 0x00000000]),
            (0x00000004, 2, [0x3C004143, 0x03C0003F, 0x000003FF, 0x00000000]),
            (0x00000004, 3, [0x3C07C163, 0x0280003F, 0x00004FFF, 0x00000004]),
            (0x00000007, 0, [0x00000000, 0xD39FFFFB, 0x00000000, 0x00000000]),
            (0x0000000B, 0, [0x00000001, 0x00000002, 0x00000100, 0x00000000]),
            (0x0000000B, 1, [0x00000005, 0x00000014, 0x00000201, 0x00000000]),
            (0x80000000, 0, [0x80000008, 0x00000000, 0x00000000, 0x00000000]),
            (0x80000001, 0, [0x00000000, 0x00000000, 0x00000121, 0x2C100000]),
            (0x80000002, 0, [0x65746E49, 0x2952286C, 0x726F4320, 0x4D542865]),
            (0x80000003, 0, [0x39692029, 0x3039372D, 0x43205830, 0x40205550]),
            (0x80000004, 0, [0x332E3320, 0x7A484730, 0x00000000, 0x00000000]),
            (0x80000005, 0, [0x00000000, 0x00000000, 0x00000000, 0x00000000]),
            (0x80000006, 0, [0x00000000, 0x00000000, 0x01006040, 0x00000000]),
            (0x80000008, 0, [0x0000302E, 0x00000000, 0x00000000, 0x00000000]),
        ],
    },
    // Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz
    // Source: InstLatx64/InstLatx64 GenuineIntel/GenuineIntel0050654_SkylakeXeon_CPUID2.txt
    Fixture {
        name: "Intel Xeon Gold 6130",
        microarchitecture: "skylake-x",
        family: 0x6,
        model: 0x55,
        features: &[
            "sse4.2", "avx", "fma", "f16c", "avx2", "bmi2", "avx512f", "avx512bw", "avx512vl",
        ],
        leaves: &[
            (0x00000000, 0, [0x00000016, 0x756E6547, 0x6C65746E, 0x49656E69]),
            (0x00000001, 0, [0x00050654, 0x00200800, 0x7FFEFBFF, 0xBFEBFBFF]),
            (0x00000004, 0, [0x3C004121, 0x01C0003F, 0x0000003F, 0x00000000]),
            (0x00000004, 1, [0x3C004122, 0x01C0003F, 0x0000003F, 0x00000000]),
            (0x00000004, 2, [0x3C004143, 0x03C0003F, 0x000003FF, 0x00000000]),
            (0x00000004, 3, [0x3C07C163, 0x0280003F, 0x00007FFF, 0x00000004]),
            (0x00000007, 0, [0x00000000, 0xD39FFFFB, 0x00000008, 0x00000000]),
            (0x0000000B, 0, [0x00000001, 0x00000002, 0x00000100, 0x00000000]),
            (0x0000000B, 1, [0x00000005, 0x00000020, 0x00000201, 0x00000000]),
            (0x80000000, 0, [0x80000008, 0x00000000, 0x00000000, 0x00000000]),
            (0x80000001, 0, [0x00000000, 0x00000000, 0x00000121, 0x2C100800]),
            (0x80000002, 0, [0x65746E49, 0x2952286C, 0x6F655820, 0x2952286E]),
            (0x80000003, 0, [0x6C6F4720, 0x31362064, 0x43203033, 0x40205550]),
            (0x80000004, 0, [0x312E3220, 0x7A484730, 0x00000000, 0x00000000]),
            (0x80000005, 0, [0x00000000, 0x00000000, 0x00000000, 0x00000000]),
            (0x80000006, 0, [0x00000000, 0x00000000, 0x01006040, 0x00000000]),
            (0x80000008, 0, [0x0000302E, 0x00000000, 0x00000000, 0x00000000]),
        ],
    },
    // Intel(R) Core(TM) i7-1065G7 CPU @ 1.30GHz
    // Source: InstLatx64/InstLatx64 GenuineIntel/GenuineIntel00706E5_IceLakeY_CPUID.txt
    Fixture {
        name: "Intel Core i7-1065G7",
        microarchitecture: "icelake",
        family: 0x6,
        model: 0x7E,
        features: &[
            "sse4.2",
            "avx",
            "fma",
            "f16c",
            "avx2",
            "bmi2",
            "avx512f",
            "avx512bw",
            "avx512vl",
            "avx512vnni",
        ],
        leaves: &[
            (0x00000000, 0, [0x0000001B, 0x756E6547, 0x6C65746E, 0x49656E69]),
            (0x00000001, 0, [0x000706E5, 0x00100800, 0x7FFAFBBF, 0xBFEBFBFF]),
            (0x00000004, 0, [0x1C004121, 0x02C0003F, 0x0000003F, 0x00000000]),
            (0x00000004, 1, [0x1C004122, 0x01C0003F, 0x0000003F, 0x00000000]),
            (0x00000004, 2, [0x1C004143, 0x01C0003F, 0x000003FF, 0x00000000]),
            (0x00000004, 3, [0x1C03C163, 0x03C0003F, 0x00001FFF, 0x00000006]),
            (0x00000007, 0, [0x00000000, 0xF2BF27EF, 0x40405F4E, 0xBC000410]),
            (0x0000000B, 0, [0x00000001, 0x00000002, 0x00000100, 0x00000000]),
            (0x0000000B, 1, [0x00000004, 0x00000008, 0x00000201, 0x00000000]),
            (0x80000000, 0, [0x80000008, 0x00000000, 0x00000000, 0x00000000]),
            (0x80000001, 0, [0x00000000, 0x00000000, 0x00000121, 0x2C100000]),
            (0x80000002, 0, [0x65746E49, 0x2952286C, 0x726F4320, 0x4D542865]),
            (0x80000003, 0, [0x37692029, 0x3630312D, 0x20374735, 0x20555043]),
            (0x80000004, 0, [0x2E312040, 0x48473033, 0x0000007A, 0x00000000]),
            (0x80000005, 0, [0x00000000, 0x00000000, 0x00000000, 0x00000000]),
            (0x80000006, 0, [0x00000000, 0x00000000, 0x01006040, 0x00000000]),
            (0x80000008, 0, [0x00003027, 0x00000000, 0x00000000, 0x00000000]),
        ],
    },
    // Intel(R) Xeon(R) Gold 6330 CPU @ 2.00GHz
    // Source: InstLatx64/InstLatx64 GenuineIntel/GenuineIntel00606A6_ICX_CPUID2.txt
    Fixture {
        name: "Intel Xeon Gold 6330",
        microarchitecture: "icelake",
        family: 0x6,
        model: 0x6A,
        features: &[
            "sse4.2",
            "avx",
            "fma",
            "f16c",
            "avx2",
            "bmi2",
            "avx512f",
            "avx512bw",
            "avx512vl",
            "avx512vnni",
        ],
        leaves: &[
            (0x00000000, 0, [0x0000001B, 0x756E6547, 0x6C65746E, 0x49656E69]),
            (0x00000001, 0, [0x000606A6, 0x00800800, 0x7FFEFBFF, 0xBFEBFBFF]),
            (0x00000004, 0, [0xFC004121, 0x02C0003F, 0x0000003F, 0x00000000]),
            (0x00000004, 1, [0xFC004122, 0x01C0003F, 0x0000003F, 0x00000000]),
            (0x00000004, 2, [0xFC004143, 0x04C0003F, 0x000003FF, 0x00000000]),
            (0x00000004, 3, [0xFC1FC163, 0x02C0003F, 0x0000DFFF, 0x00000004]),
            (0x00000007, 0, [0x00000000, 0xF3BFBFFF, 0x40417F4E, 0xBC040412]),
            (0x0000000B, 0, [0x00000001, 0x00000002, 0x00000100, 0x00000000]),
            (0x0000000B, 1, [0x00000007, 0x00000038, 0x00000201, 0x00000000]),
            (0x80000000, 0, [0x80000008, 0x00000000, 0x00000000, 0x00000000]),
            (0x80000001, 0, [0x00000000, 0x00000000, 0x00000121, 0x2C100800]),
            (0x80000002, 0, [0x65746E49, 0x2952286C, 0x6F655820, 0x2952286E]),
            (0x80000003, 0, [0x6C6F4720, 0x33362064, 0x43203033, 0x40205550]),
            (0x80000004, 0, [0x302E3220, 0x7A484730, 0x00000000, 0x00000000]),
            (0x80000005, 0, [0x00000000, 0x00000000, 0x00000000, 0x00000000]),
            (0x80000006, 0, [0x00000000, 0x00000000, 0x01006040, 0x00000000]),
            (0x80000008, 0, [0x0000392E, 0x00000200, 0x00000000, 0x00000000]),
        ],
    },
    // 12th Gen Intel(R) Core(TM) i9-12900K
    // Source: InstLatx64/InstLatx64 GenuineIntel/GenuineIntel0090672_AlderLake_01_LC_BC_CPUID.txt
    // Logical CPU #0 is a P-core (Golden Cove); E-cores enabled, so AVX-512 is off.
    Fixture {
        name: "Intel Core i9-12900K",
        microarchitecture: "alderlake",
        family: 0x6,
        model: 0x97,
        features: &["sse4.2", "avx", "fma", "f16c", "avx2", "bmi2", "avx-vnni"],
        leaves: &[
            (0x00000000, 0, [0x00000020, 0x756E6547, 0x6C65746E, 0x49656E69]),
            (0x00000001, 0, [0x00090672, 0x00800800, 0x7FFAFBFF, 0xBFEBFBFF]),
            (0x00000004, 0, [0xFC004121, 0x02C0003F, 0x0000003F, 0x00000000]),
            (0x00000004, 1, [0xFC004122, 0x01C0003F, 0x0000003F, 0x00000000]),
            (0x00000004, 2, [0xFC01C143, 0x0240003F, 0x000007FF, 0x00000000]),
            (0x00000004, 3, [0xFC1FC163, 0x02C0003F, 0x00009FFF, 0x00000004]),
            (0x00000007, 0, [0x00000001, 0x239CA7EB, 0x98C027AC, 0xFC1CC410]),
            (0x00000007, 1, [0x00400810, 0x00000000, 0x00000000, 0x00000000]),
            (0x0000000B, 0, [0x00000001, 0x00000002, 0x00000100, 0x00000000]),
            (0x0000000B, 1, [0x00000007, 0x00000018, 0x00000201, 0x00000000]),
            (0x0000001F, 0, [0x00000001, 0x00000002, 0x00000100, 0x00000000]),
            (0x0000001F, 1, [0x00000007, 0x00000018, 0x00000201, 0x00000000]),
            (0x80000000, 0, [0x80000008, 0x00000000, 0x00000000, 0x00000000]),
            (0x80000001, 0, [0x00000000, 0x00000000, 0x00000121, 0x2C100000]),
            (0x80000002, 0, [0x68743231, 0x6E654720, 0x746E4920, 0x52286C65]),
            (0x80000003, 0, [0x6F432029, 0x54286572, 0x6920294D, 0x32312D39]),
            (0x80000004, 0, [0x4B303039, 0x00000000, 0x00000000, 0x00000000]),
            (0x80000005, 0, [0x00000000, 0x00000000, 0x00000000, 0x00000000]),
            (0x80000006, 0, [0x00000000, 0x00000000, 0x05007040, 0x00000000]),
            (0x80000008, 0, [0x0000302E, 0x00000000, 0x00000000, 0x00000000]),
        ],
    },
    // 13th Gen Intel(R) Core(TM) i9-13900K
    // Source: InstLatx64/InstLatx64 GenuineIntel/GenuineIntel00B0671_RaptorLake_01_CPUID.txt
    // Raptor Lake; logical CPU #0 is a P-core (Raptor Cove).
    Fixture {
        name: "Intel Core i9-13900K",
        microarchitecture: "alderlake",
        family: 0x6,
        model: 0xB7,
        features: &["sse4.2", "avx", "fma", "f16c", "avx2", "bmi2", "avx-vnni"],
        leaves: &[
            (0x00000000, 0, [0x00000020, 0x756E6547, 0x6C65746E, 0x49656E69]),
            (0x00000001, 0, [0x000B0671, 0x00800800, 0x7FFAFBFF, 0xBFEBFBFF]),
            (0x00000004, 0, [0xFC004121, 0x02C0003F, 0x0000003F, 0x00000000]),
            (0x00000004, 1, [0xFC004122, 0x01C0003F, 0x0000003F, 0x00000000]),
            (0x00000004, 2, [0xFC01C143, 0x03C0003F, 0x000007FF, 0x00000000]),
            (0x00000004, 3, [0xFC1FC163, 0x02C0003F, 0x0000BFFF, 0x00000004]),
            (0x00000007, 0, [0x00000002, 0x239C27EB, 0x98C027AC, 0xFC1CC410]),
            (0x00000007, 1, [0x00400810, 0x00000000, 0x00000000, 0x00000000]),
            (0x0000000B, 0, [0x00000001, 0x00000002, 0x00000100, 0x00000000]),
            (0x0000000B, 1, [0x00000007, 0x00000020, 0x00000201, 0x00000000]),
            (0x0000001F, 0, [0x00000001, 0x00000002, 0x00000100, 0x00000000]),
            (0x0000001F, 1, [0x00000007, 0x00000020, 0x00000201, 0x00000000]),
            (0x80000000, 0, [0x80000008, 0x00000000, 0x00000000, 0x00000000]),
            (0x80000001, 0, [0x00000000, 0x00000000, 0x00000121, 0x2C100000]),
            (0x80000002, 0, [0x68743331, 0x6E654720, 0x746E4920, 0x52286C65]),
            (0x80000003, 0, [0x6F432029, 0x54286572, 0x6920294D, 0x33312D39]),
            (0x80000004, 0, [0x4B303039, 0x00000000, 0x00000000, 0x00000000]),
            (0x80000005, 0, [0x00000000, 0x00000000, 0x00000000, 0x00000000]),
            (0x80000006, 0, [0x00000000, 0x00000000, 0x08007040, 0x00000000]),
            (0x80000008, 0, [0x0000302E, 0x00000000, 0x00000000, 0x00000000]),
        ],
    },
    // Intel(R) Xeon(R) w9-3475X
    // Source: InstLatx64/InstLatx64 GenuineIntel/GenuineIntel00806F8_SapphireRapids_06_CPUID.txt
    // Workstation Sapphire Rapids (same core and CPUID model as Xeon Platinum 8480+).
    Fixture {
        name: "Intel Xeon w9-3475X",
        microarchitecture: "sapphirerapids",
        family: 0x6,
        model: 0x8F,
        features: &[
            "sse4.2",
            "avx",
            "fma",
            "f16c",
            "avx2",
            "bmi2",
            "avx512f",
            "avx512bw",
            "avx512vl",
            "avx512vnni",
            "avx-vnni",
            "avx512bf16",
            "amx-tile",
        ],
        leaves: &[
            (0x00000000, 0, [0x00000020, 0x756E6547, 0x6C65746E, 0x49656E69]),
            (0x00000001, 0, [0x000806F8, 0x00800800, 0x7FFEFBFF, 0xBFEBFBFF]),
            (0x00000004, 0, [0xFC004121, 0x02C0003F, 0x0000003F, 0x00000000]),
            (0x00000004, 1, [0xFC004122, 0x01C0003F, 0x0000003F, 0x00000000]),
            (0x00000004, 2, [0xFC004143, 0x03C0003F, 0x000007FF, 0x00000000]),
            (0x00000004, 3, [0xFC1FC163, 0x0380003F, 0x00015FFF, 0x00000004]),
            (0x00000007, 0, [0x00000002, 0xF3BFBFFB, 0xBB417FEE, 0xFFDD4430]),
            (0x00000007, 1, [0x00001C30, 0x00000000, 0x00000000, 0x00000000]),
            (0x0000000B, 0, [0x00000001, 0x00000002, 0x00000100, 0x00000000]),
            (0x0000000B, 1, [0x00000007, 0x00000048, 0x00000201, 0x00000000]),
            (0x0000001F, 0, [0x00000001, 0x00000002, 0x00000100, 0x00000000]),
            (0x0000001F, 1, [0x00000007, 0x00000048, 0x00000201, 0x00000000]),
            (0x80000000, 0, [0x80000008, 0x00000000, 0x00000000, 0x00000000]),
            (0x80000001, 0, [0x00000000, 0x00000000, 0x00000121, 0x2C100000]),
            (0x80000002, 0, [0x65746E49, 0x2952286C, 0x6F655820, 0x2952286E]),
            (0x80000003, 0, [0x2D397720, 0x35373433, 0x00000058, 0x00000000]),
            (0x80000004, 0, [0x00000000, 0x00000000, 0x00000000, 0x00000000]),
            (0x80000005, 0, [0x00000000, 0x00000000, 0x00000000, 0x00000000]),
            (0x80000006, 0, [0x00000000, 0x00000000, 0x08007040, 0x00000000]),
            (0x80000008, 0, [0x0000392E, 0x00000200, 0x00000000, 0x00000000]),
        ],
    },
    // Intel(R) Core(TM) i7-2600 CPU @ 3.40GHz
    // Source: InstLatx64/InstLatx64 GenuineIntel/GenuineIntel00206A7_SandyBridge2_CPUID.txt
    // Sandy Bridge: AVX but no AVX2/FMA/F16C.
    // This dump has no [SL nn] tags on leaf 4/7/0xB lines; subleaf numbers follow
    // the order of the lines (the tool lists subleaves 0, 1, 2, ... in turn).
    Fixture {
        name: "Intel Core i7-2600",
        microarchitecture: "generic",
        family: 0x6,
        model: 0x2A,
        features: &["sse4.2", "avx"],
        leaves: &[
            (0x00000000, 0, [0x0000000D, 0x756E6547, 0x6C65746E, 0x49656E69]),
            (0x00000001, 0, [0x000206A7, 0x00100800, 0x1FBAE3FF, 0xBFEBFBFF]),
            (0x00000004, 0, [0x1C004121, 0x01C0003F, 0x0000003F, 0x00000000]),
            (0x00000004, 1, [0x1C004122, 0x01C0003F, 0x0000003F, 0x00000000]),
            (0x00000004, 2, [0x1C004143, 0x01C0003F, 0x000001FF, 0x00000000]),
            (0x00000004, 3, [0x1C03C163, 0x03C0003F, 0x00001FFF, 0x00000006]),
            (0x00000007, 0, [0x00000000, 0x00000000, 0x00000000, 0x00000000]),
            (0x0000000B, 0, [0x00000001, 0x00000002, 0x00000100, 0x00000000]),
            (0x0000000B, 1, [0x00000004, 0x00000008, 0x00000201, 0x00000000]),
            (0x80000000, 0, [0x80000008, 0x00000000, 0x00000000, 0x00000000]),
            (0x80000001, 0, [0x00000000, 0x00000000, 0x00000001, 0x28100000]),
            (0x80000002, 0, [0x20202020, 0x20202020, 0x65746E49, 0x2952286C]),
            (0x80000003, 0, [0x726F4320, 0x4D542865, 0x37692029, 0x3036322D]),
            (0x80000004, 0, [0x50432030, 0x20402055, 0x30342E33, 0x007A4847]),
            (0x80000005, 0, [0x00000000, 0x00000000, 0x00000000, 0x00000000]),
            (0x80000006, 0, [0x00000000, 0x00000000, 0x01006040, 0x00000000]),
            (0x80000008, 0, [0x00003024, 0x00000000, 0x00000000, 0x00000000]),
        ],
    },
    // Intel(R) Celeron(R) CPU J3455 @ 1.50GHz
    // Source: InstLatx64/InstLatx64 GenuineIntel/GenuineIntel00506C9_Goldmont2_CPUID.txt
    // Goldmont (Apollo Lake) Atom-class core: no AVX at all. Only 3 cache levels in leaf 4 (no L3).
    Fixture {
        name: "Intel Celeron J3455",
        microarchitecture: "generic",
        family: 0x6,
        model: 0x5C,
        features: &["sse4.2"],
        leaves: &[
            (0x00000000, 0, [0x00000015, 0x756E6547, 0x6C65746E, 0x49656E69]),
            (0x00000001, 0, [0x000506C9, 0x00200800, 0x4FF8EBBF, 0xBFEBFBFF]),
            (0x00000004, 0, [0x3C000121, 0x0140003F, 0x0000003F, 0x00000001]),
            (0x00000004, 1, [0x3C000122, 0x01C0003F, 0x0000003F, 0x00000001]),
            (0x00000004, 2, [0x3C00C143, 0x03C0003F, 0x000003FF, 0x00000001]),
            (0x00000007, 0, [0x00000000, 0x2294E283, 0x00000000, 0x00000000]),
            (0x0000000B, 0, [0x00000001, 0x00000001, 0x00000100, 0x00000000]),
            (0x0000000B, 1, [0x00000005, 0x00000004, 0x00000201, 0x00000000]),
            (0x80000000, 0, [0x80000008, 0x00000000, 0x00000000, 0x00000000]),
            (0x80000001, 0, [0x00000000, 0x00000000, 0x00000101, 0x2C100000]),
            (0x80000002, 0, [0x65746E49, 0x2952286C, 0x6C654320, 0x6E6F7265]),
            (0x80000003, 0, [0x20295228, 0x20555043, 0x3534334A, 0x20402035]),
            (0x80000004, 0, [0x30352E31, 0x007A4847, 0x00000000, 0x00000000]),
            (0x80000005, 0, [0x00000000, 0x00000000, 0x00000000, 0x00000000]),
            (0x80000006, 0, [0x00000000, 0x00000000, 0x04008040, 0x00000000]),
            (0x80000008, 0, [0x00003027, 0x00000000, 0x00000000, 0x00000000]),
        ],
    },
];
