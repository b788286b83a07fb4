"""Experiment 3 — embedding sharing: shared (official ELECTRA) vs none vs gdes (DeBERTa-v3).

    python -m experiments.embedding_sharing.run --budget_minutes 8     # the documented run
    python -m experiments.embedding_sharing.run --quick                # seconds-scale smoke test

Pretrains the same generator + discriminator (experiments/pretrain.yaml) three ways — one
embedding module for both (``shared``), separate embeddings (``none``), and gradient-disentangled
sharing (``gdes``: the discriminator reads stop_gradient(generator embeddings) + a zero-initialised
residual, so only the MLM loss moves the shared table) — with the same steps, then fine-tunes each
on SST-2, CoLA, MRPC and RTE with 3 seeds. ``shared`` is the official setting, the same run as
experiment 1's ELECTRA row. Re-running resumes. Regenerates this folder's README.md.
"""

from __future__ import annotations

from experiments.common import Row, RowStudy, parser
from experiments.report import Report

ROWS = [
    Row(mode, f"electra-g0.25-{mode}", [f"--model.embedding_sharing={mode}"])
    for mode in ("shared", "none", "gdes")
]
QUICK_ROWS = ["shared", "gdes"]  # the smoke test's share (shared: the generator study's 1/4 run)


def main() -> None:
    args = parser(__doc__, default_budget=8).parse_args()
    study = RowStudy("embedding_sharing", args)
    rows = study.select(ROWS, QUICK_ROWS)
    results = study.run(rows)
    report = Report(study)
    report.write(
        rows,
        results,
        title="Experiment 3 — embedding sharing",
        intro=f"""
Same model, data and {study.plan["electra_steps"]} steps for each row; only
`model.embedding_sharing` changes. Exports of `gdes` fold the residual into plain HF embeddings,
so fine-tuning sees an ordinary ELECTRA discriminator in every row.
""",
        findings=[
            *([report.versus(results, "shared", "none")] if "none" in results else []),
            report.versus(results, "gdes", "shared"),
        ],
        first="embedding_sharing",
        xlabel="model.embedding_sharing",
    )


if __name__ == "__main__":
    main()
