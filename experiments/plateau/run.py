"""Experiment 5 — past the plateau: which short-budget recipe makes the discriminator read context on a CPU?

    python -m experiments.plateau.run                 # the documented sweep (2 CPU cores, ~2 h)
    python -m experiments.plateau.run --quick         # seconds-scale smoke test (CI)
    python -m experiments.plateau.run --device cuda   # one GPU: the same arms, bf16 (untested)

Experiment 4's in-domain text (movie reviews cv000–cv899 + SST-2 training sentences, validation
reviews cv900–cv999, its own 16k WordPiece vocabulary), sequences of 64 tokens, batches of 128, the
4-layer hidden-128 encoder. Short arms first (``--short_steps`` each, two at a time on one thread
each), each changing one lever from a common base; then one long arm (``--long_steps``, both
threads) of the arm that went furthest. Every arm logs ``val/gen_context_gain`` and
``val/disc_context_gain`` (nats above word frequencies / the base rate) and ``val/disc_auc``.

The gates, fixed before the run (``GATES``), and the report (README.md here, the figure, every
arm's logged history in results/) say which arm passed. Re-running resumes every arm.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from experiments.common import EXPERIMENTS
from experiments.pays_off.study import BATCH, CPU_SIZE, HELD_OUT, REVIEWS, SEQ, SST2, InDomainStudy
from experiments.runner import log, merge_history

NAME = "plateau"
MAX_FLOPS = 2e14  # the gate's compute budget per arm (training FLOPs, generator included)
GATES = {
    "gen_context_gain": 0.5,  # nats above word frequencies, generator (and MLM)
    "disc_context_gain": 0.005,  # nats above the base rate, at each of the last 3 validations
    "disc_auc": 0.6,  # and rising over the last third of the run
}


@dataclass(frozen=True)
class Arm:
    name: str
    lever: str  # what it changes from the base, in words
    overrides: tuple[str, ...] = ()
    batch_size: int = BATCH
    seq: int = SEQ
    extra: dict = field(default_factory=dict)


# The base of the short arms: lr 1e-3, no dropout, 10% warm-up then linear decay to 0 (Geiping &
# Goldstein 2022's short-budget choices; the official schedule has the same shape), generator 1/4
# of the width, temperature 1, disc_weight 50. Each arm changes one thing; "official" is the
# ELECTRA-Small recipe as experiment 4 ran it. Listed in the order they run.
BASE = ("--model.optimizer.init_args.lr=1e-3", "--model.dropout=0.0")
ARMS = [
    Arm("base", "lr 1e-3, dropout 0, generator 1/4, T 1, disc_weight 50", BASE),
    Arm("temp2", "sampling temperature 2", (*BASE, "--model.temperature=2.0")),
    Arm("gen1-8", "generator 1/8 of the width", (*BASE, "--model.size.generator_size=0.125")),
    Arm("lr2e-3", "lr 2e-3", ("--model.optimizer.init_args.lr=2e-3", "--model.dropout=0.0")),
    Arm("official", "lr 5e-4, dropout 0.1 (official Small)", ()),
    Arm("gen1-2", "generator 1/2 of the width", (*BASE, "--model.size.generator_size=0.5")),
    Arm("dropout0.1", "dropout 0.1", ("--model.optimizer.init_args.lr=1e-3",)),
    Arm("warmup2pct", "warm-up 2% of the steps", BASE, extra={"warmup_fraction": 0.02}),
    Arm("dw100", "disc_weight 100", (*BASE, "--model.disc_weight=100")),
    Arm("seq128", "sequences of 128 (64 of them: same tokens)", BASE, batch_size=64, seq=128),
]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--short_steps", type=int, default=250, help="steps of each short arm")
    p.add_argument("--long_steps", type=int, default=1500, help="steps of the long arm")
    p.add_argument(
        "--long_arm", help="the long arm's short arm (default: the one that went furthest)"
    )
    p.add_argument("--arms", nargs="+", help="short arms to run (default: all, in order)")
    p.add_argument("--stage", choices=["short", "long", "all", "report"], default="all")
    p.add_argument("--quick", action="store_true", help="seconds-scale smoke test (CI)")
    p.add_argument("--output_dir", default=str(EXPERIMENTS / "runs" / NAME))
    p.add_argument("--workers", type=int, default=2, help="short arms in parallel (CPU)")
    return p.parse_args(argv)


class Plateau(InDomainStudy):
    def __init__(self, args: argparse.Namespace):
        # experiment 4's corpus, written the same way (its own copy under this study's root)
        super().__init__(NAME, args)
        self.size = {**CPU_SIZE, "max_position_embeddings": 128}
        self.device = (
            ["--trainer.accelerator=gpu", "--trainer.precision=bf16-mixed", "--data.num_workers=4"]
            if self.cuda
            else []
        )
        self.short_steps = 4 if args.quick else args.short_steps
        self.long_steps = 6 if args.quick else args.long_steps
        names = args.arms or [a.name for a in ARMS]
        unknown = sorted(set(names) - {a.name for a in ARMS})
        if unknown:
            raise SystemExit(f"error: --arms: unknown arm(s) {', '.join(unknown)}")
        self.arms = [a for a in ARMS if a.name in names]
        if args.quick:
            self.arms = self.arms[:2]

    def make_plan(self) -> dict:
        return {
            "short_steps": self.short_steps,
            "long_steps": self.long_steps,
            "device": self.args.device,
            "quick": self.quick,
            "gates": GATES,
            "max_flops": MAX_FLOPS,
        }

    def batch_of(self, arm: Arm) -> int:
        return 16 if self.quick else arm.batch_size

    def flops_per_step(self, arm: Arm) -> float:
        """Training FLOPs of one step of ``arm`` (its generator width and sequence length)."""
        from electra_lightning.model.electra import training_flops_per_token
        from electra_lightning.model.masking import MaskingConfig

        self.seq = arm.seq
        size = dict(self.size)
        for option in arm.overrides:
            if option.startswith("--model.size.generator_size="):
                size["generator_size"] = float(option.split("=")[1])
        saved, self.size = self.size, size
        try:
            model = self.pair()
        finally:
            self.size, self.seq = saved, SEQ
        per_token = training_flops_per_token(
            model, arm.seq, MaskingConfig().max_predictions(arm.seq)
        )
        return per_token * arm.seq * self.batch_of(arm)

    def train(self, arm: Arm, steps: int, group: str, threads: int) -> Path:
        every = max(1, steps // 10)  # 10 validations and checkpoints per arm
        warmup = max(1, round(steps * arm.extra.get("warmup_fraction", 0.1)))
        overrides = [
            *(f"--model.size.{k}={v}" for k, v in self.size.items()),
            f"--data.max_seq_length={arm.seq}",
            f"--data.batch_size={self.batch_of(arm)}",
            f"--data.val_files={self.root / 'corpus' / 'val.jsonl'}",
            f"--model.warmup_steps={warmup}",
            *(["--data.shuffle_block=64"] if self.quick else []),
            *self.device,
            *arm.overrides,
        ]
        env = self.env
        self.env = {**env, "OMP_NUM_THREADS": str(threads)}
        try:
            return self.pretrain(
                arm.name,
                overrides,
                steps,
                every,
                group=group,
                val_every=every,
                val_batches=2 if self.quick else 8,
            )
        finally:
            self.env = env

    def run_short(self) -> None:
        with ThreadPoolExecutor(self.workers) as pool:
            jobs = [pool.submit(self.train, a, self.short_steps, "short", 1) for a in self.arms]
            for job in jobs:
                job.result()

    def long_arm(self) -> Arm:
        if self.args.long_arm:
            return next(a for a in ARMS if a.name == self.args.long_arm)
        rows = [row for row in self.rows("short") if row["done"]]
        return next(a for a in ARMS if a.name == max(rows, key=promise)["arm"])

    def run_long(self) -> Arm:
        arm = self.long_arm()
        threads = 1 if self.cuda else (os.cpu_count() or 1)
        self.train(arm, self.long_steps, "long", threads)
        return arm

    # -- results --------------------------------------------------------------------------------
    def history(self, group: str, arm: Arm) -> list[dict]:
        run = self.root / group / arm.name
        if not any(run.glob("version_*/metrics.csv")):
            return []
        with open(merge_history(run) / "metrics.csv") as f:
            return list(csv.DictReader(f))

    def rows(self, group: str) -> list[dict]:
        arms = self.arms if group == "short" else [self.long_arm()]
        steps = self.short_steps if group == "short" else self.long_steps
        rows = []
        for arm in arms:
            row = summarise(arm, self.history(group, arm), self.flops_per_step(arm), steps)
            row["rarity"] = self.rarity(group, arm) if row["done"] else None
            rows.append(row)
        return rows

    def rarity(self, group: str, arm: Arm) -> dict:
        """The rarity check (``rarity.py``) of the arm's last checkpoint, cached beside it."""
        run = self.root / group / arm.name
        store = run / "rarity.json"
        if store.exists():
            return json.loads(store.read_text())
        from experiments.plateau.rarity import rarity_check

        result = rarity_check(
            str(run / "checkpoints" / "last.ckpt"),
            str(self.root / "corpus" / "train.jsonl"),
            str(self.root / "corpus" / "val.jsonl"),
            str(self.tokenizer),
            arm.seq,
            self.batch_of(arm),
            2 if self.quick else 8,
        )
        store.write_text(json.dumps(result, indent=1) + "\n")
        return result


def series(history: list[dict], key: str) -> list[tuple[int, float]]:
    return [(int(r["step"]) + 1, float(r[key])) for r in history if r.get(key)]


def summarise(arm: Arm, history: list[dict], flops_per_step: float, steps: int) -> dict:
    """One arm's row: its last gains and AUC, their trends, the gates it passed."""
    gen, disc, auc = (
        series(history, f"val/{k}") for k in ("gen_context_gain", "disc_context_gain", "disc_auc")
    )
    last_step = max((s for s, _ in gen), default=0)
    third = auc[-max(2, len(auc) // 3) :] if auc else []
    rising = len(third) >= 2 and third[-1][1] > third[0][1]
    row = {
        "arm": arm.name,
        "lever": arm.lever,
        "steps": last_step,
        "done": last_step >= steps,
        "flops": last_step * flops_per_step,
        "gen_gain": gen[-1][1] if gen else None,
        "disc_gain": disc[-1][1] if disc else None,
        "auc": auc[-1][1] if auc else None,
        "auc_max": max((v for _, v in auc), default=None),
        "auc_rising": rising,
    }
    row["gates"] = {
        "gen_context_gain": bool(gen) and gen[-1][1] >= GATES["gen_context_gain"],
        "disc_context_gain": len(disc) >= 3
        and all(v > GATES["disc_context_gain"] for _, v in disc[-3:]),
        "disc_auc": bool(auc) and auc[-1][1] >= GATES["disc_auc"] and rising,
        "flops": row["flops"] <= MAX_FLOPS,
    }
    row["passed"] = all(row["gates"].values()) and row["done"]
    return row


def promise(row: dict) -> tuple:
    """How far an arm went in reading context, for the long arm: its discriminator's gain over
    rarity alone (``rarity.py``), then its generator's gain over word frequencies."""
    rarity = (row.get("rarity") or {}).get("gain_over_rarity", -9.0)
    # to 0.001 nats: finer differences are noise at one seed (a tie goes to the generator)
    return (round(rarity, 3), row["gen_gain"] if row["gen_gain"] is not None else -9.0)


def fmt(value, spec: str = ".3f") -> str:
    return "—" if value is None else format(value, spec)


def table(rows: list[dict]) -> list[str]:
    lines = [
        "| arm | what it changes | steps | training FLOPs | val/gen_context_gain | "
        "val/disc_context_gain | val/disc_auc (max) | AUC rising | gates passed | "
        "disc gain over rarity | AUC of rarity alone |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        passed = [k for k, ok in r["gates"].items() if ok]
        rarity = r.get("rarity") or {}
        lines.append(
            f"| {r['arm']} | {r['lever']} | {r['steps']} | {r['flops']:.2g} | "
            f"{fmt(r['gen_gain'])} | {fmt(r['disc_gain'], '+.4f')} | "
            f"{fmt(r['auc'], '.3f')} ({fmt(r['auc_max'], '.3f')}) | "
            f"{'yes' if r['auc_rising'] else 'no'} | "
            f"{'**all**' if r['passed'] else ', '.join(passed) or 'none'} | "
            f"{fmt(rarity.get('gain_over_rarity'), '+.4f')} | "
            f"{fmt(rarity.get('auc_rarity'), '.3f')} |"
        )
    return lines


def figure(study: Plateau, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4), dpi=100)
    panels = [
        (
            "val/gen_context_gain",
            "generator: nats above word frequencies",
            GATES["gen_context_gain"],
        ),
        ("val/disc_context_gain", "discriminator: nats above the base rate", 0.0),
        ("val/disc_auc", "discriminator: replaced-token AUC", GATES["disc_auc"]),
    ]
    runs = [("short", a) for a in study.arms]
    if (study.root / "long").is_dir() and study.args.stage != "short":
        runs.append(("long", study.long_arm()))
    for ax, (key, title, gate) in zip(axes, panels, strict=True):
        for group, arm in runs:
            points = series(study.history(group, arm), key)
            if not points:
                continue
            per_step = study.flops_per_step(arm)
            ax.plot(
                [s * per_step for s, _ in points],
                [v for _, v in points],
                marker="." if group == "short" else None,
                linewidth=2.5 if group == "long" else 1.2,
                label=f"{arm.name} ({group})" if group == "long" else arm.name,
            )
        ax.axhline(gate, color="grey", linestyle=":", label=f"gate {gate:g}")
        if key == "val/disc_auc":
            ax.axhline(0.5, color="black", linestyle=":", linewidth=0.8, label="chance 0.5")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training FLOPs", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2)
    fig.suptitle("Experiment 5: the short arms and the long arm, at each validation", fontsize=12)
    fig.tight_layout()
    fig.savefig(out / "sweep.png")
    plt.close(fig)


def report(study: Plateau) -> str:
    out = study.root if study.quick else EXPERIMENTS / NAME
    results = out / "results"
    results.mkdir(parents=True, exist_ok=True)
    short = study.rows("short")
    long = study.rows("long") if (study.root / "long").is_dir() else []
    for group, rows in (("short", short), ("long", long)):
        for row in rows:
            run = study.root / group / row["arm"]
            if (run / "history" / "metrics.csv").exists():
                shutil.copy(run / "history" / "metrics.csv", results / f"{group}-{row['arm']}.csv")
    (results / "rows.json").write_text(json.dumps({"short": short, "long": long}, indent=1))
    shutil.copy(study.root / "plan.json", results / "plan.json")
    figure(study, out)
    passed = [r["arm"] for r in short + long if r["passed"]]
    command = "python -m experiments.plateau.run" + (" --quick" if study.quick else "")
    notes = out / "NOTES.md"
    text = f"""# Experiment 5 — past the plateau

- **Question**: which short-budget recipe makes the discriminator learn more than the base rate
  (and the generator more than word frequencies) on 2 CPU cores?
- **Command**: `{command}` (resumes when re-run; `--stage short|long|report`; `--quick` is the CI
  smoke test). Short arms {study.short_steps} steps each, two at a time on one thread each; the long arm
  {study.long_steps} steps on {os.cpu_count()} threads.
- **Machine**: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, no GPU.
- **Data**: experiment 4's in-domain text ({study.check["training_words"]:,} words: movie reviews
  cv000–cv{HELD_OUT - 1:03d} + SST-2 training sentences without labels), validation reviews
  cv{HELD_OUT}–cv999, 8 fixed batches per validation; WordPiece {"2k" if study.quick else "16k"}.
- **Model**: 4 layers, hidden 128, 2 heads, FFN 512, embeddings 128 (shared); batch
  {BATCH} × {SEQ} tokens unless the arm says otherwise; 10 validations per arm; one seed per arm.
{"- **Quick smoke run: the numbers mean nothing.**" if study.quick else ""}
## Gates, fixed before the run

An arm passes when, within {MAX_FLOPS:.0e} training FLOPs: `val/gen_context_gain` ≥
{GATES["gen_context_gain"]} nats at the end; `val/disc_context_gain` > {GATES["disc_context_gain"]} nats at
each of the last 3 validations (beyond noise: the validation batches and their replacements'
seed are fixed); `val/disc_auc` ≥ {GATES["disc_auc"]} at the end and higher than a third of the run
earlier (rising).

The last two columns are a check added after the first arms ran (not a gate): the same
validation batches scored by the best predictor that sees only how rare the shown token is in the
training text (20 frequency bins with their own rates, fitted on those batches) and the AUC of
ranking by rarity alone (`rarity.py`). A discriminator whose gain over the base rate is not also
a gain over rarity has learned "rare words are replaced", not context.

## Short arms ({study.short_steps} steps each)

{chr(10).join(table(short))}

## Long arm

{chr(10).join(table(long)) if long else "Not run yet."}

![the sweep](sweep.png)

**Passed every gate**: {", ".join(passed) if passed else "none"}. Each arm's logged history:
`results/short-ARM.csv`, `results/long-ARM.csv`; rows with every gate: `results/rows.json`.

{notes.read_text().strip() if notes.exists() and not study.quick else ""}
"""
    (out / "README.md").write_text(text)
    print(text)
    return text


def main(argv=None) -> None:
    args = parse_args(argv)
    if not REVIEWS.exists() or not (SST2 / "dev.tsv").exists():
        raise SystemExit(f"error: needs {REVIEWS} and {SST2} (../shared/data)")
    study = Plateau(args)
    study.setup()
    if args.stage in ("short", "all"):
        study.run_short()
    if args.stage in ("long", "all"):
        arm = study.run_long()
        log(f"long arm: {arm.name}")
    report(study)


if __name__ == "__main__":
    main()
