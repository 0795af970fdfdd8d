//! A session's sampler chain, built from its resolved sampling parameters.

use crate::engine::SamplingParams;
use llama_cpp_2::sampling::LlamaSampler;

/// penalties → top-k → top-p → min-p → temperature → dist, or greedy at temperature 0.
pub(super) fn build_sampler(params: &SamplingParams, n_vocab: i32) -> LlamaSampler {
    let mut chain = Vec::new();
    if params.repeat_penalty != 1.0 {
        let window = i32::try_from(params.repeat_window).unwrap_or(i32::MAX);
        chain.push(LlamaSampler::penalties(n_vocab, window, params.repeat_penalty, 0.0, 0.0));
    }
    if params.temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
    } else {
        if params.top_k > 0 {
            chain.push(LlamaSampler::top_k(i32::try_from(params.top_k).unwrap_or(i32::MAX)));
        }
        if params.top_p < 1.0 {
            chain.push(LlamaSampler::top_p(params.top_p, 1));
        }
        if params.min_p > 0.0 {
            chain.push(LlamaSampler::min_p(params.min_p, 1));
        }
        chain.push(LlamaSampler::temp(params.temperature));
        chain.push(LlamaSampler::dist(fold_seed(params.seed)));
    }
    LlamaSampler::chain_simple(chain)
}

/// llama.cpp seeds are 32-bit and `u32::MAX` means "random": fold a 64-bit seed into the rest.
pub fn fold_seed(seed: u64) -> u32 {
    let folded = (seed ^ (seed >> 32)) as u32;
    if folded == u32::MAX { u32::MAX - 1 } else { folded }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_never_fold_to_random() {
        assert_eq!(fold_seed(42), 42);
        assert_ne!(fold_seed(u64::from(u32::MAX)), u32::MAX);
        assert_ne!(fold_seed(1 << 32), fold_seed(2 << 32));
    }
}
