"""Many guests, one model: aggregate decode throughput and time to first token with 1, 2, 4 and 8
concurrent streams, `tabagent-host serve` (each request a guest of its own, all batched into the
model's one context) against llama.cpp's `llama-server -np N --kv-unified`, same model, prompts,
threads and requests, in one run. Also the host's resident memory after the 1-stream and the
8-stream rounds. Writes its section of a Markdown file when asked, with which targets are met.

Usage: batch_load.py --host-bin B --guest W --llama-server L --model M --threads T
                     [--rounds 3] [--max-tokens 128] [--write docs/BENCHMARKS.md --machine TEXT]
"""

import argparse
import json
import os
import statistics
import subprocess
import threading
import time

import httpx
from local_servers import free_port, wait_health
from md_section import write_section
from serve_load import one, rss_mib

SECTION = "## Many guests on one model: continuous batching"
# Two prompt sets: replies that run to `max_tokens` (decoding is what is timed), and one-sentence
# replies of about 20 tokens (prompt reading, admission and the ends of streams weigh more).
PROMPTS = {
    "long": "Tell a long story about topic number {}.",
    "short": "Write one sentence about topic number {}.",
}
COUNTS = [1, 2, 4, 8]
NOTE = (
    "Why the two sets differ: llama-server reads a round's prompts together before any stream "
    "shows a token, so its decode window holds only decoding (its time to first token is the "
    "longer one); the host starts each stream as soon as its request is in and reads the later "
    "prompts inside the window, and at the ends of streams llama.cpp decodes the per-sequence "
    "KV streams in one pass per run of neighbouring sequence ids, where llama-server's unified "
    "cache takes one. Over ~20 tokens a reply these costs weigh; over 128 they are a small "
    "share, and the host's batches decode faster than llama-server's. Whole-request throughput, which "
    "counts everything, is the fairer figure for short replies. The host keeps the per-sequence "
    "cache because with a unified one greedy texts part from their solo runs."
)


def streams(url, n, rounds, max_tokens, prompt, counts_end_token=False):
    """`rounds` times, `n` requests started together (one per stream)."""
    client = httpx.Client(timeout=300, headers={"Connection": "close"})
    decode, whole, ttfts, total = [], [], [], 0
    for k in range(rounds):
        results, lock = [], threading.Lock()

        def stream(w):
            t0 = time.perf_counter()
            last = []
            latency, ttft, tokens = one(client, url, k * n + w, max_tokens, counts_end_token, last, prompt)
            with lock:
                results.append((t0, t0 + ttft, t0 + latency, tokens, t0 + last[0]))

        threads = [threading.Thread(target=stream, args=(w,)) for w in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if len(results) != n:
            raise SystemExit(f"{url}: {n - len(results)} requests failed")
        first = min(r[1] for r in results)
        last_token = max(r[4] for r in results)
        end = max(r[2] for r in results)
        start = min(r[0] for r in results)
        decode.append(sum(r[3] - 1 for r in results) / (last_token - first))
        whole.append(sum(r[3] for r in results) / (end - start))
        ttfts.extend((r[1] - r[0]) * 1000 for r in results)
        total += sum(r[3] for r in results)
    return {
        "tok_s": statistics.median(decode),
        "whole_tok_s": statistics.median(whole),
        "ttft_p50_ms": statistics.median(ttfts),
        "tokens": total,
    }


def main():
    ap = argparse.ArgumentParser()
    for a in ["--host-bin", "--guest", "--llama-server", "--model"]:
        ap.add_argument(a, required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--write")
    ap.add_argument("--machine", default="")
    args = ap.parse_args()
    port = free_port()
    host = subprocess.Popen(
        [args.host_bin, "serve", args.guest, "--listen", f"127.0.0.1:{port}",
         "--model", f"smollm2={args.model}", "--max-running", "16", "--parallel", str(max(COUNTS))],
        stdout=subprocess.DEVNULL, stderr=open(os.devnull, "w"))
    ours_url = f"http://127.0.0.1:{port}"
    rows, rss = [], {}
    try:
        wait_health(ours_url)
        streams(ours_url, 1, 1, 8, PROMPTS["short"])  # warm-up
        for n in COUNTS:
            ours = {k: streams(ours_url, n, args.rounds, args.max_tokens, p) for k, p in PROMPTS.items()}
            rss[n] = rss_mib(host.pid)
            lport = free_port()
            llama = subprocess.Popen(
                [args.llama_server, "-m", args.model, "--host", "127.0.0.1", "--port", str(lport),
                 "-t", str(args.threads), "-np", str(n), "-kvu", "-c", str(4096 * n),
                 "--no-webui", "--jinja"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                lurl = f"http://127.0.0.1:{lport}"
                wait_health(lurl)
                streams(lurl, 1, 1, 8, PROMPTS["short"], True)
                theirs = {k: streams(lurl, n, args.rounds, args.max_tokens, p, True)
                          for k, p in PROMPTS.items()}
            finally:
                llama.kill()
                llama.wait()
            print(n, json.dumps({"tabagent": ours, "llama-server": theirs, "rss_mib": rss[n]}))
            rows.append((n, ours, theirs))
    finally:
        host.kill()
    md = markdown(rows, rss, args)
    print(md)
    if args.write:
        write_section(args.write, SECTION, md)


def table(rows, rss, kind):
    out = ["| streams | decode tok/s: tabagent | llama-server | ratio | whole-request tok/s: tabagent | llama-server | ratio | TTFT p50 ms: tabagent | llama-server | host RSS MiB |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n, ours, theirs in rows:
        o, t = ours[kind], theirs[kind]
        out.append(
            f"| {n} | {o['tok_s']:.1f} | {t['tok_s']:.1f} | {o['tok_s'] / t['tok_s']:.2f}× | "
            f"{o['whole_tok_s']:.1f} | {t['whole_tok_s']:.1f} | {o['whole_tok_s'] / t['whole_tok_s']:.2f}× | "
            f"{o['ttft_p50_ms']:.0f} | {t['ttft_p50_ms']:.0f} | {rss[n]:.0f} |"
        )
    return out


def markdown(rows, rss, args):
    by_n = {n: (o, t) for n, o, t in rows}
    ratio = lambda n, kind, key: by_n[n][0][kind][key] / by_n[n][1][kind][key]  # noqa: E731
    scale4 = by_n[4][0]["long"]["tok_s"] / by_n[1][0]["long"]["tok_s"]
    mem8 = rss[8] / rss[1]
    per_reply = lambda kind: by_n[1][0][kind]["tokens"] / args.rounds  # noqa: E731
    out = [SECTION, ""]
    out.append(
        f"Written by `scripts/bench.sh` (`benches/batch_load.py`). Machine: {args.machine}. Model: SmolLM2-135M-Instruct Q4_1, "
        f"{args.threads} threads on both sides. N streamed chat completions started together, "
        f"{args.rounds} rounds, median (greedy, `max_tokens` {args.max_tokens}, 25 prompts): `tabagent-host serve --parallel {max(COUNTS)}` with the "
        f"openai-server guest (every request a guest instance of its own, all batched into the model's one context) "
        f"against `llama-server -np N --kv-unified -c 4096·N` serving the same requests, in the same run. Aggregate "
        f"decode: the round's tokens after each request's first, over the time from the round's first content chunk "
        f"to its last as the client reads them, so prompt reading and per-request set-up are left out (a stream "
        f"that starts later counts against its server); tokens are counted as the host counts them (llama-server's "
        f"usage also counts the end-of-generation token, taken off here). Whole-request: all the round's tokens over "
        f"its wall time. Time to first token: the median over all requests."
    )
    out.append("")
    out.append(f"Long replies (\"{PROMPTS['long']}\": {per_reply('long'):.0f} tokens a reply on average, `max_tokens` is {args.max_tokens}):")
    out.append("")
    out += table(rows, rss, "long")
    out.append("")
    out.append(f"Short replies (\"{PROMPTS['short']}\": {per_reply('short'):.0f} tokens a reply on average):")
    out.append("")
    out += table(rows, rss, "short")
    out.append("")
    met = lambda ok: "met" if ok else "**not met**"  # noqa: E731
    agg4, whole4 = ratio(4, "long", "tok_s"), ratio(4, "long", "whole_tok_s")
    short4 = ratio(4, "short", "tok_s")
    out.append("Targets:")
    out.append(f"- aggregate decode with 4 streams ≥ 1.0× llama-server's: long replies {agg4:.2f}× — {met(agg4 >= 1.0)} "
               f"(whole requests: {whole4:.2f}×); short replies {short4:.2f}× — {met(short4 >= 1.0)};")
    out.append(f"- aggregate decode with 4 streams > our 1-stream figure: {scale4:.2f}× — {met(scale4 > 1.0)};")
    out.append(f"- resident memory with 8 guests ≤ 1.3× one guest: {mem8:.2f}× ({rss[8]:.0f} / {rss[1]:.0f} MiB) — {met(mem8 <= 1.3)}.")
    out.append("")
    out.append(NOTE)
    out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    main()
