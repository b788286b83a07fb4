"""The gates an encoder passes before its downstream numbers are read (issue #29, fixed before the
run): what pretraining must have learned beyond the simplest baselines that need no context.

- the generator, or the MLM encoder: ``val/gen_context_gain`` (nats above word frequencies) ≥
  0.5 at the end;
- the discriminator (ELECTRA's encoder): ``val/disc_context_gain`` (nats above the base rate)
  above 0.005 at each of the last 3 validations — beyond noise: the validation batches and their
  replacements are fixed, and experiment 5 saw it move by ±0.002 between validations on the
  plateau — and ``val/disc_auc`` ≥ 0.6 at the end.

An encoder passes when the gates of the network that is fine-tuned pass: MLM's gen gate,
ELECTRA's two discriminator gates (its generator's gate is reported beside them).
"""

from __future__ import annotations

import csv
from pathlib import Path

GEN_CONTEXT_GAIN = 0.5  # nats above word frequencies
DISC_CONTEXT_GAIN = 0.005  # nats above the base rate, at each of the last 3 validations
DISC_AUC = 0.6


def series(metrics_dir: Path, key: str) -> list[float]:
    """The logged values of ``key`` in a run's joined history, in step order."""
    with open(metrics_dir / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get(key)]
    return [float(r[key]) for r in sorted(rows, key=lambda r: int(r["step"]))]


def encoder_gates(label: str, metrics_dir: Path) -> dict:
    """Each gate's value and verdict for a pretraining run, and whether its encoder passed."""
    gen = series(metrics_dir, "val/gen_context_gain")
    disc = series(metrics_dir, "val/disc_context_gain")
    auc = series(metrics_dir, "val/disc_auc")
    gates = {
        "gen_context_gain": (gen[-1] if gen else None, bool(gen) and gen[-1] >= GEN_CONTEXT_GAIN)
    }
    if disc:
        last = disc[-3:]
        gates["disc_context_gain"] = (last, len(last) == 3 and min(last) > DISC_CONTEXT_GAIN)
        gates["disc_auc"] = (auc[-1] if auc else None, bool(auc) and auc[-1] >= DISC_AUC)
    fine_tuned = [k for k in gates if k.startswith("disc")] or ["gen_context_gain"]
    return {
        "label": label,
        "gates": {k: {"value": v, "passed": ok} for k, (v, ok) in gates.items()},
        "encoder_gates": fine_tuned,
        "passed": all(gates[k][1] for k in fine_tuned),
    }


def gate_line(result: dict) -> str:
    """One line: each gate's value and verdict, then the encoder's."""
    parts = []
    for key, gate in result["gates"].items():
        value = gate["value"]
        shown = (
            "none logged"
            if value is None
            else ", ".join(f"{v:+.4f}" for v in value)
            if isinstance(value, list)
            else f"{value:.3f}"
        )
        parts.append(f"{key} {shown} ({'pass' if gate['passed'] else 'FAIL'})")
    verdict = "passes" if result["passed"] else "FAILS"
    return "; ".join(parts) + f" → encoder {verdict} ({', '.join(result['encoder_gates'])})"
