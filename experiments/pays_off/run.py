"""Experiment 4 — does pretraining pay off? In-domain ELECTRA and MLM vs no pretraining, SST-2 with few labels.

    python -m experiments.pays_off.run --budget_minutes 20     # the documented run (2 CPU cores)
    python -m experiments.pays_off.run --quick                 # seconds-scale smoke test (CI)
    python -m experiments.pays_off.run --device cuda --budget_minutes 5   # one GPU, ELECTRA-Small

The pretraining text is in-domain and unlabelled: the movie reviews of
``../shared/data/movie_reviews_polarity`` (cv000–cv899; cv900–cv999 are the held-out validation
text) and the SST-2 *training* sentences without their labels. SST-2 dev and test text is never
in it: the corpus files are written from those two sources only, and every document holding a
dev or test sentence verbatim is dropped and counted (``corpus/check.json``). A WordPiece
vocabulary is trained on the same text.

Three encoders are pretrained at equal training FLOPs — ELECTRA, ELECTRA with whole-word masking
(same steps) and MLM (the steps of the same FLOPs) — with one recipe for all: the official
ELECTRA-Small batch of 128 sequences and lr 5e-4 at 64 tokens per sequence (SST-2 sentences are
short), the ``experiments/pretrain.yaml`` encoder at hidden 128 (experiment 1's model). The
``DownstreamProbe`` callback logs the SST-2 linear probe during each run (``probe/sst2_acc``).
Each encoder and a randomly initialised one are then fine-tuned on the first 250, 1,000, 4,000
and all 67,349 SST-2 training examples with 3 seeds and scored on SST-2 dev (accuracy, F1).
Re-running resumes every stage. Writes README.md here with the tables, the plot and the reading
(NOTES.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import shutil
import statistics
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from experiments.common import EXPERIMENTS, Study
from experiments.probe import SHARED
from experiments.runner import GLUE, log, merge_history, run_glue

NAME = "pays_off"
REVIEWS = SHARED / "movie_reviews_polarity" / "movie_reviews.tsv"
SST2 = SHARED / "glue" / "SST-2"
HELD_OUT = 900  # reviews cv900–cv999: validation text, not trained on (the usual 1,800 / 200 split)
CPU_SIZE = {"num_layers": 4, "hidden_size": 128, "num_heads": 2, "intermediate_size": 512}
SEQ = 64
BATCH = 128
LR = 5e-4
POINTS = 8  # probes (and checkpoints) per pretraining run, at equal FLOPs for both objectives
LABELS = [250, 1000, 4000, 0]  # SST-2 training examples fine-tuned on; 0: all of them
MIN_STEPS = 200  # few labels: at least this many optimizer steps (more epochs), 3 epochs otherwise
ENCODERS = {  # label: (objective, pretraining overrides); None: no pretraining
    "no pretraining": None,
    # MLM replaces its masked positions 80/10/10 as BERT (experiment 1 likewise)
    "MLM": (
        "mlm",
        ["--model.objective=mlm", "--data.mask_token_prob=0.8", "--data.random_token_prob=0.1"],
    ),
    "ELECTRA": ("electra", []),
    "ELECTRA + whole-word masking": ("electra", ["--data.whole_word_masking=true"]),
}
RUNS = {"no pretraining": "random", "MLM": "mlm", "ELECTRA": "electra"}
RUNS["ELECTRA + whole-word masking"] = "electra-wwm"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument(
        "--budget_minutes",
        type=float,
        default=20,
        help="wall-clock minutes of one ELECTRA pretraining run (measured once, converted to "
        "steps and kept in ROOT/plan.json)",
    )
    p.add_argument("--steps", type=int, help="ELECTRA steps (default: from --budget_minutes)")
    p.add_argument("--seeds", type=int, default=3, help="fine-tuning seeds per label count")
    p.add_argument(
        "--full_seeds",
        type=int,
        default=3,
        help="fine-tuning seeds on the full training set (one epoch of 67,349 examples each)",
    )
    p.add_argument("--labels", type=int, nargs="+", default=LABELS, help="0: the full set")
    p.add_argument("--quick", action="store_true", help="seconds-scale smoke test (CI)")
    p.add_argument("--output_dir", default=str(EXPERIMENTS / "runs" / NAME))
    p.add_argument("--workers", type=int, default=2, help="runs in parallel (CPU)")
    return p.parse_args(argv)


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def write_corpus(directory: Path, quick: bool) -> dict:
    """The pretraining text as JSONL (``train.jsonl``: reviews cv000–cv899 and SST-2 training
    sentences; ``val.jsonl``: reviews cv900–cv999), with every document that holds an SST-2 dev or
    test sentence dropped; returns the check (counts), also kept in ``check.json``."""
    check_file = directory / "check.json"
    if check_file.exists():
        return json.loads(check_file.read_text())
    csv.field_size_limit(1 << 24)
    with open(REVIEWS, newline="") as f:
        reviews = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    with open(SST2 / "train.tsv", newline="") as f:
        sst2 = [r["sentence"] for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]
    held_out = [r for r in reviews if int(r["file"][2:5]) >= HELD_OUT]
    train_reviews = [r["sentence"] for r in reviews if int(r["file"][2:5]) < HELD_OUT]
    if quick:
        train_reviews, sst2, held_out = train_reviews[:60], sst2[:3000], held_out[:20]
    documents = [normalise(t) for t in train_reviews + sst2]
    # dev/test sentences (SST-2's own dev and test text) looked up verbatim in the training text
    evaluation = []
    for split in ("dev.tsv", "test.tsv"):
        with open(SST2 / split, newline="") as f:
            rows = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            evaluation += [normalise(r["sentence"]) for r in rows]
    joined = "\n".join(documents)
    starts, offset = [], 0
    for document in documents:
        starts.append(offset)
        offset += len(document) + 1
    import bisect

    dropped = set()
    found = 0
    for sentence in set(evaluation):
        if len(sentence.split()) < 4:  # "great fun ." is a phrase, not a leaked sentence
            continue
        position = joined.find(sentence)
        found += position >= 0
        while position >= 0:
            dropped.add(bisect.bisect_right(starts, position) - 1)
            position = joined.find(sentence, position + 1)
    kept = [d for i, d in enumerate(documents) if i not in dropped]
    directory.mkdir(parents=True, exist_ok=True)
    for name, texts in (("train", kept), ("val", [normalise(r["sentence"]) for r in held_out])):
        with open(directory / f"{name}.jsonl", "w") as f:
            for text in texts:
                f.write(json.dumps({"text": text}) + "\n")
    check = {
        "reviews_trained_on": len(train_reviews),
        "reviews_held_out_for_validation": len(held_out),
        "sst2_train_sentences": len(sst2),
        "sst2_dev_test_sentences_checked": len(set(evaluation)),
        "dev_test_sentences_found_in_training_text": found,
        "documents_dropped": len(dropped),
        "documents_kept": len(kept),
        "training_words": sum(len(d.split()) for d in kept),
    }
    check_file.write_text(json.dumps(check, indent=1) + "\n")
    log(f"corpus: {check}")
    return check


class InDomainStudy(Study):
    """A study on this experiment's in-domain corpus (written under ROOT/corpus, checked once) at
    ``SEQ`` tokens and batches of ``BATCH`` (16 in quick mode); experiment 5 shares it."""

    def __init__(self, name: str, args: argparse.Namespace):
        self.cuda = args.device == "cuda"
        root = Path(args.output_dir).resolve()
        self.check = write_corpus(root / "corpus", args.quick)
        super().__init__(name, args, [str(root / "corpus" / "train.jsonl")], 1 if self.cuda else 2)
        self.workers = 1 if self.cuda else max(1, args.workers)
        self.seq, self.batch_size = SEQ, (16 if args.quick else BATCH)


class PaysOff(InDomainStudy):
    def __init__(self, args: argparse.Namespace):
        super().__init__(NAME, args)
        if self.cuda:
            from electra_lightning.model.electra import ModelSize

            self.size = asdict(ModelSize(preset="small", max_position_embeddings=SEQ).resolved())
            device = [
                "--trainer.accelerator=gpu",
                "--trainer.precision=bf16-mixed",
                "--data.num_workers=4",
            ]
        else:
            self.size = {**CPU_SIZE, "max_position_embeddings": SEQ}
            device = []
        self.device = device
        self.extra_args = [
            *(f"--model.size.{k}={v}" for k, v in self.size.items() if k != "preset"),
            f"--data.max_seq_length={SEQ}",
            f"--data.batch_size={self.batch_size}",
            f"--model.optimizer.init_args.lr={LR}",
            *device,
            *(["--data.shuffle_block=64"] if self.quick else []),
        ]
        self.labels = [250, 0] if self.quick else args.labels
        self.seeds = 1 if self.quick else args.seeds
        self.probe_tasks = ["sst2"]
        self._histories: dict[str, Path] = {}

    # -- plan -----------------------------------------------------------------------------------
    def make_plan(self) -> dict:
        points = 2 if self.quick else POINTS
        plan = self.equal_flops_plan(points, 2 * 4, 24, val_batches=1)
        return {**plan, "budget_minutes": self.args.budget_minutes}

    # -- stages ---------------------------------------------------------------------------------
    def pretrain_encoder(self, label: str) -> Path:
        objective, overrides = ENCODERS[label]
        key = "mlm" if objective == "mlm" else "electra"
        steps, every = self.plan[f"{key}_steps"], self.plan[f"{key}_every"]
        probe = [
            "--probe.tasks=[sst2]",
            f"--probe.data_dir={GLUE}",
            f"--probe.every_n_steps={every}",
            f"--probe.train_examples={self.probe_limit}",
            f"--probe.dev_examples={128 if self.quick else 0}",
        ]
        run_dir = self.pretrain(
            RUNS[label],
            [
                *overrides,
                f"--data.val_files={self.root / 'corpus' / 'val.jsonl'}",
                *probe,
            ],
            steps,
            every,
            val_every=every,
            val_batches=2 if self.quick else 10,
        )
        return self.export(run_dir)

    def finetune_args(self, labels: int) -> list[str]:
        if labels:
            steps_per_epoch = math.ceil(labels / 32)
            epochs = max(3, math.ceil(MIN_STEPS / steps_per_epoch))
            limit = [f"--data.limit_train_examples={labels}"]
        else:
            epochs, limit = 1, []  # the full set: one epoch (the official recipe: 3)
        if self.quick:
            epochs, limit = 1, ["--data.limit_train_examples=64", "--trainer.limit_val_batches=2"]
        return [
            *limit,
            f"--trainer.max_epochs={epochs}",
            f"--data.max_seq_length={SEQ}",
            "--trainer.num_sanity_val_steps=0",
            "--trainer.check_val_every_n_epoch=1000",  # scored once, after the last epoch
            *self.device[:2],
        ]

    def glue_dir(self, label: str, labels: int) -> Path:
        return self.root / "glue" / RUNS[label] / f"n{labels or 'all'}"

    def finetune(self, label: str, labels: int, init) -> None:
        init = init.result() if hasattr(init, "result") else init
        run_glue(
            init,
            ["sst2"],
            self.seeds if labels else min(self.seeds, self.args.full_seeds),
            self.glue_dir(label, labels),
            self.finetune_args(labels),
            self.env,
        )
        log(f"done: {label}, {labels or 'all'} labels")

    def run(self) -> None:
        """Pretraining first (two runs at a time), the random encoder's fine-tuning beside the
        third; then every (encoder, label count) fine-tuning, the longest first."""
        self.setup()
        random = self.random_init()
        order = sorted(self.labels, key=lambda n: -(n or 10**9))
        with ThreadPoolExecutor(self.workers) as pool:
            inits = {
                label: pool.submit(self.pretrain_encoder, label)
                for label, spec in ENCODERS.items()
                if spec is not None
            }
            inits["no pretraining"] = random
            jobs = [pool.submit(self.finetune, "no pretraining", n, random) for n in order]
            jobs += [  # in the order their pretraining ends: a worker never waits long
                pool.submit(self.finetune, label, n, inits[label])
                for label in inits
                if label != "no pretraining"
                for n in order
            ]
            for job in [*inits.values(), *jobs]:
                if hasattr(job, "result"):
                    job.result()

    # -- results --------------------------------------------------------------------------------
    def results(self, label: str, labels: int) -> list[dict]:
        store = self.glue_dir(label, labels) / "results.jsonl"
        return [json.loads(line)["metrics"] for line in store.read_text().splitlines()]

    def probe_curve(self, label: str) -> list[tuple[float, float]]:
        """(pretraining FLOPs, SST-2 probe accuracy %) of a run, from its logged ``probe/sst2_acc``;
        the random encoder is the point at 0 FLOPs of every curve."""
        start = (0.0, self.probe(self.root / "probe" / "random.json", self.random_init())["sst2"])
        if ENCODERS[label] is None:
            return [start]
        history = self.history(label)
        per_step = self.plan["flops_per_electra_step"]
        if ENCODERS[label][0] == "mlm":
            per_step /= self.plan["flops_ratio"]
        points = [start]
        with open(history / "metrics.csv") as f:
            for row in csv.DictReader(f):
                if row.get("probe/sst2_acc"):
                    points.append((int(row["step"]) * per_step, 100 * float(row["probe/sst2_acc"])))
        return sorted(dict(points).items())

    def history(self, label: str) -> Path:
        """A pretraining run's whole logged history (its versions joined once per report)."""
        if label not in self._histories:
            self._histories[label] = merge_history(self.root / "pretrain" / RUNS[label])
        return self._histories[label]

    def encoder_dir(self, label: str) -> Path:
        if ENCODERS[label] is None:
            return self.random_init()
        return self.export(self.root / "pretrain" / RUNS[label])

    def geometry(self, label: str) -> list[dict]:
        """Per layer (embeddings first) of the encoder, how much its mean-pooled features of the
        first 500 SST-2 dev sentences differ between sentences: their mean pairwise cosine
        similarity (1: every sentence the same direction) and the share of the features' energy
        that is not the common mean vector (0: every sentence the same vector). Deterministic,
        seconds."""
        import torch
        from transformers import AutoModel, AutoTokenizer

        from electra_lightning.finetune.probe import glue_split

        encoder = AutoModel.from_pretrained(self.encoder_dir(label)).eval()
        tokenizer = AutoTokenizer.from_pretrained(self.tokenizer)
        dev = [e.text for e in glue_split(str(GLUE), "sst2", "dev", 500)]
        batch = tokenizer(dev, padding=True, truncation=True, max_length=SEQ, return_tensors="pt")
        with torch.no_grad():
            layers = encoder(**batch, output_hidden_states=True).hidden_states
        mask = batch["attention_mask"].unsqueeze(-1).float()
        rows = []
        for hidden in layers:
            pooled = (hidden * mask).sum(1) / mask.sum(1)
            unit = torch.nn.functional.normalize(pooled, dim=-1)
            n = len(unit)
            cosine = float(((unit @ unit.T).sum() - n) / (n * n - n))
            specific = (pooled - pooled.mean(0)).pow(2).sum() / pooled.pow(2).sum()
            rows.append({"cosine": cosine, "sentence_specific": float(specific)})
        return rows

    def last_logged(self, label: str, key: str) -> float | None:
        with open(self.history(label) / "metrics.csv") as f:
            values = [float(r[key]) for r in csv.DictReader(f) if r.get(key)]
        return values[-1] if values else None


def spread(values: list[float]) -> str:
    mean = statistics.mean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.1f} ± {std:.1f}"


def save_results(study: PaysOff, results_dir: Path, scores, curves, geometry) -> None:
    """What the tables and the plot are made of, kept beside the README (runs/ is not
    committed)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(study.root / "plan.json", results_dir / "plan.json")
    shutil.copy(study.root / "corpus" / "check.json", results_dir / "corpus-check.json")
    (results_dir / "finetune.json").write_text(json.dumps(scores, indent=1) + "\n")
    (results_dir / "probe-curves.json").write_text(json.dumps(curves, indent=1) + "\n")
    (results_dir / "geometry.json").write_text(json.dumps(geometry, indent=1) + "\n")
    for label, run in RUNS.items():
        if ENCODERS[label] is not None:
            history = study.history(label)
            shutil.copy(history / "metrics.csv", results_dir / f"pretrain-{run}.csv")


def plot_probe_curves(curves, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 5), dpi=100)
    for label, points in curves.items():
        if ENCODERS[label] is None:
            axis.axhline(points[0][1], color="grey", linestyle=":", label=label)
            continue
        axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    axis.set_xlabel("pretraining FLOPs (generator included)")
    axis.set_ylabel("SST-2 dev accuracy of the linear probe (%)")
    axis.set_title("DownstreamProbe (probe/sst2_acc) over pretraining compute")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def labels_name(n: int) -> str:
    return f"{n:,}" if n else "all 67,349"


def finetune_table(study: PaysOff, scores) -> list[str]:
    head = " | ".join(labels_name(n) for n in study.labels)
    table = [f"| encoder | {head} |", "|---" * (len(study.labels) + 1) + "|"]
    for metric in ("acc", "f1"):
        for label in ENCODERS:
            cells = [spread([100 * s[metric] for s in scores[label][n]]) for n in study.labels]
            table.append(f"| {label} ({metric}) | " + " | ".join(cells) + " |")
    return table


def findings(study: PaysOff, scores) -> list[str]:
    """Each pretrained encoder's accuracy gap to no pretraining, per label count, and whether
    the seeds' ranges overlap."""
    found = []
    for n in study.labels:
        base = [100 * s["acc"] for s in scores["no pretraining"][n]]
        for label in ENCODERS:
            if ENCODERS[label] is None:
                continue
            values = [100 * s["acc"] for s in scores[label][n]]
            gap = statistics.mean(values) - statistics.mean(base)
            separate = min(values) > max(base) or max(values) < min(base)
            found.append(
                f"{labels_name(n)} labels, {label} − no pretraining: {gap:+.1f} accuracy points"
                + (
                    " (every seed on one side)"
                    if separate
                    else " (seed ranges overlap: no difference)"
                )
            )
    return found


def pretraining_table(study: PaysOff, curves) -> list[str]:
    plan = study.plan
    pre = ["| run | steps | pretraining FLOPs | val/disc_auc | val/gen_acc | last probe/sst2_acc |"]
    pre.append("|---|---|---|---|---|---|")
    for label in RUNS:
        if ENCODERS[label] is None:
            pre.append(f"| {label} | 0 | 0 | — | — | {curves[label][0][1]:.1f} |")
            continue
        key = "mlm" if ENCODERS[label][0] == "mlm" else "electra"
        auc = study.last_logged(label, "val/disc_auc")
        gen = study.last_logged(label, "val/gen_acc")
        pre.append(
            f"| {label} | {plan[f'{key}_steps']} | {curves[label][-1][0]:.2e} | "
            f"{'—' if auc is None else f'{auc:.3f}'} | {'—' if gen is None else f'{gen:.3f}'} | "
            f"{curves[label][-1][1]:.1f} |"
        )
    return pre


def geometry_table(geometry) -> list[str]:
    depth = len(geometry["no pretraining"])
    shape = [
        "| encoder | " + " | ".join(["embeddings"] + [f"layer {i}" for i in range(1, depth)]) + " |"
    ]
    shape.append("|---" * (depth + 1) + "|")
    for label, layers in geometry.items():
        cells = [f"{g['cosine']:.3f} / {100 * g['sentence_specific']:.1f}%" for g in layers]
        shape.append(f"| {label} | " + " | ".join(cells) + " |")
    return shape


def command_line(study: PaysOff) -> str:
    """The command that reproduces this README."""
    plan = study.plan
    command = "python -m experiments.pays_off.run " + (
        "--quick"
        if study.quick
        else (
            f"--steps {plan['electra_steps']}"
            if plan["seconds_per_step"] is None
            else f"--budget_minutes {plan['budget_minutes']:g}"
        )
    )
    if study.cuda:
        command += " --device cuda"
    return command


def method(study: PaysOff) -> str:
    """The README's head: the command, the machine, the text, the recipes."""
    command = command_line(study)
    plan, check = study.plan, study.check
    cpu = platform.processor() or platform.machine()
    per_step = plan["seconds_per_step"]
    return f"""# Experiment 4 — does pretraining pay off?

- **Command**: `{command}` (resumes when re-run; `--quick` is the CI smoke test,
  `--device cuda --budget_minutes 5` the GPU version: ELECTRA-Small, bf16)
- **Machine**: {cpu}, {os.cpu_count()} CPU cores, {"one GPU" if study.cuda else "no GPU"} · {study.workers} runs in parallel,
  {study.env["OMP_NUM_THREADS"]} thread(s) each
- **Pretraining text** (in-domain, unlabelled): movie reviews cv000–cv{HELD_OUT - 1:03d} of
  `../shared/data/movie_reviews_polarity` ({check["reviews_trained_on"]:,}) and the SST-2 training sentences without labels
  ({check["sst2_train_sentences"]:,}); {check["training_words"]:,} words. No SST-2 dev or test text: the
  {check["sst2_dev_test_sentences_checked"]:,} dev/test sentences were looked up verbatim (those of ≥ 4 words):
  {check["dev_test_sentences_found_in_training_text"]} found, {check["documents_dropped"]} training documents dropped
  (`results/corpus-check.json`). Validation text: reviews cv{HELD_OUT}–cv999
  ({check["reviews_held_out_for_validation"]}). WordPiece {"2k" if study.quick else "16k"} trained on the training text.
- **Pretraining** (one recipe for both objectives): batch {study.batch_size} × {study.seq} tokens, AdamW lr {LR:g},
  10% warmup, linear decay to 0; encoder {", ".join(f"{k} {v}" for k, v in study.size.items() if k != "preset")},
  generator 1/4 of the width, shared embeddings. Equal training FLOPs: ELECTRA (and whole-word
  masking) {plan["electra_steps"]} steps, MLM {plan["mlm_steps"]} steps ({plan["flops_ratio"]:.3f}× per ELECTRA step);
  {"" if per_step is None else f"the budget of {plan['budget_minutes']:g} min per ELECTRA run at a measured {per_step:.2f} s/step; "}the
  SST-2 probe every {plan["electra_every"]} (MLM {plan["mlm_every"]}) steps.
- **Fine-tuning**: SST-2, the first N training examples (the same ones for every encoder), the
  `configs/finetune/sst2.yaml` recipe (lr 3e-4, batch 32, layer decay 0.8, 10% warmup) at {SEQ} tokens,
  3 epochs or at least {MIN_STEPS} steps for few labels (250: {math.ceil(MIN_STEPS / 8)} epochs, 1,000: 7), one epoch on the full set;
  scored once at the end on all 872 dev sentences; seeds 1–{study.seeds}, mean ± standard deviation.
{"- **Quick smoke run: the numbers mean nothing.**" if study.quick else ""}
"""


def report(study: PaysOff) -> None:
    out = study.root if study.quick else EXPERIMENTS / NAME
    scores = {label: {n: study.results(label, n) for n in study.labels} for label in ENCODERS}
    curves = {label: study.probe_curve(label) for label in ENCODERS}
    geometry = {label: study.geometry(label) for label in ENCODERS}
    save_results(study, out / "results", scores, curves, geometry)
    plot_probe_curves(curves, out / "probe.png")
    notes = EXPERIMENTS / NAME / "NOTES.md"
    readme = (
        method(study)
        + f"""## SST-2 dev after fine-tuning (mean ± std over {study.seeds} seed(s); columns: training examples)

{chr(10).join(finetune_table(study, scores))}

Every seed's scores: `results/finetune.json`. The majority class scores 50.9% accuracy on dev.

{chr(10).join(f"- {f}" for f in findings(study, scores))}

## DownstreamProbe over pretraining FLOPs

![probe over FLOPs](probe.png)

Logistic regression on the frozen discriminator's mean-pooled last layer, fitted on the first
{study.probe_limit} SST-2 training examples, scored on SST-2 dev, logged by the callback as
`probe/sst2_acc` during pretraining (`results/pretrain-*.csv`, `results/probe-curves.json`).

{chr(10).join(pretraining_table(study, curves))}

## What the encoders hand to fine-tuning

Mean-pooled features of the first 500 SST-2 dev sentences at each layer, per encoder: their mean
pairwise cosine similarity / the share of their energy that differs between sentences (the rest
is one vector common to all; 1.000 / 0% would be every sentence the same vector;
`results/geometry.json`).

{chr(10).join(geometry_table(geometry))}

{notes.read_text().strip() if notes.exists() and not study.quick else ""}
"""
    )
    (out / "README.md").write_text(readme)
    print(readme)


def main(argv=None) -> None:
    args = parse_args(argv)
    if not REVIEWS.exists() or not (SST2 / "dev.tsv").exists():
        raise SystemExit(f"error: needs {REVIEWS} and {SST2} (../shared/data)")
    study = PaysOff(args)
    study.run()
    report(study)


if __name__ == "__main__":
    main()
