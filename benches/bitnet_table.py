"""Runs the direct llama-cpp-2 loop (tabagent-bench --direct-child, the host's llama.cpp and CPU
kernels) over one model shape in several tensor types, interleaved, and writes the medians as a
section of a Markdown file.

Usage: bitnet_table.py --bench BIN --reps N --tokens N --threads N --write FILE MODEL...
"""

import argparse
import json
import os
import statistics
import subprocess

from md_section import write_section

SECTION = "## BitNet ternary types against standard ones"


def tensor_bytes(path):
    """Bytes of the layers' matrices and of the embedding (the tied output head), and parameters."""
    from gguf import GGUFReader

    r = GGUFReader(path)
    layers = head = params = layer_params = 0
    for t in r.tensors:
        params += int(t.n_elements)
        if t.name.startswith("blk.") and len(t.shape) == 2 and t.shape[1] > 1:
            layers += int(t.n_bytes)
            layer_params += int(t.n_elements)
        elif t.name == "token_embd.weight":
            head = int(t.n_bytes)
    return layers, head, params, layer_params


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--write")
    ap.add_argument("--machine", default="")
    ap.add_argument("models", nargs="+")
    args = ap.parse_args()
    runs = {m: [] for m in args.models}
    variant = ""
    for _ in range(args.reps):
        for m in args.models:
            out = subprocess.run(
                [args.bench, "--direct-child", "--model", m, "--threads", str(args.threads), "--tokens", str(args.tokens)],
                check=True, capture_output=True, text=True,
            )
            v = json.loads(out.stdout)
            variant = v.get("variant", variant)
            runs[m].append(v)
    rows = []
    shape = {}
    for m in args.models:
        ty = os.path.basename(m).rsplit("-", 1)[-1].removesuffix(".gguf")
        layers, head, params, layer_params = tensor_bytes(m)
        shape = {"params": params, "layer_params": layer_params}
        rows.append((ty, os.path.getsize(m), statistics.median(r["prompt_tps"] for r in runs[m]),
                     statistics.median(r["decode_tps"] for r in runs[m]), layers, head))
    by = {r[0]: r for r in rows}
    ref = by.get("Q4_0")
    out = [SECTION, ""]
    out.append(
        f"Written by `scripts/bench-bitnet.sh`. Machine: {args.machine}; CPU kernels `{variant}` (picked by the host), "
        f"{args.threads} threads. One model shape — architecture `bitnet`, `BitNet/fixtures/make_bitnet.py --shape bench`: "
        f"{shape['params'] / 1e6:.0f}M parameters, {shape['layer_params'] / 1e6:.0f}M of them in the layers' matrices, "
        f"SmolLM2's 49152-token vocabulary — with the same ternary weights in each type; the embedding, which is also "
        f"the output head, is Q8_0 in all. "
        f"The host's direct llama-cpp-2 loop, prompt of the benchmark above, {args.tokens} generated tokens, median of "
        f"{args.reps} interleaved repetitions."
    )
    out.append("")
    out.append("| layer matrices | their MiB | file MiB | prompt tok/s | decode tok/s | prompt × Q4_0 | decode × Q4_0 |")
    out.append("|---|---:|---:|---:|---:|---:|---:|")
    for ty, size, p, d, layers, _ in rows:
        rp = f"{p / ref[2]:.2f}" if ref else "–"
        rd = f"{d / ref[3]:.2f}" if ref else "–"
        out.append(f"| `{ty}` | {layers / (1 << 20):.0f} | {size / (1 << 20):.0f} | {p:.1f} | {d:.1f} | {rp} | {rd} |")
    out.append("")
    if ref and "TQ2_0" in by and "TQ1_0" in by:
        best = max(("TQ1_0", "TQ2_0"), key=lambda t: by[t][3])
        out.append(
            f"Against `Q4_0`, the faster ternary type (`{best}`) decodes at {by[best][3] / ref[3]:.2f}× and reads prompts at "
            f"{by[best][2] / ref[2]:.2f}× on this machine; against `F16`, at {by[best][3] / by['F16'][3]:.2f}× and "
            f"{by[best][2] / by['F16'][2]:.2f}×." if "F16" in by else ""
        )
        out.append("")
        if "F16" in by:
            vs_f16, vs_q4 = by[best][3] / by["F16"][3], by[best][3] / ref[3]
            holds = "holds" if vs_f16 >= 2 else "does not hold"
            out.append(
                f"The claim that ternary models decode \"2–6× faster\": it {holds} against F16 weights "
                f"({vs_f16:.2f}×), and against the 4-bit weights most GGUF models ship with the gain is "
                f"{vs_q4:.2f}×; prompt reading runs at {by[best][2] / ref[2]:.2f}× Q4_0's. Decoding reads "
                f"every weight once per token, and the Q8_0 output head ({by[best][5] / (1 << 20):.0f} MiB) is "
                f"read in every variant — {by[best][5] / by[best][4]:.1f}× the {best} layers' "
                f"{by[best][4] / (1 << 20):.0f} MiB — so these whole-model ratios understate what the ternary "
                f"kernels gain on the layers alone; a model with a larger share of its weights in its layers "
                f"gains more."
            )
            out.append("")
    md = "\n".join(out)
    print(md)
    if args.write:
        write_section(args.write, SECTION, md)


if __name__ == "__main__":
    main()
