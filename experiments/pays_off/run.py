"""Experiment 4 — does pretraining pay off? In-domain ELECTRA and MLM vs no pretraining, SST-2 with
few labels (second run: issue #29 item 4; the first run is archived in results/2026-12-03-first-run/).

    python -m experiments.pays_off.run                      # the documented run (2 CPU cores, ~75 min)
    python -m experiments.pays_off.run --quick              # seconds-scale smoke test (CI)
    python -m experiments.pays_off.run --device cuda --budget_minutes 5   # one GPU, ELECTRA-Small

The pretraining text is in-domain and unlabelled: the movie reviews of
``../shared/data/movie_reviews_polarity`` (cv000–cv899; cv900–cv999 are the held-out validation
text) and the SST-2 *training* sentences without their labels. SST-2 dev and test text is never
in it: the corpus files are written from those two sources only, and every document holding a
dev or test sentence verbatim is dropped and counted (``corpus/check.json``). A WordPiece
vocabulary is trained on the same text.

Two encoders are pretrained at equal training FLOPs with the recipe of
``configs/cpu-small-budget.yaml`` (experiments/plateau: lr 1e-3, no dropout, generator 1/2, batch
128 × 64 tokens): ELECTRA, and MLM for the steps of the same FLOPs. Their gates
(``gates.py``) are checked and printed as soon as each run ends. Each encoder and a randomly
initialised one are then fine-tuned on SST-2: per encoder the learning rate and layer-wise decay
are picked from ``GRID`` on held-out *training* examples, then 250 / 1,000 / 4,000 labels on 5
class-balanced random subsets (seed s: subset s, the same for every encoder) and the full set,
scored on SST-2 dev; Naive Bayes and the majority class on the same subsets, and a linear probe
at every layer (``layers.py``). Re-running resumes every stage. Writes README.md here
(``report.py``) with the reading (NOTES.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from experiments.pays_off.report import planned, report
from experiments.pays_off.study import LABELS, NAME, REVIEWS, SEEDS, SST2, STEPS, PaysOff


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument(
        "--budget_minutes",
        type=float,
        help="instead of --steps: wall-clock minutes of the ELECTRA run (measured once, converted "
        "to steps and kept in ROOT/plan.json)",
    )
    p.add_argument("--steps", type=int, help=f"ELECTRA steps (default {STEPS})")
    p.add_argument("--seeds", type=int, default=SEEDS, help="subsets (= seeds) per label count")
    p.add_argument("--full_seeds", type=int, default=1, help="seeds on the full training set")
    p.add_argument("--labels", type=int, nargs="+", default=LABELS, help="0: the full set")
    p.add_argument("--quick", action="store_true", help="seconds-scale smoke test (CI)")
    p.add_argument(
        "--plan_only",
        action="store_true",
        help="write the corpus, tokenizer, plan, subsets and a README with the design and the "
        "criteria; train nothing (to commit the criteria before the run)",
    )
    p.add_argument("--output_dir", default=str(Path(__file__).resolve().parents[1] / "runs" / NAME))
    p.add_argument("--workers", type=int, default=2, help="runs in parallel (CPU)")
    args = p.parse_args(argv)
    if args.steps is None and args.budget_minutes is None:
        args.steps = STEPS
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if not REVIEWS.exists() or not (SST2 / "dev.tsv").exists():
        raise SystemExit(f"error: needs {REVIEWS} and {SST2} (../shared/data)")
    study = PaysOff(args)
    if args.plan_only:
        study.setup()
        study.write_subsets()
        planned(study, "Planned, not run yet: the criteria above are fixed before the run.")
        return
    study.run()
    report(study)


if __name__ == "__main__":
    main()
