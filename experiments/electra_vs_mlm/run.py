"""Experiment 1 — ELECTRA vs MLM at equal pretraining compute (the paper's Table 1, scaled down).

    python experiments/electra_vs_mlm/run.py --budget_minutes 60     # the documented run
    python experiments/electra_vs_mlm/run.py --quick                 # seconds-scale smoke test

Pretrains the same small discriminator-sized encoder twice on ../shared/data/nltk_english_text:
ELECTRA (generator 1/4, RTD) and MLM (BERT-style 80/10/10), with equal training FLOPs — the MLM
run gets the steps that ELECTRA spends on its generator — then fine-tunes each, plus a randomly
initialised copy, on GLUE tasks with several seeds (``electra_lightning glue``). Every stage is
skipped when its output exists, so re-running resumes. Writes this folder's README.md with the
table, the plots, the exact command, the machine and the budget.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SHARED = REPO.parent / "shared" / "data"
SIZES = dict(  # a small model: 4 layers, hidden 256 (ELECTRA-Small width)
    num_layers=4,
    hidden_size=256,
    num_heads=4,
    intermediate_size=1024,
    embedding_size=128,
    max_position_embeddings=128,
)
MODEL = [f"--model.{key}={value}" for key, value in SIZES.items()]


def sh(*args: str, cwd: Path) -> None:
    print("$", " ".join(shlex.quote(a) for a in args), flush=True)
    subprocess.run([sys.executable, "-m", "electra_lightning", *args], cwd=cwd, check=True)


def flops_ratio(tokenizer: Path) -> float:
    """FLOPs per token of an ELECTRA step over an MLM step for the same encoder."""
    sys.path.insert(0, str(REPO))
    from electra_lightning.data import load_tokenizer_info
    from electra_lightning.model import build_electra_pair, training_flops_per_token

    vocab = load_tokenizer_info(str(tokenizer)).vocab_size
    electra = build_electra_pair(vocab, 128, **SIZES)
    mlm = build_electra_pair(vocab, 128, **SIZES, objective="mlm")
    return training_flops_per_token(electra, 128, 19) / training_flops_per_token(mlm, 128, 19)


def pretrain(
    name: str, steps: int, out: Path, tokenizer: Path, corpus: str, quick: bool, extra: list[str]
) -> Path:
    ckpt = out / name / "checkpoints" / "last.ckpt"
    args = [
        "fit",
        "--config",
        str(REPO / "configs/tiny.yaml"),
        *MODEL,
        f"--data.train_files={corpus}",
        f"--data.val_files={SHARED / 'wikitext2_raw_test'}",
        f"--data.tokenizer={tokenizer}",
        f"--trainer.max_steps={steps}",
        f"--model.warmup_steps={max(1, steps // 10)}",
        f"--trainer.val_check_interval={max(1, min(500, steps))}",
        f"--trainer.limit_val_batches={2 if quick else 20}",
        f"--trainer.logger.init_args.save_dir={out}",
        f"--trainer.logger.init_args.name={name}",
        f"--trainer.callbacks.init_args.dirpath={out / name / 'checkpoints'}",
        f"--trainer.callbacks.init_args.every_n_train_steps={max(1, min(500, steps))}",
        "--data.num_workers=1",
        "--trainer.enable_progress_bar=false",
        *extra,
    ]
    if ckpt.exists():
        from electra_lightning.checkpoint import load_checkpoint

        if load_checkpoint(str(ckpt))["global_step"] >= steps:
            return ckpt
        args.append("--ckpt_path=last")
    sh(*args, cwd=REPO)
    return ckpt


def export_random(out: Path, tokenizer: Path) -> Path:
    """The no-pretraining row: a freshly initialised encoder of the same size."""
    target = out / "random" / "discriminator"
    if (target / "config.json").exists():
        return target
    import torch

    from electra_lightning.data import load_tokenizer_info, read_tokenizer_files
    from electra_lightning.export import write_tokenizer
    from electra_lightning.module import ElectraPretraining

    torch.manual_seed(0)
    info = load_tokenizer_info(str(tokenizer))
    module = ElectraPretraining(
        vocab_size=info.vocab_size, max_seq_length=128, pad_token_id=info.pad_id, **SIZES
    )
    module.discriminator.save_pretrained(target)
    write_tokenizer(read_tokenizer_files(str(tokenizer)), target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--budget_minutes",
        type=float,
        default=60.0,
        help="wall-clock budget of the ELECTRA pretraining",
    )
    parser.add_argument("--quick", action="store_true", help="seconds-scale smoke test (CI)")
    parser.add_argument("--output_dir", default=str(HERE / "runs"))
    parser.add_argument("--tasks", nargs="+", default=["sst2", "cola", "mrpc", "rte"])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    if not (SHARED / "nltk_english_text").is_dir() or not (SHARED / "glue").is_dir():
        sys.exit(f"error: needs {SHARED}/nltk_english_text and {SHARED}/glue")
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    corpus = str(SHARED / "nltk_english_text" / ("inaugural" if args.quick else ""))
    sys.path.insert(0, str(REPO))
    from electra_lightning.tokenizer import train_tokenizer

    tokenizer = out / "tokenizer"
    if not (tokenizer / "tokenizer.json").exists():
        train_tokenizer(corpus, str(tokenizer), vocab_size=2000 if args.quick else 16000)

    plan_file = out / "plan.json"
    if plan_file.exists():
        plan = json.loads(plan_file.read_text())
    else:
        if args.quick:
            electra_steps = 6
        else:  # time 30 ELECTRA steps, then fill the budget
            probe = time.time()
            pretrain("probe", 30, out, tokenizer, corpus, False, [])
            per_step = (time.time() - probe - 20) / 30  # minus ~20 s of start-up
            electra_steps = int(args.budget_minutes * 60 / max(per_step, 1e-3))
        ratio = flops_ratio(tokenizer)
        plan = {
            "electra_steps": electra_steps,
            "mlm_steps": round(electra_steps * ratio),
            "flops_ratio": ratio,
            "budget_minutes": args.budget_minutes,
            "quick": args.quick,
        }
        plan_file.write_text(json.dumps(plan, indent=1))
    print(f"plan: {plan}")

    rows = {
        "ELECTRA": pretrain(
            "electra", plan["electra_steps"], out, tokenizer, corpus, args.quick, []
        ),
        "MLM": pretrain(
            "mlm",
            plan["mlm_steps"],
            out,
            tokenizer,
            corpus,
            args.quick,
            ["--model.objective=mlm", "--data.mask_token_prob=0.8", "--data.random_token_prob=0.1"],
        ),
    }
    inits = {}
    for row, ckpt in rows.items():
        target = out / row.lower() / "export"
        if not (target / "discriminator" / "config.json").exists():
            sh("export", "--ckpt_path", str(ckpt), "--output_dir", str(target), cwd=REPO)
        inits[row] = target / "discriminator"
    inits["no pretraining"] = export_random(out, tokenizer)

    glue = SHARED / "glue"
    finetune = (
        [
            "--trainer.max_epochs=1",
            "--data.limit_train_examples=64",
            "--trainer.limit_val_batches=2",
        ]
        if args.quick
        else ["--trainer.max_epochs=3", "--data.limit_train_examples=8000"]
    )
    tasks = args.tasks[:2] if args.quick else args.tasks
    seeds = 1 if args.quick else args.seeds
    for row, init in inits.items():
        sh(
            "glue",
            "--init_from",
            str(init),
            "--data_dir",
            str(glue),
            "--tasks",
            *tasks,
            "--seeds",
            str(seeds),
            "--output_dir",
            str(out / "glue" / row.replace(" ", "_")),
            "--no_predict_test",
            *finetune,
            cwd=REPO,
        )
    write_report(out, inits, tasks, plan, args, finetune)


def write_report(
    out: Path, inits: dict, tasks: list[str], plan: dict, args, finetune: list[str]
) -> None:
    import statistics

    from electra_lightning.finetune import TASK_METRICS

    lines = [
        "| pretraining | "
        + " | ".join(f"{t} ({TASK_METRICS[t][0]})" for t in tasks)
        + " | average |",
        "|---" * (len(tasks) + 2) + "|",
    ]
    for row in inits:
        store = out / "glue" / row.replace(" ", "_") / "results.jsonl"
        results = [json.loads(line) for line in store.read_text().splitlines()]
        medians = []
        for task in tasks:
            values = [
                100 * r["metrics"][TASK_METRICS[task][0]] for r in results if r["task"] == task
            ]
            medians.append(statistics.median(values))
        lines.append(
            f"| {row} | "
            + " | ".join(f"{m:.1f}" for m in medians)
            + f" | {statistics.mean(medians):.1f} |"
        )
    table = "\n".join(lines)
    report_dir = out if args.quick else HERE  # a quick run never overwrites the real report
    sh(
        "compare",
        str(out / "electra" / "version_0"),
        str(out / "mlm" / "version_0"),
        "--output",
        str(report_dir / "pretraining.png"),
        cwd=REPO,
    )
    command = "python experiments/electra_vs_mlm/run.py " + (
        "--quick" if args.quick else f"--budget_minutes {args.budget_minutes:g}"
    )
    readme = f"""# ELECTRA vs MLM at equal compute

Command: `{command}` · machine: {platform.machine()}, {os.cpu_count()} cores, torch CPU · budget: ELECTRA
{plan["electra_steps"]} steps, MLM {plan["mlm_steps"]} steps (ELECTRA/MLM FLOPs per token =
{plan["flops_ratio"]:.3f}: the MLM run gets the generator's share as extra steps) · model: 4 layers,
hidden 256 · corpus: shared nltk_english_text · fine-tuning: `{" ".join(finetune)}`, tasks
{", ".join(tasks)}, median over seeds (all seeds in `runs/glue/*/results.jsonl`).
{"**Quick smoke run: the numbers mean nothing.**" if args.quick else ""}

{table}

![pretraining curves](pretraining.png)
"""
    (report_dir / "README.md").write_text(readme)
    print(readme)


if __name__ == "__main__":
    main()
