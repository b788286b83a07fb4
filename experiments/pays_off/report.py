"""Experiment 4's report: the gates first (printed before any downstream number is read), then the
paired table with its baselines, the criteria's verdicts, the per-layer probes and the geometry;
written to README.md here (``--output_dir`` for a quick run) with the reading (NOTES.md) and the
source data in ``results/``."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
from pathlib import Path

from transformers import AutoModel, AutoTokenizer

from experiments.common import EXPERIMENTS
from experiments.pays_off.gates import encoder_gates, gate_line
from experiments.pays_off.layers import PROBE_LABELS, layer_report
from experiments.pays_off.study import ENCODERS, GRID, NAME, RUNS, SEQ, PaysOff
from experiments.pays_off.subsets import majority, naive_bayes, read, split_train, subset
from experiments.runner import log

PRETRAINED = [label for label, spec in ENCODERS.items() if spec is not None]
PAYS_OFF_POINTS = 3.0  # criterion 1: pretrained − no pretraining, on every paired seed
WIN_POINTS, WIN_SEEDS = 2.0, 4  # criterion 2: ELECTRA vs MLM
STUCK = 0.95  # a run answering one class for this share of dev is stuck at one class
CRITERIA = f"""\
Written into this README before the run (commit "pays_off: criteria before the run"):

1. **Pretraining pays off** for an encoder when, at 250 or at 1,000 labels, its accuracy minus
   the randomly initialised encoder's is ≥ {PAYS_OFF_POINTS:g} points on 5 of 5 paired seeds (same
   subset, same fine-tuning seed) *and* it is above bag-of-words Naive Bayes on the same subset on
   5 of 5 seeds.
2. **ELECTRA vs MLM** at a label count: a win for one only when it is ≥ {WIN_POINTS:g} points ahead on
   ≥ {WIN_SEEDS} of 5 paired seeds; otherwise a tie.
3. An encoder whose gate failed (`gates.py`) is reported, its row says so, and no verdict on it is
   read as a statement about its objective, only about this pretraining run.
4. A difference whose paired seeds do not all fall on one side is "no difference"."""


def name(n: int) -> str:
    return f"{n:,}" if n else "all 67,349"


def spread(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} ± {std:.1f}"


def positive_share(acc: float, f1: float, positives: int, negatives: int) -> float:
    """The share of dev a run labelled positive, from its accuracy and (positive-class) F1:
    TP = F1·N·(1 − acc) / (2(1 − F1)), TN = acc·N − TP, predicted positive = TP + (negatives − TN)."""
    n = positives + negatives
    if f1 >= 1:
        return positives / n
    tp = f1 * n * (1 - acc) / (2 * (1 - f1))
    return (tp + negatives - (acc * n - tp)) / n


def stuck(metrics: dict, dev: list) -> bool:
    positives = sum(label for _, label in dev)
    share = positive_share(metrics["acc"], metrics["f1"], positives, len(dev) - positives)
    return share >= STUCK or share <= 1 - STUCK


def gates_of(study: PaysOff) -> dict:
    """Every pretrained encoder's gates, printed (before any downstream number is read)."""
    gates = {label: encoder_gates(label, study.history(label)) for label in PRETRAINED}
    for label, result in gates.items():
        log(f"gates: {label}: {gate_line(result)}")
    return gates


def baselines(study: PaysOff) -> dict:
    """Naive Bayes and the majority class on every subset (seed order) and on the full set."""
    _, pool = split_train()
    train, dev = read("train"), read("dev")
    out = {"naive_bayes": {}, "majority": {}}
    for n in study.labels:
        subsets = [subset(pool, n, s) for s in range(1, study.seeds + 1)] if n else [train]
        out["naive_bayes"][n] = [naive_bayes(rows, dev) for rows in subsets]
        out["majority"][n] = [majority(rows, dev) for rows in subsets]
    return out


def layers_of(study: PaysOff) -> dict:
    """Per encoder, the per-layer probe and geometry (cached in ROOT/layers/)."""
    _, pool = split_train()
    dev = read("dev")
    counts = [n for n in PROBE_LABELS if n in study.labels] or [n for n in study.labels if n]
    subsets = {(n, s): subset(pool, n, s) for n in counts for s in range(1, study.seeds + 1)}
    out = {}
    for label in ENCODERS:
        store = study.root / "layers" / f"{RUNS[label]}.json"
        if not store.exists():
            encoder = AutoModel.from_pretrained(study.encoder_dir(label))
            tokenizer = AutoTokenizer.from_pretrained(study.tokenizer)
            result = layer_report(encoder, tokenizer, subsets, dev, SEQ)
            store.parent.mkdir(parents=True, exist_ok=True)
            store.write_text(json.dumps(result) + "\n")
        out[label] = json.loads(store.read_text())
    return out


def keep_sources(study: PaysOff, out: Path, data: dict) -> None:
    """What the tables are made of, beside the README (runs/ is not committed)."""
    results = out / "results"
    results.mkdir(parents=True, exist_ok=True)
    shutil.copy(study.root / "plan.json", results / "plan.json")
    shutil.copy(study.root / "corpus" / "check.json", results / "corpus-check.json")
    for key, value in data.items():
        (results / f"{key}.json").write_text(json.dumps(value, indent=1) + "\n")
    for label in PRETRAINED:
        metrics = study.history(label) / "metrics.csv"
        shutil.copy(metrics, results / f"pretrain-{RUNS[label]}.csv")


def gates_table(gates: dict) -> list[str]:
    lines = [
        "| encoder | val/gen_context_gain (≥ 0.5) | val/disc_context_gain, last 3 (> 0.005) | "
        "val/disc_auc (≥ 0.6) | gate of the fine-tuned network |",
        "|---|---|---|---|---|",
        "| no pretraining | — | — | — | none (not pretrained) |",
    ]
    for label, result in gates.items():
        cells = []
        for key in ("gen_context_gain", "disc_context_gain", "disc_auc"):
            gate = result["gates"].get(key)
            if gate is None or gate["value"] is None:
                cells.append("—")
                continue
            value = gate["value"]
            shown = (
                ", ".join(f"{v:+.4f}" for v in value) if isinstance(value, list) else f"{value:.3f}"
            )
            cells.append(f"{shown} {'pass' if gate['passed'] else '**fail**'}")
        verdict = "passed" if result["passed"] else "**FAILED**"
        lines.append(f"| {label} | {' | '.join(cells)} | {verdict} |")
    return lines


def row_label(label: str, gates: dict) -> str:
    if label in gates and not gates[label]["passed"]:
        return f"{label} (gate failed)"
    return label


def summary_table(study: PaysOff, acc: dict, base: dict, gates: dict, picks: dict) -> list[str]:
    """Mean ± std of dev accuracy over the paired seeds, baselines first; then stuck runs."""
    dev = read("dev")
    head = " | ".join(name(n) for n in study.labels)
    lines = [f"| | {head} |", "|---" * (len(study.labels) + 1) + "|"]
    lines.append(
        "| majority class | " + " | ".join(spread(base["majority"][n]) for n in study.labels) + " |"
    )
    nb = " | ".join(spread(base["naive_bayes"][n]) for n in study.labels)
    lines.append(f"| Naive Bayes (bag of words) | {nb} |")
    for label in ENCODERS:
        cells = " | ".join(spread(acc[label][n]) for n in study.labels)
        pick = picks[label]
        lines.append(
            f"| {row_label(label, gates)}, lr {pick['lr']:g} decay {pick['decay']:g} | {cells} |"
        )
    for label in ENCODERS:
        cells = []
        for n in study.labels:
            runs = study.results(label, n)
            cells.append(f"{sum(stuck(m, dev) for m in runs)}/{len(runs)}")
        lines.append(f"| runs stuck at one class: {label} | {' | '.join(cells)} |")
    return lines


def seed_table(n: int, acc: dict, base: dict) -> list[str]:
    """One label count, seed by seed (seed s: subset s), with the paired differences."""
    seeds = len(acc["no pretraining"][n])
    lines = [
        f"**{name(n)} labels**",
        "",
        "| | " + " | ".join(f"seed {s}" for s in range(1, seeds + 1)) + " | mean |",
        "|---" * (seeds + 2) + "|",
    ]
    rows = {"Naive Bayes": base["naive_bayes"][n], **{k: acc[k][n] for k in ENCODERS}}
    for label in PRETRAINED:
        rows[f"{label} − no pretraining"] = diff(acc[label][n], acc["no pretraining"][n])
    rows["ELECTRA − MLM"] = diff(acc["ELECTRA"][n], acc["MLM"][n])
    for label, values in rows.items():
        sign = "+" if "−" in label else ""
        cells = " | ".join(f"{v:{sign}.1f}" for v in values)
        lines.append(f"| {label} | {cells} | {statistics.mean(values):{sign}.1f} |")
    return lines


def diff(a: list[float], b: list[float]) -> list[float]:
    return [x - y for x, y in zip(a, b, strict=True)]


def side(values: list[float]) -> str:
    if all(v > 0 for v in values) or all(v < 0 for v in values):
        return "every seed on one side"
    return "seeds on both sides: no difference"


def verdicts(study: PaysOff, acc: dict, base: dict, gates: dict) -> list[str]:
    """The criteria, evaluated (criterion 1 per pretrained encoder, 2 per label count)."""
    lines = []
    few = [n for n in study.labels if n in (250, 1000)]
    for label in PRETRAINED:
        parts = []
        for n in few:
            gain = diff(acc[label][n], acc["no pretraining"][n])
            over_nb = diff(acc[label][n], base["naive_bayes"][n])
            ok = all(g >= PAYS_OFF_POINTS for g in gain) and all(g > 0 for g in over_nb)
            parts.append(
                f"{name(n)} labels: {sum(g >= PAYS_OFF_POINTS for g in gain)}/{len(gain)} seeds "
                f"≥ {PAYS_OFF_POINTS:g} points over no pretraining (mean {statistics.mean(gain):+.1f}, "
                f"{side(gain)}), {sum(g > 0 for g in over_nb)}/{len(over_nb)} above Naive Bayes "
                f"→ {'met' if ok else 'not met'}"
            )
        note = "" if label not in gates or gates[label]["passed"] else " (its gate failed)"
        lines.append(f"- Criterion 1, {label}{note}: " + "; ".join(parts))
    for n in study.labels:
        d = diff(acc["ELECTRA"][n], acc["MLM"][n])
        electra, mlm = sum(v >= WIN_POINTS for v in d), sum(v <= -WIN_POINTS for v in d)
        if len(d) < WIN_SEEDS:
            verdict = f"not decidable with {len(d)} seed(s)"
        else:
            verdict = (
                "ELECTRA wins"
                if electra >= WIN_SEEDS
                else "MLM wins"
                if mlm >= WIN_SEEDS
                else "tie"
            )
        lines.append(
            f"- Criterion 2, {name(n)} labels: ELECTRA − MLM {statistics.mean(d):+.1f} "
            f"(ELECTRA ≥ {WIN_POINTS:g} ahead on {electra}, MLM on {mlm} of {len(d)} seeds) → {verdict}"
        )
    return lines


def layers_table(layers: dict) -> list[str]:
    counts = list(next(iter(layers.values()))["probe"])
    depth = len(next(iter(layers.values()))["geometry"])
    head = " | ".join(["embeddings"] + [f"layer {i}" for i in range(1, depth)])
    lines = []
    for n in counts:
        lines += [f"**{name(int(n))} labels** (mean ± std over the seeds' subsets)", ""]
        lines += [f"| encoder | {head} |", "|---" * (depth + 1) + "|"]
        for label, result in layers.items():
            cells = " | ".join(spread(scores) for scores in result["probe"][n])
            lines.append(f"| {label} | {cells} |")
        lines.append("")
    lines += [
        "**Geometry** of the mean-pooled dev features: mean pairwise cosine / share of the energy "
        "that differs between sentences (1.000 / 0%: every sentence the same vector)",
        "",
        f"| encoder | {head} |",
        "|---" * (depth + 1) + "|",
    ]
    for label, result in layers.items():
        cells = [
            f"{g['cosine']:.3f} / {100 * g['sentence_specific']:.1f}%" for g in result["geometry"]
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def design(study: PaysOff) -> str:
    """The header: command, machine, data, recipe, fine-tuning, grid, baselines."""
    plan, check = study.plan, study.check
    command = "python -m experiments.pays_off.run" + (" --quick" if study.quick else "")
    if plan.get("seconds_per_step") is not None:
        command += f" --budget_minutes {plan['budget_minutes']:g}"
    elif not study.quick and plan["electra_steps"] != 450:
        command += f" --steps {plan['electra_steps']}"
    if study.cuda:
        command += " --device cuda"
    grid = ", ".join(f"lr {lr:g} decay {d:g}" for lr, d in GRID)
    return f"""\
- **Command**: `{command}` (resumes when re-run; `--quick` is the CI smoke test,
  `--device cuda --budget_minutes 5` the GPU version: ELECTRA-Small, bf16)
- **Machine**: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, {"one GPU" if study.cuda else "no GPU"} · {study.workers} runs in parallel, {study.env["OMP_NUM_THREADS"]} thread(s) each
- **Pretraining text** (in-domain, unlabelled, as the first run): movie reviews and the SST-2 training
  sentences without labels, {check["training_words"]:,} words; {check["dev_test_sentences_found_in_training_text"]} SST-2 dev/test sentences found in it, {check["documents_dropped"]} documents dropped
  (`results/corpus-check.json`); WordPiece {"2k" if study.quick else "16k"}.
- **Pretraining**: `configs/cpu-small-budget.yaml`'s recipe (lr {study.lr:g}, dropout {study.dropout:g}, batch {study.batch_size} × {SEQ}
  tokens, 10% warm-up then linear decay to 0; {", ".join(f"{k} {v}" for k, v in study.size.items() if k != "preset")}),
  shared embeddings, for both objectives at equal training FLOPs: ELECTRA {plan["electra_steps"]} steps, MLM {plan["mlm_steps"]}
  ({plan["flops_ratio"]:.3f}× per ELECTRA step), validated every {plan["electra_every"]} (MLM {plan["mlm_every"]}) steps on 8 fixed batches of
  reviews cv900–cv999. The recipe's 1,500 steps did not fit the budget (below); its generator
  passed 0.5 nats between steps 300 and 450 in experiment 5.
- **Encoders**: no pretraining (a random initialisation, seed 0), MLM, ELECTRA's discriminator. The
  first run's ELECTRA + whole-word masking arm is left out: it made no measurable difference there
  (same AUC, same feature collapse, fine-tuning within 2 points of ELECTRA) and a third pretraining
  run with its 16 fine-tuning runs (~1/3 of the budget) does not fit.
- **Budget**: ≤ ~75 min on 2 shared cores, planned as pretraining ~25 min (both runs at once, one
  thread each), then 9 grid and 48 fine-tuning runs in 12 processes ~45 min, the report ~3 min.
- **Labels**: SST-2 training examples, class-balanced random subsets of 250 / 1,000 / 4,000 (seed s:
  subset s, the same for every encoder: paired) drawn from the training set less 2,000
  class-balanced held-out examples; the full set is all 67,349. Scored on all 872 dev sentences.
- **Fine-tuning**: the `configs/finetune/sst2.yaml` recipe (batch 32, 10% warm-up) at {SEQ} tokens, with
  lr and layer-wise decay per encoder picked from {{{grid}}} by accuracy on the 2,000
  held-out *training* examples after fine-tuning on a separate 1,000-example subset (never on dev);
  the encoder's dropout is the recipe's 0 for all three (the random one is initialised so), the
  head's 0.1; few labels: 3 epochs or at least 200 steps (250: 25 epochs, 1,000: 7, 4,000: 3); the full set:
  1 epoch, {study.full_seeds} seed (the recipe's 3 epochs × 5 seeds would be ~2 h per encoder here).
- **Baselines** on the same subsets: multinomial Naive Bayes on word counts, the majority class
  (balanced subsets: dev's majority, the best constant); "stuck at one class": a run labelling
  ≥ 95% of dev one class (from its accuracy and F1).
{"- **Quick smoke run: the numbers mean nothing.**" if study.quick else ""}"""


def head(study: PaysOff) -> list[str]:
    return [
        "# Experiment 4 — does pretraining pay off? (second run, issue #29 item 4)",
        "",
        design(study),
        "",
        "The first run (2026-12-03; official Small recipe, 3 fixed first-N subsets, no gates) and its",
        "reading: [`results/2026-12-03-first-run/`](results/2026-12-03-first-run/README.md).",
        "",
        "## Criteria, fixed before the run",
        "",
        CRITERIA,
        "",
    ]


def planned(study: PaysOff, status: str) -> None:
    """The README before the run: the design and the criteria, and ``status``."""
    out = study.root if study.quick else EXPERIMENTS / NAME
    (out / "README.md").write_text("\n".join([*head(study), "## Status", "", status, ""]))


def report(study: PaysOff) -> None:
    out = study.root if study.quick else EXPERIMENTS / NAME
    gates = gates_of(study)  # first: printed before any downstream number is read
    picks = {label: study.grid(label, study.encoder_dir(label)) for label in ENCODERS}
    acc = {
        label: {n: [100 * m["acc"] for m in study.results(label, n)] for n in study.labels}
        for label in ENCODERS
    }
    base, layers = baselines(study), layers_of(study)
    scores = {label: {n: study.results(label, n) for n in study.labels} for label in ENCODERS}
    keep_sources(
        study,
        out,
        {
            "gates": gates,
            "grid": picks,
            "grid-scores": {
                label: {f"lr {lr:g} decay {d:g}": study.grid_score(label, lr, d) for lr, d in GRID}
                for label in ENCODERS
            },
            "finetune": scores,
            "baselines": base,
            "layers": layers,
        },
    )
    few = [n for n in study.labels if n]
    notes = EXPERIMENTS / NAME / "NOTES.md"
    readme = "\n".join(
        [
            *head(study),
            "## Gates (read before any downstream number)",
            "",
            *gates_table(gates),
            "",
            "## SST-2 dev accuracy (mean ± std over the paired seeds; columns: training examples)",
            "",
            *summary_table(study, acc, base, gates, picks),
            "",
            "Every seed's scores: `results/finetune.json` (accuracy, F1), `results/baselines.json`;",
            "the grid's held-out accuracies: `results/grid-scores.json` (picks: `results/grid.json`).",
            "",
            "## Paired seeds",
            "",
            *[line for n in few for line in [*seed_table(n, acc, base), ""]],
            "## The criteria, evaluated",
            "",
            *verdicts(study, acc, base, gates),
            "",
            "## A linear probe at every layer (frozen encoder, same subsets, SST-2 dev accuracy)",
            "",
            *layers_table(layers),
            "",
            notes.read_text().strip() if notes.exists() and not study.quick else "",
            "",
        ]
    )
    (out / "README.md").write_text(readme)
    print(readme)
