"""Short probes of the recipe's own knobs: what moves ELECTRA's discriminator off the base-rate
plateau sooner? The official batch of 128 instead of 16 at equal tokens, the learning rate, and
the generator's size (the paper: too strong and too weak generators both hurt). Every probe
trains the same number of tokens with its own schedule (10% warmup, linear decay to 0 at its own
last step) and is read through the held-out replaced-token-detection ROC AUC (``val/disc_auc``)
along the way: above 0.5 the discriminator ranks replaced tokens above original ones on
unseen text, i.e. it reads context rather than word frequency.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from experiments.runner import merge_history

# name → (what differs from the curve's recipe, CLI overrides, batch size)
KNOBS = {
    "baseline": ("batch 16, lr 5e-4, generator 1/4 (the curve's recipe)", [], 16),
    "batch128": (
        "batch 128 at equal tokens (the official batch; 1/8 of the steps)",
        ["--data.batch_size=128"],
        128,
    ),
    "lr1e-3": ("learning rate 1e-3 (2x)", ["--model.optimizer.init_args.lr=1e-3"], 16),
    "gen1-2": ("generator 1/2 of the width (stronger)", ["--model.size.generator_size=0.5"], 16),
    "gen1-8": ("generator 1/8 of the width (weaker)", ["--model.size.generator_size=0.125"], 16),
}
QUICK_KNOBS = ["baseline", "batch128"]  # CI: the step scaling and the table, at seconds' cost
VALIDATIONS = 6  # per probe, evenly spaced in tokens
VAL_SEQUENCES = 320  # the curve's 20 batches of 16; a batch-128 probe validates on 3 (384)


def probe_plan(steps16: int, quick: bool) -> dict[str, dict]:
    """Steps, validation interval and validation batches of each probe, for ``steps16`` steps
    of batch 16 (the tokens every probe trains)."""
    plan = {}
    for name in QUICK_KNOBS if quick else KNOBS:
        _, overrides, batch = KNOBS[name]
        steps = max(1, steps16 * 16 // batch)
        plan[name] = {
            "steps": steps,
            "val_every": max(1, steps // VALIDATIONS),
            "val_batches": 2 if quick else math.ceil(VAL_SEQUENCES / batch),
            "batch_size": batch,
            "overrides": overrides,
        }
    return plan


def entropy(p: float) -> float:
    """Binary entropy in nats."""
    return 0.0 if p <= 0 or p >= 1 else -(p * math.log(p) + (1 - p) * math.log(1 - p))


def read_probe(run_dir: Path, batch_size: int, seq: int) -> list[dict]:
    """Every validation of a probe: steps trained (Lightning logs the 0-based index of the last
    step, so +1), training tokens, val/disc_auc, val/gen_acc, and how far
    the training RTD loss since the previous validation sits below the entropy of the replaced
    fraction (the loss of a discriminator that knows only the base rate; > 0: it learned more)."""
    with open(merge_history(run_dir) / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    out, last = [], 0
    for r in rows:
        if not r.get("val/disc_auc"):
            continue
        step = int(r["step"])
        train = [
            entropy(float(t["train/replaced_frac"])) - float(t["train/disc_loss"])
            for t in rows
            if t.get("train/disc_loss") and last < int(t["step"]) <= step
        ]
        out.append(
            {
                "step": step + 1,
                "tokens": (step + 1) * batch_size * seq,
                "val/disc_auc": float(r["val/disc_auc"]),
                "val/gen_acc": float(r["val/gen_acc"]),
                "base_rate_gap": sum(train) / len(train) if train else None,
            }
        )
        last = step
    return out


def knob_table(results: dict[str, dict]) -> str:
    """One row per probe: val/disc_auc at each validation (in tokens), then the last
    validation's gen_acc, the training RTD loss's gap below the base rate before it, and the
    linear probe of the last checkpoint (SST-2 accuracy, CoLA MCC × 100)."""
    names = list(results)
    validations = {name: r["validations"] for name, r in results.items()}
    columns = max(len(v) for v in validations.values())
    ref = max(validations.values(), key=len)
    head = [f"{ref[i]['tokens']:,}" for i in range(columns)]
    lines = [
        "| knob | "
        + " | ".join(f"AUC @ {h} tokens" for h in head)
        + " | val/gen_acc at the end | train RTD loss below the base rate, last interval (nats)"
        + " | SST-2 probe | CoLA probe |",
        "|---" * (columns + 5) + "|",
    ]
    for name in names:
        vals = validations[name]
        probe = results[name]["probe"]
        cells = [f"{v['val/disc_auc']:.3f}" for v in vals] + ["—"] * (columns - len(vals))
        gen = f"{vals[-1]['val/gen_acc']:.3f}" if vals else "—"
        gap = vals[-1]["base_rate_gap"] if vals else None
        gap = "—" if gap is None else f"{gap:+.4f}"
        lines.append(
            f"| {KNOBS[name][0]} | "
            + " | ".join(cells)
            + f" | {gen} | {gap} | {probe['sst2']:.1f} | {probe['cola']:.1f} |"
        )
    return "\n".join(lines)


def knob_plot(results: dict[str, dict], output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, result in results.items():
        vals = result["validations"]
        ax.plot(
            [v["tokens"] for v in vals],
            [v["val/disc_auc"] for v in vals],
            marker="o",
            label=KNOBS[name][0],
        )
    ax.axhline(0.5, color="grey", linestyle=":", label="chance")
    ax.set_xlabel("pretraining tokens")
    ax.set_ylabel("val/disc_auc")
    ax.set_title("Knob probes: replaced-token detection ROC AUC (held out)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    plt.close(fig)


def save(results: dict[str, dict], plan: dict, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    (target / "knobs.json").write_text(json.dumps({"plan": plan, "results": results}, indent=1))
