"""Experiment 2 — generator size sweep at a fixed discriminator (the paper's Figure 3, scaled down).

    python -m experiments.generator_size.run --budget_minutes 8     # the documented run
    python -m experiments.generator_size.run --quick                # seconds-scale smoke test

Pretrains the same discriminator (experiments/pretrain.yaml) with generators of 1/8, 1/4, 1/2
and 1× its hidden size (same depth, equal steps), fine-tunes each on SST-2, CoLA, MRPC and RTE
with 3 seeds, and plots the score against generator size. The 1/4 run is the official setting,
shared with experiments 1 and 3 (same run, trained once). Re-running resumes. Regenerates this
folder's README.md with the table, the plots, the exact command, the machine and the budget.
"""

from __future__ import annotations

from experiments.common import Row, RowStudy, parser
from experiments.report import Report

SIZES = {"1/8": 0.125, "1/4": 0.25, "1/2": 0.5, "1": 1.0}
ROWS = [
    Row(label, f"electra-g{size}-shared", [f"--model.size.generator_size={size}"])
    for label, size in SIZES.items()
]
QUICK_ROWS = ["1/8", "1/4"]  # the smoke test's share: every stage and the report, at 2 rows' cost


def main() -> None:
    args = parser(__doc__, default_budget=8).parse_args()
    study = RowStudy("generator_size", args)
    rows = study.select(ROWS, QUICK_ROWS)
    results = study.run(rows)
    report = Report(study)
    averages = {label: report.average(r) for label, r in results.items()}
    top = max(averages.values())
    # a row within the seeds' spread of the best (mean seed range per task) is a tie, not a loss
    ranges = [
        max(v) - min(v) for r in results.values() for v in report.scores(r).values() if len(v) > 1
    ]
    spread = sum(ranges) / len(ranges) if ranges else 0.0
    best = [label for label, value in averages.items() if value > top - max(0.05, spread)]
    report.write(
        rows,
        results,
        title="Experiment 2 — generator size",
        intro=f"""
The discriminator is fixed (4 layers, hidden 256); the generator has the same depth and
1/8, 1/4, 1/2 or 1× the hidden size (heads and FFN scaled with it, `model.size.generator_size`). Every
run trains {study.plan["electra_steps"]} steps (equal steps, as in the paper's Figure 3; a larger
generator costs more per step). The paper found 1/4–1/2 best.
""",
        findings=[
            f"Best average: generator {', '.join(best)} ({top:.1f})"
            + (
                f" — a tie, no size is better (within the mean seed range, {spread:.1f} points)"
                if len(best) > 1
                else ""
            )
            + ".",
            *(report.versus(results, "1/4", b) for b in ("1/8", "1") if b in results),
        ],
        first="generator size",
        xlabel="generator size / discriminator size",
    )


if __name__ == "__main__":
    main()
