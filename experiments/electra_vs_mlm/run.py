"""Experiment 1 — ELECTRA vs MLM over pretraining compute (the paper's compute comparison, in
miniature): score vs training FLOPs for both objectives on one figure, and a table.

    python -m experiments.electra_vs_mlm.run --steps 7000 --seeds 2 --knob_steps 1500  # CPU run
    python -m experiments.electra_vs_mlm.run --device cuda --budget_minutes 3  # one H200, ~10 min
    python -m experiments.electra_vs_mlm.run --quick                           # CI smoke test

Pretrains the same encoder twice on a shuffled stream of ../shared/data/nltk_english_text (label
files left out): ELECTRA (generator 1/4, replaced token detection) and MLM (BERT-style 15% with
80/10/10) — on CPU the small recipe of experiments/pretrain.yaml, on CUDA ELECTRA-Small in bf16.
Both keep a checkpoint at ``--points`` points of equal training FLOPs (the MLM run gets the steps
ELECTRA spends on its generator). At every point: the deterministic linear probe (SST-2, CoLA) of
the frozen encoder, and the last validation's replaced-token-detection ROC AUC (ELECTRA) and
masked-token accuracy (both). At the last point each encoder, and a randomly initialised one, is
fine-tuned on the full SST-2 training set. ``--knob_steps N`` adds the short knob probes of
knobs.py (batch, learning rate, generator size; ELECTRA only, N steps of batch 16 in tokens
each). Re-running resumes every stage. Writes the folder's README.md (table, curve, exact
command, machine, budget, seeds) around the hand-written NOTES.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import time
from dataclasses import asdict
from pathlib import Path

from experiments.common import Study
from experiments.electra_vs_mlm import knobs
from experiments.probe import SHARED
from experiments.runner import log, merge_history, run_glue

HERE = Path(__file__).resolve().parent
CORPUS = SHARED / "nltk_english_text"
# every text of the corpus but reuters/cats.txt (topic labels, not text); the stream shuffles
# file ranges per epoch and documents within blocks (data.shuffle, the default)
CORPUS_PARTS = ["abc", "gutenberg", "inaugural", "state_union", "reuters/reuters_apte_all.txt"]
OBJECTIVES = {
    "ELECTRA": [],
    "MLM": ["--model.objective=mlm", "--data.mask_token_prob=0.8", "--data.random_token_prob=0.1"],
}
# Encoder size on CPU: the recipe's 4 layers at half its width (hidden 128, as configs/tiny.yaml):
# ~1/3 of its FLOPs per token, so ~3x the steps and tokens in the same hours — at this compute
# a smaller model trained on more tokens is the better use of it (compute-optimal scaling), and
# the question is when the discriminator leaves the plateau, which takes updates. CUDA: the
# ELECTRA-Small preset (configs/electra-small.yaml), the official batch of 128, bf16.
CPU_SIZE = {"num_layers": 4, "hidden_size": 128, "num_heads": 2, "intermediate_size": 512}
CUDA_BATCH = 128
FINETUNE_NAMES = {"ELECTRA": "electra", "MLM": "mlm", "no pretraining": "random"}
QUICK = ["--trainer.limit_val_batches=2", "--data.shuffle_block=64"]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--steps", type=int, help="ELECTRA steps (default: from --budget_minutes)")
    p.add_argument(
        "--budget_minutes",
        type=float,
        default=3.0,
        help="without --steps: minutes of ELECTRA pretraining, converted to steps by timing it",
    )
    p.add_argument("--points", type=int, default=7, help="evaluation points along each run")
    p.add_argument("--seeds", type=int, default=1, help="SST-2 fine-tuning seeds at the end")
    p.add_argument(
        "--finetune_examples",
        type=int,
        default=0,
        help="fine-tune on the first N SST-2 training examples (default 0: all 67,349)",
    )
    p.add_argument(
        "--knob_steps",
        type=int,
        default=0,
        help="also run the short knob probes (knobs.py), each N steps of batch 16 in tokens "
        "(default 0: none)",
    )
    p.add_argument("--quick", action="store_true", help="seconds-scale smoke test (CI)")
    p.add_argument("--output_dir", default=str(HERE.parent / "runs" / "electra_vs_mlm"))
    return p.parse_args()


class CurveStudy(Study):
    """Score over pretraining FLOPs: ELECTRA and MLM, each with checkpoints at ``points`` points
    of equal training FLOPs, every point probed; at the end each encoder (and a random one)
    fine-tuned on SST-2."""

    def __init__(self, args: argparse.Namespace):
        from electra_lightning.model.electra import ModelSize

        self.cuda = args.device == "cuda"
        parts = ["inaugural"] if args.quick else CORPUS_PARTS
        # two runs side by side on the CPU's cores; one after the other on a GPU
        super().__init__(
            "electra_vs_mlm", args, [str(CORPUS / p) for p in parts], 1 if self.cuda else 2
        )
        if self.cuda:
            small = ModelSize(preset="small", max_position_embeddings=self.seq).resolved()
            self.size = asdict(small)
            self.batch_size = CUDA_BATCH
            device = [
                f"--data.batch_size={CUDA_BATCH}",
                "--trainer.accelerator=gpu",
                "--trainer.precision=bf16-mixed",
                "--data.num_workers=4",
            ]
        else:
            self.size, device = dict(CPU_SIZE), []
        self.extra_args = [
            *(f"--model.size.{k}={v}" for k, v in self.size.items() if k != "preset"),
            *device,
            *(QUICK if self.quick else []),
        ]

    def make_plan(self) -> dict:
        points = 2 if self.quick else self.args.points
        return self.equal_flops_plan(points, 20, 30)  # quick: two points of 10 steps (MLM: 11)

    def points(self, run_dir: Path) -> dict[int, Path]:
        """Step → checkpoint of every evaluation point of a finished run."""
        found = {}
        for path in (run_dir / "checkpoints").glob("point-step=*.ckpt"):
            found[int(path.stem.split("=")[1])] = path
        return dict(sorted(found.items()))

    def probe_point(self, name: str, step: int, source: Path) -> dict[str, float]:
        """Probe scores of one checkpoint (or the random encoder's directory), cached."""
        store = self.root / "probe" / name / f"step-{step}.json"
        known = store.exists()
        scores = self.probe(store, source, "cuda" if self.cuda else "cpu")
        if not known:
            log(f"probe {name} step {step}: {scores}")
        return scores

    def finetune(self, name: str, init: Path) -> list[dict]:
        """Fine-tune on the full SST-2 training set (1 epoch, configs/finetune/sst2.yaml
        otherwise), ``--seeds`` seeds; dev metrics of each seed (run_glue resumes and locks)."""
        limit = 0 if self.quick else self.args.finetune_examples
        out = self.root / ("sst2" if not limit else f"sst2-first-{limit}") / name
        extra = ["--data.limit_train_examples=64", "--trainer.limit_val_batches=2"]
        device = ["--trainer.accelerator=gpu", "--trainer.precision=bf16-mixed"]
        tune = [
            "--trainer.max_epochs=1",
            *([f"--data.limit_train_examples={limit}"] if limit else []),
            *(extra if self.quick else []),
            *(device if self.cuda else []),
        ]
        run_glue(init, ["sst2"], 1 if self.quick else self.args.seeds, out, tune, self.env)
        return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]

    def knob_plan(self) -> dict[str, dict]:
        steps16 = 8 if self.quick else self.args.knob_steps
        return knobs.probe_plan(steps16, self.quick) if steps16 else {}

    def knob_probes(self) -> dict[str, dict]:
        """The short knob probes (``--knob_steps``; two of them in quick mode): by knob name,
        every validation and the linear probe of the last checkpoint; {} when not asked for."""
        plan = self.knob_plan()
        dirs = self.parallel(
            {
                name: (name, p["overrides"], p["steps"], p["steps"])  # one checkpoint: the end
                for name, p in plan.items()
            },
            lambda name, overrides, steps, every: self.pretrain(
                name,
                overrides,
                steps,
                every,
                group="knobs",
                val_every=plan[name]["val_every"],
                val_batches=plan[name]["val_batches"],
            ),
        )
        results = {}
        for name, run_dir in dirs.items():
            vals = knobs.read_probe(run_dir, plan[name]["batch_size"], self.seq)
            steps = plan[name]["steps"]
            probe = self.probe_point(f"knob-{name}", steps, run_dir / "checkpoints" / "last.ckpt")
            results[name] = {"validations": vals, "probe": probe}
            log(f"knob {name}: val/disc_auc " + " ".join(f"{v['val/disc_auc']:.3f}" for v in vals))
        return results

    def run(self) -> dict:
        plan = self.setup()
        runs = {
            "ELECTRA": ("electra", plan["electra_steps"], plan["electra_every"]),
            "MLM": ("mlm", plan["mlm_steps"], plan["mlm_every"]),
        }
        dirs = self.parallel(
            {
                label: (name, OBJECTIVES[label], steps, every)
                for label, (name, steps, every) in runs.items()
            },
            lambda name, overrides, steps, every: self.pretrain(
                name, overrides, steps, every, keep_points=True
            ),
        )
        random = self.random_init()
        curve = {"random": self.probe_point("random", 0, random), "knobs": self.knob_probes()}
        for label, (name, _, _) in runs.items():
            for step, ckpt in self.points(dirs[label]).items():
                self.probe_point(name, step, ckpt)
        inits = {label: dirs[label] / "checkpoints" / "last.ckpt" for label in runs}
        inits["no pretraining"] = random
        curve["finetune"] = self.parallel(
            {label: (FINETUNE_NAMES[label], init) for label, init in inits.items()}, self.finetune
        )
        log("done")
        return {"dirs": dirs, **curve}


# -- report -------------------------------------------------------------------------------------
def validation_at(history: Path, step: int) -> dict[str, float]:
    """The validation metrics logged closest to ``step``."""
    with open(history / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("val/loss")]
    if not rows:
        return {}
    row = min(rows, key=lambda r: abs(int(r["step"]) - step))
    return {k: float(v) for k, v in row.items() if k.startswith("val/") and v}


def table_rows(study: CurveStudy, dirs: dict) -> list[dict]:
    """One row per evaluation point: FLOPs, both runs' steps, probes and validation metrics."""
    plan = study.plan
    rows = []
    random = study.probe_point("random", 0, study.random_init())
    rows.append(
        {"point": 0, "flops": 0.0, "ELECTRA": {"step": 0, **random}, "MLM": {"step": 0, **random}}
    )
    histories = {label: merge_history(d) for label, d in dirs.items()}
    for k in range(1, plan["points"] + 1):
        row = {"point": k, "flops": k * plan["electra_every"] * plan["flops_per_electra_step"]}
        for label, name, every in (
            ("ELECTRA", "electra", plan["electra_every"]),
            ("MLM", "mlm", plan["mlm_every"]),
        ):
            step = k * every
            probe = json.loads((study.root / "probe" / name / f"step-{step}.json").read_text())
            row[label] = {"step": step, **probe, **validation_at(histories[label], step)}
        rows.append(row)
    return rows


def markdown_table(rows: list[dict]) -> str:
    head = (
        "| point | pretraining FLOPs | ELECTRA step | MLM step | ELECTRA val/disc_auc | "
        "ELECTRA val/gen_acc | MLM val/gen_acc | SST-2 probe ELECTRA | SST-2 probe MLM | "
        "CoLA probe ELECTRA | CoLA probe MLM |"
    )

    def cell(values: dict, key: str, scale: float = 1.0, digits: int = 3) -> str:
        return f"{scale * values[key]:.{digits}f}" if key in values else "—"

    lines = [head, "|---" * 11 + "|"]
    for r in rows:
        e, m = r["ELECTRA"], r["MLM"]
        lines.append(
            f"| {r['point']} | {r['flops']:.2e} | {e['step']} | {m['step']} | "
            f"{cell(e, 'val/disc_auc')} | {cell(e, 'val/gen_acc')} | {cell(m, 'val/gen_acc')} | "
            f"{e['sst2']:.1f} | {m['sst2']:.1f} | {e['cola']:.1f} | {m['cola']:.1f} |"
        )
    return "\n".join(lines)


def finetune_table(results: dict[str, list[dict]]) -> str:
    keys = ["acc", "precision", "recall", "f1"]
    lines = ["| encoder | seeds | " + " | ".join(keys) + " |", "|---" * (len(keys) + 2) + "|"]
    for label, records in results.items():
        cells = []
        for key in keys:
            values = [100 * r["metrics"][key] for r in sorted(records, key=lambda r: r["seed"])]
            cells.append(" / ".join(f"{v:.1f}" for v in values))
        lines.append(f"| {label} | {len(records)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict], output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    flops = [r["flops"] for r in rows]
    panels = [
        ("SST-2 linear probe (accuracy %)", "sst2", ["ELECTRA", "MLM"]),
        ("CoLA linear probe (MCC × 100)", "cola", ["ELECTRA", "MLM"]),
        ("masked-token accuracy (val/gen_acc)", "val/gen_acc", ["ELECTRA", "MLM"]),
        ("replaced-token detection ROC AUC (val/disc_auc)", "val/disc_auc", ["ELECTRA"]),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6))
    colors = {"ELECTRA": "tab:red", "MLM": "tab:blue"}
    for ax, (title, key, labels) in zip(axes, panels, strict=True):
        for label in labels:
            points = [
                (f, r[label][key]) for f, r in zip(flops, rows, strict=True) if key in r[label]
            ]
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", color=colors[label], label=label)
        if key == "val/disc_auc":
            ax.axhline(0.5, color="grey", linestyle=":", label="chance")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("pretraining FLOPs")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    plt.close(fig)


def report(study: CurveStudy, result: dict) -> None:
    out = HERE if not study.quick else study.root
    rows = table_rows(study, result["dirs"])
    plot(rows, out / "curve.png")
    target = out / "results"
    target.mkdir(exist_ok=True)  # the source data of the table and figure (runs/ is not committed)
    (target / "plan.json").write_text(json.dumps(study.plan, indent=1) + "\n")
    (target / "curve.json").write_text(json.dumps(rows, indent=1) + "\n")
    (target / "sst2-finetune.json").write_text(json.dumps(result["finetune"], indent=1) + "\n")
    knob_section = ""
    if result["knobs"]:
        knob_plan = study.knob_plan()
        knobs.save(result["knobs"], knob_plan, target)
        knobs.knob_plot(result["knobs"], out / "knobs.png")
        baseline = result["knobs"]["baseline"]["validations"]
        knob_section = f"""## Knob probes: what moves the discriminator off the plateau sooner

Each probe trains {baseline[-1]["tokens"]:,} tokens (the baseline: {knob_plan["baseline"]["steps"]} steps of {study.recipe["data"]["batch_size"]} × {study.seq}) with its
own schedule (10% warmup, linear decay to 0 at its last step), ELECTRA only, and validates
{len(baseline)} times on the first ≥ {knobs.VAL_SEQUENCES} WikiText-2 test sequences; the linear probe
(as above) reads its last checkpoint. One seed each.

![val/disc_auc of the knob probes](knobs.png)

{knobs.knob_table(result["knobs"])}
"""
    for label, run_dir in result["dirs"].items():
        (target / f"pretrain-{label.lower()}.csv").write_text(
            (merge_history(run_dir) / "metrics.csv").read_text()
        )
    plan, args = study.plan, study.args
    if study.quick:
        command = "--quick"
    elif args.steps:
        command = f"--steps {args.steps} --points {plan['points']} --seeds {args.seeds}"
        if args.finetune_examples:
            command += f" --finetune_examples {args.finetune_examples}"
        if args.knob_steps:
            command += f" --knob_steps {args.knob_steps}"
    else:
        command = f"--device {args.device} --budget_minutes {args.budget_minutes:g}"
    notes = HERE / "NOTES.md"
    sizes = study.sizes()
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores" + (
        ", one GPU" if study.cuda else ", no GPU"
    )
    readme = f"""# Experiment 1 — ELECTRA vs MLM over pretraining compute

- **Command**: `python -m experiments.electra_vs_mlm.run {command}` (resumes when re-run;
  `--quick` is the CI smoke test, `--device cuda --budget_minutes 3` the GPU version)
- **Machine**: {machine}; the two pretraining runs side by side, {plan["threads_per_run"]} thread(s) each
- **Budget**: ELECTRA {plan["electra_steps"]} steps, MLM {plan["mlm_steps"]} steps of
  {study.batch_size} × {study.seq} tokens: equal training FLOPs ({plan["flops_ratio"]:.3f}× per
  ELECTRA step, generator included), {plan["points"]} evaluation points of equal FLOPs each
- **Model**: `experiments/pretrain.yaml` with {sizes["num_layers"]} layers, hidden {sizes["hidden_size"]},
  {sizes["num_heads"]} heads, FFN {sizes["intermediate_size"]}, embeddings {sizes["embedding_size"]},
  generator 1/4 of the width; AdamW lr 5e-4, 10% warmup, linear decay to 0 at the last step
- **Data**: {", ".join("`" + p + "`" for p in (["inaugural"] if study.quick else CORPUS_PARTS))} of
  `../shared/data/nltk_english_text` (`reuters/cats.txt` left out: topic labels, not text),
  streamed with the default shuffle (file ranges per epoch, documents in blocks of 1024);
  WordPiece {"2k" if study.quick else "16k"} trained on the same files; validation: 20 fixed batches of WikiText-2 test
- **Evaluation at every point**: linear probe of the frozen encoder (mean-pooled last layer,
  logistic regression on the first {study.probe_limit} training examples, GLUE dev, deterministic);
  `val/disc_auc` and `val/gen_acc` of the validation logged nearest to the point.
  **At the last point**: fine-tuning on {f"the first {args.finetune_examples:,} examples of" if args.finetune_examples else "the full"} SST-2 training set, 1 epoch,
  `configs/finetune/sst2.yaml` otherwise, seeds {", ".join(str(s) for s in range(1, (1 if study.quick else args.seeds) + 1))}
{"- **Quick smoke run: the numbers mean nothing.**" if study.quick else ""}
## Score vs pretraining compute

Point 0 is the randomly initialised encoder (no pretraining).

![score vs pretraining FLOPs](curve.png)

{markdown_table(rows)}

## Fine-tuned on SST-2 at the last point (dev; every seed, in order)

{finetune_table(result["finetune"])}

{knob_section}
{notes.read_text().strip() if notes.exists() and not study.quick else ""}
"""
    (out / "README.md").write_text(readme)
    print(readme)


def main() -> None:
    args = parse_args()
    started = time.time()
    study = CurveStudy(args)
    result = study.run()
    report(study, result)
    log(f"study finished in {(time.time() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
