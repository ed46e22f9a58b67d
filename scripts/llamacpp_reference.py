#!/usr/bin/env python3
"""Reference speed of llama.cpp (through llama-cpp-python) on a GGUF model.

Measures what `LocalBrain::measure` measures on the same file: one prefill of a
prompt of N tokens, then M greedy decode steps of one token each, after a short
warm-up. Prints one JSON line:

    {"prefill_tokens_per_s": ..., "decode_tokens_per_s": ..., "engine": "llama.cpp <version>"}

Exit codes: 0 ok, 2 bad arguments, 3 llama_cpp is not importable, 4 the run failed.

Install llama-cpp-python in a virtualenv (it compiles llama.cpp, ~10 min on 2 cores):

    python3 -m venv ~/.cache/warroom/llamacpp-venv
    ~/.cache/warroom/llamacpp-venv/bin/pip install 'llama-cpp-python[server]==0.3.16'
    ~/.cache/warroom/llamacpp-venv/bin/python scripts/llamacpp_reference.py --gguf MODEL.gguf
"""

import argparse
import json
import os
import sys
import time

# Ordinary English, the same kind of text the Rust benchmark feeds.
TEXT = (
    "The quarterly review found that the supplier shipped the sensor modules two weeks late, "
    "which pushed the firmware release and raised support tickets from customers in three "
    "regions. Finance expects the delay to cost about four percent of the margin unless "
    "operations finds a second source before the next build. "
)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gguf", required=True, help="path to the .gguf model file")
    p.add_argument("--prompt-tokens", type=int, default=512)
    p.add_argument("--decode-tokens", type=int, default=128)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = p.parse_args()
    if args.prompt_tokens < 1 or args.decode_tokens < 1 or args.threads < 1:
        p.error("--prompt-tokens, --decode-tokens and --threads must be positive")
    if not os.path.isfile(args.gguf):
        p.error(f"no such file: {args.gguf}")
    return args


def synthetic_prompt(llm, n):
    unit = llm.tokenize(TEXT.encode(), add_bos=False, special=False)
    return [unit[i % len(unit)] for i in range(n)]


def greedy(llm, n_past, steps):
    """Decodes `steps` tokens greedily after `n_past` evaluated tokens."""
    import numpy as np

    for _ in range(steps):
        logits = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),))
        token = int(np.argmax(logits))
        llm.eval([token])
        n_past += 1
    return n_past


def main():
    args = parse_args()
    try:
        import llama_cpp
        from llama_cpp import Llama
    except ImportError as e:
        print(
            f"llama_cpp is not importable ({e}). Install it with "
            "`pip install llama-cpp-python` (compiles llama.cpp; needs cmake and a C++ compiler), "
            "or run this script with the Python of the virtualenv that has it.",
            file=sys.stderr,
        )
        return 3

    n_ctx = args.prompt_tokens + args.decode_tokens + 16
    try:
        llm = Llama(
            model_path=args.gguf,
            n_ctx=n_ctx,
            n_batch=max(args.prompt_tokens, 32),
            n_ubatch=max(args.prompt_tokens, 32),
            n_threads=args.threads,
            n_threads_batch=args.threads,
            logits_all=False,
            verbose=False,
        )
        prompt = synthetic_prompt(llm, args.prompt_tokens)

        # Warm-up, as the Rust side does.
        llm.reset()
        llm.eval(prompt[:16])
        greedy(llm, 16, 4)

        llm.reset()  # the next eval drops the cached positions
        started = time.perf_counter()
        llm.eval(prompt)
        prefill = time.perf_counter() - started
        started = time.perf_counter()
        greedy(llm, len(prompt), args.decode_tokens)
        decode = time.perf_counter() - started
    except Exception as e:  # noqa: BLE001 - report any engine failure plainly
        print(f"llama.cpp run failed: {e}", file=sys.stderr)
        return 4

    print(
        json.dumps(
            {
                "prefill_tokens_per_s": round(args.prompt_tokens / prefill, 1),
                "decode_tokens_per_s": round(args.decode_tokens / decode, 1),
                "engine": f"llama.cpp {getattr(llama_cpp, '__version__', 'unknown')}",
                "threads": args.threads,
                "prompt_tokens": args.prompt_tokens,
                "decode_tokens": args.decode_tokens,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
