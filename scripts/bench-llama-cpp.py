"""Decode speed of llama.cpp on our model file, for docs/BENCHMARKS.md (a measurement).

The prompt is evaluated once, then one token at a time (greedy, the argmax of the last
logits), as `attnlab generate` does; time to first token and the mean per-token time are
printed for 1 and 2 threads. Needs llama-cpp-python built for this CPU:
    python3 -m venv /tmp/llamavenv
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
        -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF" \
        /tmp/llamavenv/bin/pip install llama-cpp-python
(Not GGML_NATIVE=ON: on our virtual machines the CPU reports AVX-512/AMX but using them faults
— a general protection fault in libggml-cpu on the first eval — so AVX2/FMA are named instead.)
    /tmp/llamavenv/bin/python scripts/bench-llama-cpp.py [model.gguf]
Compare with `RAYON_NUM_THREADS=1 ./target/release/attnlab generate --json --ignore-eos
--max-tokens 32 --text "…"` (its `timings_ms`).
"""
import statistics
import sys
import time

import numpy as np
from llama_cpp import Llama

MODEL = sys.argv[1] if len(sys.argv) > 1 else "models/SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPTS = ["The capital of France is", " ".join(["The quick brown fox jumps over the lazy dog while the cat sleeps."] * 8)]
N = 32

print("| prompt tokens | threads | time to first token (ms) | per token (ms) | tokens/s |")
print("|---|---|---|---|---|")
for threads in (1, 2):
    llm = Llama(model_path=MODEL, n_ctx=1024, n_threads=threads, n_threads_batch=threads, logits_all=False, verbose=False)
    for text in PROMPTS:
        ttft, per = [], []
        for _ in range(3):
            llm.reset()
            ids = llm.tokenize(text.encode(), add_bos=True)
            t0 = time.perf_counter()
            llm.eval(ids)
            ttft.append((time.perf_counter() - t0) * 1e3)
            steps = []
            for _ in range(N):
                tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
                t0 = time.perf_counter()
                llm.eval([tok])
                steps.append((time.perf_counter() - t0) * 1e3)
            per.append(statistics.mean(steps))
        t, p = statistics.median(ttft), statistics.median(per)
        print(f"| {len(ids)} | {threads} | {t:.0f} | {p:.1f} | {1e3 / p:.1f} |")
