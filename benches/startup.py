"""Start-up: whole-process time to the first generated token of one `tabagent-host run` of the
chat example (one token, the compiled component and the load probe's verdict already cached by
an earlier run) against llama.cpp's `llama-completion -n 1` on the same model, prompt and
threads, alternating, with the peak resident memory of both. Also the same run with the probe's
verdict not yet known (a new file to the host) and with `--probe never`. Writes its section of a
Markdown file when asked.

Usage: startup.py --host-bin B --chat W --llama-completion L --model M --threads T
                  [--reps 7] [--write docs/BENCHMARKS.md --machine TEXT]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time

from md_section import write_section

SECTION = "## Start-up: one run to its first token"
PROMPT = "Hi"
# SmolLM2's chat template around the prompt (with the default system message it adds): the
# text the chat example's chat prompt renders, so that llama-completion reads the same tokens.
TEMPLATED = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    f"<|im_start|>user\n{PROMPT}<|im_end|>\n<|im_start|>assistant\n"
)


def timed(cmd, env=None):
    """Wall seconds and peak resident MiB of one process run to its end."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({p.returncode}): {err[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser()
    for a in ["--host-bin", "--chat", "--llama-completion", "--model"]:
        ap.add_argument(a, required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--write")
    ap.add_argument("--machine", default="")
    args = ap.parse_args()
    cache = tempfile.mkdtemp(prefix="tabagent-startup-")
    env = dict(os.environ, TABAGENT_CACHE_DIR=cache, TABAGENT_LOG="error")

    def ours(probe="auto", cache_env=env):
        return timed([args.host_bin, "--probe", probe, "run", args.chat, "--model", f"smollm2={args.model}",
                      "--", "--temperature", "0", "--max-tokens", "1", PROMPT], cache_env)

    def fresh():
        # A cache folder of its own: the probe's verdict is not known yet.
        d = tempfile.mkdtemp(prefix="tabagent-startup-fresh-")
        try:
            return ours("auto", dict(env, TABAGENT_CACHE_DIR=d))
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def theirs():
        return timed([args.llama_completion, "-m", args.model, "-p", TEMPLATED, "-n", "1", "-no-cnv",
                      "--no-warmup", "-t", str(args.threads), "--temp", "0"])

    runs = {"ours": ours, "fresh": fresh, "never": lambda: ours("never"), "llama": theirs}
    for f in runs.values():  # warm-up: page cache, compiled component, the verdict
        f()
    got = {k: [] for k in runs}
    for _ in range(args.reps):
        for k, f in runs.items():
            got[k].append(f())
    shutil.rmtree(cache, ignore_errors=True)
    med = {k: (statistics.median(w for w, _ in v), statistics.median(m for _, m in v)) for k, v in got.items()}
    ratio = med["ours"][0] / med["llama"][0]
    rows = [
        ("`tabagent-host run` (verdict kept from an earlier run)", "ours"),
        ("`tabagent-host run`, file new to the host (probe process)", "fresh"),
        ("`tabagent-host run --probe never`", "never"),
        ("llama.cpp `llama-completion -n 1 -no-cnv --no-warmup`", "llama"),
    ]
    out = [SECTION, ""]
    out.append(
        f"Written by `scripts/bench.sh` (`benches/startup.py`). Machine: {args.machine}. Model: SmolLM2-135M-Instruct "
        f"Q4_1, {args.threads} threads. Whole-process wall time from start to exit of a run that generates one token "
        f"(so the model's load, the prompt's decode and the first token), and the process's peak resident memory; "
        f"median of {args.reps} alternating repetitions after one warm-up of each. Ours: the chat example "
        f"(`--temperature 0 --max-tokens 1 {PROMPT}`), its compiled component in wasmtime's cache; theirs: the same "
        f"prompt in SmolLM2's chat template as text."
    )
    out.append("")
    out.append("| run | wall ms | × llama-completion | peak RSS MiB |")
    out.append("|---|---:|---:|---:|")
    for name, k in rows:
        w, m = med[k]
        out.append(f"| {name} | {w * 1000:.0f} | {w / med['llama'][0]:.2f}× | {m:.0f} |")
    out.append("")
    met = "met" if ratio <= 1.0 else "**not met**"
    out.append(f"Target: a second run's time ≤ 1.0× llama-completion's: {ratio:.2f}× — {met}. "
               f"The probe process a new file costs: {1000 * (med['fresh'][0] - med['ours'][0]):.0f} ms.")
    out.append("")
    md = "\n".join(out)
    print(md)
    if args.write:
        write_section(args.write, SECTION, md)


if __name__ == "__main__":
    main()
