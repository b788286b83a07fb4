"""ELECTRA pretraining benchmark: step time vs a naive baseline, data pipeline, memory, FLOPs/MFU.

    make bench                                   # CPU: ELECTRA-Small, batch 8 × 128
    python benchmarks/bench.py --device cuda --precision bf16 --sizes small base --batch 128

Everything is measured in one process, one run; A/B timings are interleaved after warm-up and
reported as medians and ratios (no timed assertions). See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from electra_lightning.data.datamodule import (  # noqa: E402
    PretrainingStream,
    load_tokenizer_info,
    resolve_sources,
)
from electra_lightning.data.stream import attention_mask_of  # noqa: E402
from electra_lightning.model.electra import (  # noqa: E402
    OFFICIAL_SIZES,
    build_pretraining_model,
    training_flops_per_token,
)
from electra_lightning.model.masking import MaskingConfig, mask_tokens  # noqa: E402
from electra_lightning.model.optim import ADAMW_DEFAULTS, AdamW, param_groups  # noqa: E402
from electra_lightning.train.callbacks import detect_peak_flops  # noqa: E402
from electra_lightning.train.hardware import BF16_ENV, bf16_is_emulated, no_bf16_reason  # noqa: E402

SHARED_TEXT = REPO.parent / "shared" / "data" / "nltk_english_text"


def corpus_dir(tmp: Path) -> Path:
    """The shared English corpus if present, else the demo corpus from Python's docs."""
    if SHARED_TEXT.is_dir():
        return SHARED_TEXT
    out = tmp / "demo"
    subprocess.run(
        [sys.executable, str(REPO / "data/make_demo_corpus.py"), "--output_dir", str(out)],
        check=True,
        capture_output=True,
    )
    return out


def tokenizer_for(corpus: Path, tmp: Path) -> Path:
    from electra_lightning.data.tokenizer import train_tokenizer

    out = tmp / "tokenizer-30522"
    if not (out / "tokenizer.json").exists():
        train_tokenizer(str(corpus), str(out), vocab_size=30522)
    return out


# -- step time: ours vs naive ---------------------------------------------------------------------


def naive_step(gen, disc, opt, batch, mask_id):
    """The straightforward way: full-sequence generator logits, HF losses, sampling everywhere."""
    ids, attention = batch["input_ids"], attention_mask_of(batch)
    labels = torch.full_like(ids, -100)
    labels.scatter_(1, batch["masked_positions"], batch["masked_ids"])
    labels[~batch["masked_weights_dense"]] = -100
    gen_out = gen(input_ids=batch["generator_input_ids"], attention_mask=attention, labels=labels)
    probs = F.softmax(gen_out.logits.detach().float(), dim=-1)
    sampled = torch.multinomial(probs.view(-1, probs.size(-1)), 1).view_as(ids)
    disc_input = torch.where(labels != -100, sampled, ids)
    disc_labels = (disc_input != ids).long()
    disc_out = disc(input_ids=disc_input, attention_mask=attention, labels=disc_labels)
    loss = gen_out.loss + 50.0 * disc_out.loss
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss


def our_step(pair, opt, batch):
    out = pair(**batch)
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_(pair.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return out.loss


def make_batches(tok_info, corpus: Path, batch: int, seq: int, device):
    """A packed batch (ours) and a padded one-line-per-example batch (naive), same shape."""
    sources = resolve_sources(str(corpus), "corpus")
    stream = PretrainingStream.build(
        sources, tok_info, max_seq_length=seq, batch_size=batch, shuffle=False, endless=False
    )
    packed = next(iter(stream))
    from tokenizers import Tokenizer

    enc = Tokenizer.from_file(str(Path(tok_info.path) / "tokenizer.json"))
    lines = []
    for path in sources:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines += [line.strip() for line in f if len(line.split()) > 3][:200]
        if len(lines) >= batch:
            break
    ids = torch.full((batch, seq), tok_info.pad_id)
    for i, line in enumerate(lines[:batch]):
        row = [
            tok_info.cls_id,
            *enc.encode(line, add_special_tokens=False).ids[: seq - 2],
            tok_info.sep_id,
        ]
        ids[i, : len(row)] = torch.tensor(row)
    attention = (ids != tok_info.pad_id).long()
    special = torch.isin(ids, torch.tensor(tok_info.special_ids))
    masked = mask_tokens(
        ids,
        special,
        MaskingConfig(),
        tok_info.mask_id,
        tok_info.vocab_size,
        torch.Generator().manual_seed(0),
    )
    dense = torch.zeros_like(ids, dtype=torch.bool).scatter(
        1, masked["masked_positions"], masked["masked_weights"]
    )
    padded = {
        "input_ids": ids,
        "attention_mask": attention,
        "token_type_ids": torch.zeros_like(ids),
        **masked,
        "masked_weights_dense": dense,
    }
    move = lambda b: {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in b.items()}  # noqa: E731
    return move(packed), move(padded)


def bench_step(size, args, tok_info, corpus, device, dtype):
    torch.manual_seed(0)
    pair = build_pretraining_model(
        tok_info.vocab_size, args.seq, OFFICIAL_SIZES[size], pad_token_id=tok_info.pad_id
    ).to(device)
    gen, disc = pair.generator, pair.discriminator  # naive: same sizes, own copies below
    from transformers import ElectraForMaskedLM, ElectraForPreTraining

    naive_gen = ElectraForMaskedLM(gen.config).to(device)
    naive_disc = ElectraForPreTraining(disc.config).to(device)
    opt = AdamW(param_groups(pair), **ADAMW_DEFAULTS)  # fused on CPU and CUDA, as training
    naive_opt = torch.optim.AdamW([*naive_gen.parameters(), *naive_disc.parameters()], lr=5e-4)
    packed, padded = make_batches(tok_info, corpus, args.batch, args.seq, device)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def timed(fn):
        sync()
        t = time.perf_counter()
        with autocast:
            fn()
        sync()
        return time.perf_counter() - t

    ours_fn = lambda: our_step(pair, opt, packed)  # noqa: E731
    naive_fn = lambda: naive_step(naive_gen, naive_disc, naive_opt, padded, tok_info.mask_id)  # noqa: E731
    for _ in range(args.warmup):
        timed(ours_fn), timed(naive_fn)
    ours, naive = [], []
    for _ in range(args.steps):  # interleaved A/B
        ours.append(timed(ours_fn))
        naive.append(timed(naive_fn))
    t_ours, t_naive = statistics.median(ours), statistics.median(naive)
    real_ours = (
        int(attention_mask_of(packed).sum())
        if packed.get("attention_mask") is not None
        else packed["input_ids"].numel()
    )
    real_naive = int(padded["attention_mask"].sum())
    n_pred = MaskingConfig().max_predictions(args.seq)
    flops = training_flops_per_token(pair, args.seq, n_pred)
    return {
        "size": size,
        "ours_ms": 1000 * t_ours,
        "naive_ms": 1000 * t_naive,
        "ours_tok_s": real_ours / t_ours,
        "naive_tok_s": real_naive / t_naive,
        "ours_seq_s": args.batch / t_ours,
        "naive_real_frac": real_naive / padded["input_ids"].numel(),
        "flops_per_token": flops,
        "achieved_flops": flops * args.batch * args.seq / t_ours,
    }


# -- the step against the machine: eager vs compiled, fp32 vs bf16, fraction of GEMM peak -------


def gemm_flops(device, dtype, n: int = 2048, reps: int = 10) -> float:
    """FLOP/s of an n x n matmul on this device and thread count (median of ``reps``): the
    machine's practical peak for the step's dominant op, measured in the same run."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    times = []
    for i in range(reps + 2):
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        if i >= 2:
            times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times)


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class Variant:
    """One way to run the training step (the model, optimizer and batch of its own)."""

    def __init__(self, name, size, args, tok_info, corpus, device, *, bf16, compiled, before):
        torch.manual_seed(0)
        self.name, self.device, self.bf16, self.compiled = name, device, bf16, compiled
        self.pair = build_pretraining_model(
            tok_info.vocab_size, args.seq, OFFICIAL_SIZES[size], pad_token_id=tok_info.pad_id
        ).to(device)
        packed, _ = make_batches(tok_info, corpus, args.batch, args.seq, device)
        if before:  # the step before this change: torch's default AdamW, an all-ones mask
            self.opt = torch.optim.AdamW(param_groups(self.pair), **ADAMW_DEFAULTS)
            packed = {**packed, "attention_mask": attention_mask_of(packed)}
        else:
            self.opt = AdamW(param_groups(self.pair), **ADAMW_DEFAULTS)
        self.batch = packed
        if compiled:
            for encoder in self.pair.encoders():
                encoder.compile()
        self.compile_seconds = None

    def step(self) -> float:
        sync(self.device)
        t = time.perf_counter()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            our_step(self.pair, self.opt, self.batch)
        sync(self.device)
        return time.perf_counter() - t


def bench_variants(size, args, tok_info, corpus, device) -> dict:
    """Eager and compiled, fp32 and bf16-mixed, plus the step as it was before (torch's default
    AdamW and a mask on every batch), timed round-robin after warm-up (compile time: the first
    step's excess over the median)."""
    specs = {
        "before: eager fp32": dict(bf16=False, compiled=False, before=True),
        "eager fp32": dict(bf16=False, compiled=False, before=False),
        "eager bf16": dict(bf16=True, compiled=False, before=False),
    }
    if not args.no_compile:
        specs["compiled fp32"] = dict(bf16=False, compiled=True, before=False)
        specs["compiled bf16"] = dict(bf16=True, compiled=True, before=False)
    if args.skip_bf16:
        specs = {name: spec for name, spec in specs.items() if not spec["bf16"]}
    variants = [Variant(n, size, args, tok_info, corpus, device, **kw) for n, kw in specs.items()]
    first = {}
    for v in variants:
        first[v.name] = v.step()
        for _ in range(args.warmup - 1):
            v.step()
    times = {v.name: [] for v in variants}
    for _ in range(args.steps):
        for v in variants:
            times[v.name].append(v.step())
    median = {name: statistics.median(t) for name, t in times.items()}
    compile_s = {v.name: first[v.name] - median[v.name] for v in variants if v.compiled}
    return {"median": median, "compile_s": compile_s, "variants": variants}


CATEGORIES = [  # (category, substrings of profiler op names), first match wins
    ("optimizer", ("adam", "foreach", "_fused")),
    ("attention", ("scaled_dot_product", "attention", "softmax", "_efficient", "flash")),
    ("matmul (GEMM)", ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear")),
    ("LayerNorm / GELU", ("layer_norm", "gelu")),
    ("embedding", ("embedding",)),
    (
        "losses / sampling",
        ("cross_entropy", "nll_loss", "log_softmax", "binary_cross", "argmax", "rand", "log"),
    ),
]


def syncs_per_step(variant: Variant) -> int:
    """Host-device synchronisations in one step of the model and optimizer (the spy
    tests/test_step.py runs over Lightning's whole loop on CPU)."""
    from tests.helpers import SyncSpy

    variant.step()
    spy = SyncSpy()
    with spy:
        with torch.autocast(variant.device.type, dtype=torch.bfloat16, enabled=variant.bf16):
            out = variant.pair(**variant.batch)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(variant.pair.parameters(), 1.0)
            variant.opt.step()
            variant.opt.zero_grad(set_to_none=True)
    return len(spy.syncs)


def profile_step(variant: Variant) -> list[tuple[str, float]]:
    """Share of the step's self CPU time by kind of op (eager fp32, one profiled step)."""
    from torch.profiler import ProfilerActivity, profile

    variant.step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        variant.step()
    totals: dict[str, float] = {}
    for event in prof.key_averages():
        name = event.key.lower()
        kind = next(
            (cat for cat, keys in CATEGORIES if any(k.lower() in name for k in keys)), "other"
        )
        totals[kind] = totals.get(kind, 0.0) + event.self_cpu_time_total
    whole = sum(totals.values())
    return sorted(((k, v / whole) for k, v in totals.items()), key=lambda kv: -kv[1])


# -- data pipeline and memory ----------------------------------------------------------------------


def bench_data(tok_info, corpus: Path, batches: int) -> dict:
    """Tokens/s of the training stream over ``batches`` batches of 128 × 128 (after the first)."""
    sources = resolve_sources(str(corpus), "corpus")
    stream = PretrainingStream.build(sources, tok_info, max_seq_length=128, batch_size=128)
    tokens = 0
    it = iter(stream)
    next(it)  # tokenizer load, first chunk
    t = time.perf_counter()
    for _ in range(batches):
        batch = next(it)
        mask = attention_mask_of(batch)
        tokens += int(mask.sum()) if mask is not None else batch["input_ids"].numel()
    return {"tokens_per_sec": tokens / (time.perf_counter() - t), "batches": batches}


MEMORY_CHILD = """
import sys, time
from electra_lightning.data.stream import DATA_POSITION_KEY, PretrainingStream, load_tokenizer_info
tok = load_tokenizer_info(sys.argv[2])
stream = PretrainingStream.build([sys.argv[1]], tok, max_seq_length=128, batch_size=128)
t, n = time.time(), 0
for n, batch in enumerate(stream, 1):  # as training streams it (shuffled), one epoch
    if batch[DATA_POSITION_KEY]["epoch"] > 0:
        break
# VmHWM: this process's peak RSS (ru_maxrss would include the parent's, inherited over fork+exec)
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(n, hwm * 1024, time.time() - t)
"""


def bench_memory(tok_info, corpus: Path, tmp: Path, sizes_mb: tuple[int, int]) -> list[dict]:
    """Peak RSS of one training epoch over a small vs a 10× larger corpus (the shared corpus
    repeated into one file; every document read, tokenized, packed and masked)."""
    text = b"".join(p.read_bytes() for p in sorted(corpus.rglob("*.txt")))
    rows = []
    for mb in sizes_mb:
        path = tmp / f"corpus-{mb}mb.txt"
        with open(path, "wb") as f:
            written = 0
            while written < mb * 2**20:
                f.write(text[: mb * 2**20 - written])
                written += min(len(text), mb * 2**20 - written)
        proc = subprocess.run(
            [sys.executable, "-c", MEMORY_CHILD, str(path), tok_info.path],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        )
        batches, rss, secs = proc.stdout.split()
        rows.append(
            {
                "mb": mb,
                "peak_rss_mb": int(rss) / 2**20,
                "seconds": float(secs),
                "batches": int(batches),
            }
        )
        path.unlink()
    return rows


def print_variant_ratios(r: dict, median: dict, peak_fraction: float) -> None:
    """One size's variants against each other, against the naive step and the GEMM peak."""
    eager = median["eager fp32"]
    print(
        f"ELECTRA-{r['size']}: eager vs before {median['before: eager fp32'] / eager:.2f}x faster"
    )
    print(f"ELECTRA-{r['size']}: eager vs naive {r['naive_ms'] / 1000 / eager:.2f}x faster")
    for variant in ("compiled fp32", "compiled bf16", "eager bf16"):
        if variant in median:
            base = median["eager bf16" if variant == "compiled bf16" else "eager fp32"]
            print(f"ELECTRA-{r['size']}: {variant} vs its eager {base / median[variant]:.2f}x")
    print(f"ELECTRA-{r['size']}: eager fp32 at {peak_fraction:.2f} of the GEMM peak")


def report_variants(args, tok_info, corpus, device, results) -> list[dict]:
    peaks = {"fp32": gemm_flops(device, torch.float32)}
    if not args.skip_bf16:
        peaks["bf16"] = gemm_flops(device, torch.bfloat16)
    print(
        f"\n## The step against the machine (batch {args.batch} x {args.seq}; same-run 2048² GEMM: "
        + ", ".join(f"{k} {v / 1e9:.1f} GFLOP/s" for k, v in peaks.items())
        + f", {torch.get_num_threads()} threads)"
    )
    print(
        "| model | variant | ms/step | seq/s | achieved FLOP/s | fraction of GEMM peak | "
        "compile s | syncs/step |"
    )
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    nominal = detect_peak_flops() if device.type == "cuda" else None
    for r in results:
        found = bench_variants(r["size"], args, tok_info, corpus, device)
        median = found["median"]
        for variant, ms in median.items():
            achieved = r["flops_per_token"] * args.batch * args.seq / ms
            peak = peaks["bf16" if "bf16" in variant else "fp32"]
            compile_s = found["compile_s"].get(variant)
            row = {
                "size": r["size"],
                "variant": variant,
                "ms": 1000 * ms,
                "seq_s": args.batch / ms,
                "tokens_s": args.batch * args.seq / ms,
                "achieved_flops": achieved,
                "peak_fraction": achieved / peak,
                # against the device's nominal dense bf16 peak (GPUs we know; None on CPU)
                "mfu": achieved / nominal if nominal else None,
                "compile_s": compile_s,
                "syncs_per_step": syncs_per_step(
                    next(v for v in found["variants"] if v.name == variant)
                ),
            }
            rows.append(row)
            print(
                f"| ELECTRA-{r['size']} | {variant} | {1000 * ms:.1f} | {args.batch / ms:.1f} | "
                f"{achieved / 1e9:.1f} G | {achieved / peak:.2f} | "
                + (f"{compile_s:.0f}" if compile_s is not None else "")
                + f" | {row['syncs_per_step']} |"
            )
        fp32 = next(x for x in rows if x["size"] == r["size"] and x["variant"] == "eager fp32")
        print_variant_ratios(r, median, fp32["peak_fraction"])
        shares = profile_step(next(v for v in found["variants"] if v.name == "eager fp32"))
        print(
            f"ELECTRA-{r['size']} eager fp32, share of the step's CPU time: "
            + ", ".join(f"{k} {v:.0%}" for k, v in shares)
        )
    return rows


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--sizes", nargs="+", default=["small"], choices=list(OFFICIAL_SIZES))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--full",
        action="store_true",
        help="the full-size data sections: memory over 100 MB vs 1 GB instead of 5 MB vs 50 MB "
        "(20x the work: a 1 GB epoch is tokenized whole), 1000 data batches instead of 200",
    )
    parser.add_argument("--data_batches", type=int, help="default 200, 1000 with --full")
    parser.add_argument("--skip_data", action="store_true")
    parser.add_argument("--skip_memory", action="store_true")
    parser.add_argument("--skip_streaming", action="store_true")
    parser.add_argument("--no_compile", action="store_true", help="leave out the compiled variants")
    parser.add_argument("--skip_variants", action="store_true")
    parser.add_argument("--json", help="also write every figure to this JSON file")
    args = parser.parse_args()
    args.data_batches = args.data_batches or (1000 if args.full else 200)
    args.memory_mb = (100, 1000) if args.full else (5, 50)
    return args


def report_step(args, tok_info, corpus, device, dtype) -> list[dict]:
    """Part 1: ours vs the naive step, per model size."""
    print(
        f"## Training step, batch {args.batch} x {args.seq}, median of {args.steps} interleaved A/B steps"
    )
    print(
        "| model | ours ms/step | naive ms/step | ours tokens/s | naive tokens/s | speed-up (step) | speed-up (tokens/s) | naive real-token share |"
    )
    print("|---|---|---|---|---|---|---|---|")
    results = []
    for size in args.sizes:
        r = bench_step(size, args, tok_info, corpus, device, dtype)
        results.append(r)
        print(
            f"| ELECTRA-{size} | {r['ours_ms']:.1f} | {r['naive_ms']:.1f} | {r['ours_tok_s']:,.0f} | "
            f"{r['naive_tok_s']:,.0f} | {r['naive_ms'] / r['ours_ms']:.2f}x | "
            f"{r['ours_tok_s'] / r['naive_tok_s']:.2f}x | {r['naive_real_frac']:.0%} |"
        )
    for r in results:
        print(
            f"ELECTRA-{r['size']}: speed-up {r['naive_ms'] / r['ours_ms']:.2f}x per step, "
            f"{r['ours_tok_s'] / r['naive_tok_s']:.2f}x in real tokens/s"
        )
    return results


def report_flops(args, results, device, dtype) -> None:
    print(f"\n## Model FLOPs (training, per token, seq {args.seq})")
    peak = detect_peak_flops() if device.type == "cuda" else None
    print("| model | FLOPs/token | FLOPs/sequence | achieved FLOP/s | seq/s | MFU |")
    print("|---|---|---|---|---|---|")
    for r in results:
        mfu = (
            f"{r['achieved_flops'] / peak:.1%}"
            if peak and dtype == torch.bfloat16
            else "n/a (no GPU peak)"
        )
        print(
            f"| ELECTRA-{r['size']} | {r['flops_per_token']:.3g} | {r['flops_per_token'] * args.seq:.3g} | "
            f"{r['achieved_flops']:.3g} | {r['ours_seq_s']:,.1f} | {mfu} |"
        )


def report_data(args, tok_info, corpus) -> None:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one core: the figure is per worker/core
    d = bench_data(tok_info, corpus, args.data_batches)
    print(
        f"\n## Data pipeline (read + tokenize + pack + mask), one worker process, "
        f"{d['batches']} batches of 128 x 128"
    )
    print(f"tokens/s per worker: {d['tokens_per_sec']:,.0f}")


def report_memory(args, tok_info, corpus, tmp) -> None:
    small, large = args.memory_mb
    rows = bench_memory(tok_info, corpus, tmp, (small, large))
    print("\n## Memory over one training epoch of a corpus (read + tokenize + pack + mask)")
    print("| corpus | batches | peak RSS | seconds |")
    print("|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['mb']} MB | {row['batches']} | {row['peak_rss_mb']:.0f} MB | "
            f"{row['seconds']:.0f} |"
        )
    print(
        f"peak RSS ratio {large} MB / {small} MB: "
        f"{rows[1]['peak_rss_mb'] / rows[0]['peak_rss_mb']:.2f} (flat: 1.00)"
    )


def report_streaming(tok_info, corpus) -> None:
    """Sharding and seeking resume (benchmarks/stream_bench.py, also runnable on its own)."""
    print()
    subprocess.run(
        [sys.executable, str(REPO / "benchmarks/stream_bench.py"), str(corpus), tok_info.path],
        check=True,
        cwd=REPO,
    )


@contextmanager
def section(name: str, walls: dict[str, float]):
    """The wall time of one section of this run, printed after it (what the section costs here;
    no figure is compared against it)."""
    start = time.perf_counter()
    yield
    walls[name] = time.perf_counter() - start
    print(f"[{name}: {walls[name]:.0f} s wall]")


def settle_precision(args, device) -> torch.dtype:
    """No bf16 rows on a CPU that only emulates bf16 (the bf16 GEMM alone ran for tens of
    minutes on an AVX2-only EPYC): one line says so, and --precision bf16 becomes fp32."""
    args.skip_bf16 = device.type == "cpu" and bf16_is_emulated()
    if args.skip_bf16:
        print(
            f"bf16 rows skipped: {no_bf16_reason()} (the bf16 rows alone ran for 50+ minutes on "
            f"an AVX2-only CPU); {BF16_ENV}=1 times them"
            + ("; --precision bf16 -> fp32" if args.precision == "bf16" else "")
        )
        args.precision = "fp32"
    return torch.bfloat16 if args.precision == "bf16" else torch.float32


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # in order with stream_bench's output, when piped
    args = parse_args()
    device = torch.device(args.device)
    dtype = settle_precision(args, device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    name = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu"
    print(
        f"machine: {name}; {os.cpu_count()} CPU cores; torch {torch.__version__}; "
        f"threads {torch.get_num_threads()}; {args.precision}"
    )

    walls: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        with section("setup (corpus, tokenizer)", walls):
            corpus = corpus_dir(tmp)
            cache = Path(
                os.environ.get("ELECTRA_BENCH_CACHE", Path(tempfile.gettempdir()) / "electra-bench")
            )
            cache.mkdir(exist_ok=True)
            tok_info = load_tokenizer_info(str(tokenizer_for(corpus, cache)))
            print(f"corpus: {corpus} | tokenizer vocab {tok_info.vocab_size}\n")
        with section("training step vs naive", walls):
            results = report_step(args, tok_info, corpus, device, dtype)
            report_flops(args, results, device, dtype)
        figures = {"machine": name, "torch": torch.__version__, "batch": args.batch}
        figures["step"] = results
        if not args.skip_variants:
            with section("the step against the machine", walls):
                figures["variants"] = report_variants(args, tok_info, corpus, device, results)
        if args.json:
            import json

            Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
            print(f"\nwritten: {args.json}")
        if not args.skip_data:
            with section("data pipeline", walls):
                report_data(args, tok_info, corpus)
        if not args.skip_memory:
            with section("memory", walls):
                report_memory(args, tok_info, corpus, tmp)
        if not args.skip_streaming:
            with section("sharding and resume", walls):
                report_streaming(tok_info, corpus)
    print(
        "\n## Wall time per section"
        + ("" if args.full else " (--full: the full-size data sections)")
    )
    for name, seconds in walls.items():
        print(f"{name}: {seconds:.0f} s")
    print(f"total: {sum(walls.values()):.0f} s")


if __name__ == "__main__":
    main()
