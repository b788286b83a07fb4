"""Experiment 1 — ELECTRA vs MLM at equal pretraining compute (the paper's Table 1, scaled down).

    python experiments/electra_vs_mlm/run.py --budget_minutes 8     # the documented run
    python experiments/electra_vs_mlm/run.py --quick                # seconds-scale smoke test

Pretrains the same small encoder (experiments/pretrain.yaml) twice: ELECTRA (generator 1/4,
replaced token detection) and MLM (BERT-style 15% with 80/10/10), with equal training FLOPs — the
MLM run gets the steps that ELECTRA spends on its generator — then fine-tunes each, and a randomly
initialised copy, on SST-2, CoLA, MRPC and RTE with 3 seeds. Re-running resumes. Regenerates this
folder's README.md with the table, the plots, the exact command, the machine and the budget.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import Row, Study, parser  # noqa: E402

ROWS = [
    Row("ELECTRA", "electra-g0.25-shared"),
    Row(
        "MLM",
        "mlm",
        ["--model.objective=mlm", "--data.mask_token_prob=0.8", "--data.random_token_prob=0.1"],
        steps_key="mlm_steps",
    ),
    Row("no pretraining", None),
]


def main() -> None:
    args = parser(__doc__, default_budget=8).parse_args()
    study = Study("electra_vs_mlm", args)
    results = study.run(ROWS)
    plan = study.plan
    study.report(
        ROWS,
        results,
        title="Experiment 1 — ELECTRA vs MLM at equal compute",
        intro=f"""
ELECTRA trains {plan["electra_steps"]} steps, MLM {plan["mlm_steps"]}: an ELECTRA step costs
{plan["flops_ratio"]:.3f}× an MLM step in training FLOPs (generator included), so the MLM run gets
that share as extra steps. MLM is the discriminator-sized encoder trained BERT-style (15% masked,
80/10/10), same data pipeline, optimizer and schedule (`model.objective: mlm`).
""",
        findings=[
            study.versus(results, "ELECTRA", "MLM"),
            study.versus(results, "ELECTRA", "no pretraining"),
            study.versus(results, "MLM", "no pretraining"),
        ],
        first="pretraining",
        xlabel="pretraining",
    )


if __name__ == "__main__":
    main()
