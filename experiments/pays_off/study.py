"""Experiment 4's study: the in-domain corpus (shared with experiment 5), the recipe, the plan and
every stage (pretraining with its gates, the grid, the fine-tuning on the subsets); ``run.py``
runs it, ``report.py`` reads it."""

from __future__ import annotations

import argparse
import bisect
import csv
import json
import math
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import yaml

from electra_lightning.data.datamodule import load_tokenizer_info
from electra_lightning.model.electra import ModelSize, build_pretraining_model
from experiments.common import Study
from experiments.pays_off.gates import encoder_gates, gate_line
from experiments.pays_off.subsets import (
    GRID_LABELS,
    SST2,
    read,
    split_train,
    subset,
    write_task,
)
from experiments.probe import SHARED
from experiments.runner import GLUE, REPO, log, merge_history

NAME = "pays_off"
REVIEWS = SHARED / "movie_reviews_polarity" / "movie_reviews.tsv"
HELD_OUT = 900  # reviews cv900–cv999: validation text, not trained on (the usual 1,800 / 200 split)
CPU_SIZE = {"num_layers": 4, "hidden_size": 128, "num_heads": 2, "intermediate_size": 512}
SEQ = 64
BATCH = 128
RECIPE_FILE = REPO / "configs" / "cpu-small-budget.yaml"  # issue #29 item 2's recipe
# ELECTRA steps on 2 CPU cores: the recipe's generator passed 0.5 nats between steps 300 and 450
# (experiments/plateau); its 1,500 steps do not fit this study's ~75 min next to the fine-tuning
STEPS = 450
POINTS = 10  # validations (and checkpoints) per pretraining run, at equal FLOPs for both objectives
LABELS = [250, 1000, 4000, 0]  # SST-2 training examples fine-tuned on; 0: all of them
SEEDS = 5  # few labels: seed s fine-tunes on subset s (subsets.py)
MIN_STEPS = 200  # few labels: at least this many optimizer steps (more epochs), 3 epochs otherwise
FULL_EPOCHS = 1  # the full set (the recipe's 3 do not fit the budget: ~3 × 8 min per encoder)
GRID = [(3e-4, 0.8), (3e-4, 1.0), (1e-3, 1.0)]  # (lr, layer-wise decay), picked per encoder
ENCODERS = {  # label: (objective, pretraining overrides); None: no pretraining
    "no pretraining": None,
    # MLM replaces its masked positions 80/10/10 as BERT (experiment 1 likewise)
    "MLM": (
        "mlm",
        ["--model.objective=mlm", "--data.mask_token_prob=0.8", "--data.random_token_prob=0.1"],
    ),
    "ELECTRA": ("electra", []),
}
RUNS = {"no pretraining": "random", "MLM": "mlm", "ELECTRA": "electra"}


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
        recipe = yaml.safe_load(RECIPE_FILE.read_text())["model"]
        self.lr, self.dropout = recipe["optimizer"]["init_args"]["lr"], recipe["dropout"]
        if self.cuda:
            self.size = asdict(ModelSize(preset="small", max_position_embeddings=SEQ).resolved())
            self.device = [
                "--trainer.accelerator=gpu",
                "--trainer.precision=bf16-mixed",
                "--data.num_workers=4",
            ]
        else:
            self.size, self.device = dict(recipe["size"]), []
        # the recipe's generator width goes to ELECTRA only (an MLM run has no generator)
        self.generator_size = (
            self.size.pop("generator_size", None) or recipe["size"]["generator_size"]
        )
        self.extra_args = [
            *(f"--model.size.{k}={v}" for k, v in self.size.items() if k != "preset"),
            f"--data.max_seq_length={SEQ}",
            f"--data.batch_size={self.batch_size}",
            f"--model.optimizer.init_args.lr={self.lr}",
            f"--model.dropout={self.dropout}",
            *self.device,
            *(["--data.shuffle_block=64"] if self.quick else []),
        ]
        self.labels = [250, 0] if self.quick else args.labels
        self.seeds = 2 if self.quick else args.seeds
        self.full_seeds = args.full_seeds
        self._histories: dict[str, Path] = {}

    def pair(self, objective: str = "electra"):
        """A freshly initialised model of the recipe: its dropout (so the random encoder goes into
        fine-tuning with the same dropout as the pretrained ones) and, for ELECTRA, its generator."""
        size = self.sizes()
        if objective == "electra":
            size = {**size, "generator_size": self.generator_size}
        return build_pretraining_model(
            load_tokenizer_info(str(self.tokenizer)).vocab_size,
            self.seq,
            ModelSize(**size),
            dropout=self.dropout,
            embedding_sharing=self.recipe["model"]["embedding_sharing"],
            objective=objective,
        )

    # -- plan -----------------------------------------------------------------------------------
    def make_plan(self) -> dict:
        points = 2 if self.quick else POINTS
        plan = self.equal_flops_plan(points, 2 * 4, 24, val_batches=1)
        return {**plan, "budget_minutes": self.args.budget_minutes, "grid": GRID}

    # -- stages ---------------------------------------------------------------------------------
    def pretrain_encoder(self, label: str) -> Path:
        """Pretrain (or resume) an encoder, print its gates, return its export."""
        objective, overrides = ENCODERS[label]
        key = "mlm" if objective == "mlm" else "electra"
        steps, every = self.plan[f"{key}_steps"], self.plan[f"{key}_every"]
        val = [f"--data.val_files={self.root / 'corpus' / 'val.jsonl'}"]
        if objective == "electra":
            overrides = [*overrides, f"--model.size.generator_size={self.generator_size}"]
        batches = 2 if self.quick else 8
        run_dir = self.pretrain(
            RUNS[label], [*overrides, *val], steps, every, val_every=every, val_batches=batches
        )
        log(f"gates: {label}: {gate_line(encoder_gates(label, self.history(label)))}")
        return self.export(run_dir)

    def subset_dir(self, labels: int, seed: int) -> Path:
        return self.root / "subsets" / f"n{labels}-s{seed}"

    def write_subsets(self) -> None:
        """Every subset's GLUE folder (dev: SST-2 dev) and the grid's (dev: held-out training)."""
        held_out, pool = split_train()
        dev = read("dev")
        write_task(self.root / "subsets" / "grid", subset(pool, GRID_LABELS, 0), held_out)
        for n in filter(None, self.labels):
            for seed in range(1, self.seeds + 1):
                write_task(self.subset_dir(n, seed), subset(pool, n, seed), dev)

    def finetune_args(self, labels: int) -> list[str]:
        if labels:
            epochs = max(3, math.ceil(MIN_STEPS / math.ceil(labels / 32)))
        else:
            epochs = FULL_EPOCHS
        quick = ["--data.limit_train_examples=64", "--trainer.limit_val_batches=2"]
        return [
            *(quick if self.quick else []),
            f"--trainer.max_epochs={1 if self.quick else epochs}",
            f"--data.max_seq_length={SEQ}",
            "--trainer.num_sanity_val_steps=0",
            "--trainer.check_val_every_n_epoch=1000",  # scored once, after the last epoch
            "--trainer.callbacks.init_args.save_last=false",
            *self.device[:2],
        ]

    def run_jobs(self, label: str, init, jobs: list[dict], folder: Path) -> None:
        """Fine-tune ``init`` on ``jobs`` in one ``finetune.py`` process (none if all are done)."""
        if all((Path(j["out"]) / "result.json").exists() for j in jobs):
            return
        folder.mkdir(parents=True, exist_ok=True)
        spec = folder / "jobs.json"
        spec.write_text(json.dumps({"init": str(init), "jobs": jobs}, indent=1) + "\n")
        command = [sys.executable, "-m", "experiments.pays_off.finetune", str(spec)]
        log(f"$ finetune {label}: {folder.relative_to(self.root)} ({len(jobs)} runs)")
        with open(folder / "log.txt", "a") as f:
            proc = subprocess.run(command, cwd=REPO, env=self.env, stdout=f, stderr=f)
        if proc.returncode:
            raise RuntimeError(f"fine-tuning failed ({proc.returncode}); see {folder / 'log.txt'}")

    def grid(self, label: str, init) -> dict:
        """The (lr, layer-wise decay) of ``GRID`` with the best accuracy on the held-out training
        examples after fine-tuning on the grid's subset (seed 1; the first on a tie)."""
        init = init.result() if hasattr(init, "result") else init
        jobs = [
            {
                "data_dir": str(self.root / "subsets" / "grid"),
                "seed": 1,
                "overrides": [
                    *self.finetune_args(GRID_LABELS),
                    f"--model.learning_rate={lr}",
                    f"--model.layerwise_lr_decay={decay}",
                ],
                "out": str(self.grid_dir(label, lr, decay)),
            }
            for lr, decay in GRID
        ]
        self.run_jobs(label, init, jobs, self.root / "grid" / RUNS[label])
        scores = [self.grid_score(label, lr, decay) for lr, decay in GRID]
        lr, decay = GRID[scores.index(max(scores))]
        log(f"grid: {label}: lr {lr:g}, decay {decay:g} (held-out accuracy {scores})")
        return {"lr": lr, "decay": decay}

    def grid_dir(self, label: str, lr: float, decay: float) -> Path:
        return self.root / "grid" / RUNS[label] / f"lr{lr:g}-decay{decay:g}"

    def grid_score(self, label: str, lr: float, decay: float) -> float:
        record = json.loads((self.grid_dir(label, lr, decay) / "result.json").read_text())
        return record["metrics"]["acc"]

    def finetune(self, label: str, labels: int, init, pick) -> None:
        init = init.result() if hasattr(init, "result") else init
        pick = pick.result() if hasattr(pick, "result") else pick
        setting = [
            f"--model.learning_rate={pick['lr']}",
            f"--model.layerwise_lr_decay={pick['decay']}",
        ]
        seeds = self.seeds if labels else min(self.seeds, self.full_seeds)
        jobs = [
            {
                "data_dir": str(self.subset_dir(labels, seed) if labels else GLUE),
                "seed": seed,
                "overrides": [*self.finetune_args(labels), *setting],
                "out": str(self.glue_dir(label, labels, seed)),
            }
            for seed in range(1, seeds + 1)
        ]
        self.run_jobs(label, init, jobs, self.root / "glue" / RUNS[label] / f"n{labels or 'all'}")
        log(f"done: {label}, {labels or 'all'} labels")

    def glue_dir(self, label: str, labels: int, seed: int) -> Path:
        return self.root / "glue" / RUNS[label] / f"n{labels or 'all'}" / f"seed{seed}"

    def run(self) -> None:
        """Pretraining first (both runs at once), then per encoder the grid, then every (encoder,
        label count) fine-tuning, fewest labels first, on ``workers`` processes."""
        self.setup()
        self.write_subsets()
        random = self.random_init()
        order = sorted(self.labels, key=lambda n: n or 10**9)  # the criteria's first, full set last
        with ThreadPoolExecutor(self.workers) as pool:
            inits = {
                label: pool.submit(self.pretrain_encoder, label)
                for label, spec in ENCODERS.items()
                if spec is not None
            }
            inits = {"no pretraining": random, **inits}
            picks = {label: pool.submit(self.grid, label, init) for label, init in inits.items()}
            jobs = [
                pool.submit(self.finetune, label, n, inits[label], picks[label])
                for n in order
                for label in inits
            ]
            for job in [*inits.values(), *picks.values(), *jobs]:
                if hasattr(job, "result"):
                    job.result()

    # -- what the report reads ------------------------------------------------------------------
    def results(self, label: str, labels: int) -> list[dict]:
        """Every seed's dev metrics (seed order) of one (encoder, label count)."""
        seeds = self.seeds if labels else min(self.seeds, self.full_seeds)
        return [
            json.loads((self.glue_dir(label, labels, s) / "result.json").read_text())["metrics"]
            for s in range(1, seeds + 1)
        ]

    def history(self, label: str) -> Path:
        """A pretraining run's whole logged history (its versions joined once per report)."""
        if label not in self._histories:
            self._histories[label] = merge_history(self.root / "pretrain" / RUNS[label])
        return self._histories[label]

    def encoder_dir(self, label: str) -> Path:
        if ENCODERS[label] is None:
            return self.random_init()
        return self.export(self.root / "pretrain" / RUNS[label])
