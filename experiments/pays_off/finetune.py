"""Fine-tune one encoder on SST-2 for a list of jobs in one process (one start-up of the stack
for every seed and setting; each job its own data folder, seed and overrides).

    python -m experiments.pays_off.finetune JOBS.json

``JOBS.json``: ``{"init": DIR, "jobs": [{"data_dir", "seed", "overrides", "out"}, ...]}``. Each
job runs as one seed of the ``glue`` command (``electra_lightning.cli.glue_runner.run_one``:
the task's recipe, then the overrides) and writes its dev scores to ``OUT/result.json``; a job
whose result is there is skipped, so a re-run resumes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from electra_lightning.cli.glue_runner import run_one


def main(argv: list[str]) -> None:
    spec = json.loads(Path(argv[0]).read_text())
    for job in spec["jobs"]:
        out = Path(job["out"])
        if (out / "result.json").exists():
            continue
        args = argparse.Namespace(
            output_dir=str(out),
            data_dir=job["data_dir"],
            init_from=spec["init"],
            size_config=None,
            predict_test=False,
        )
        metrics = run_one("sst2", job["seed"], args, job["overrides"])
        record = {"seed": job["seed"], "overrides": job["overrides"], "metrics": metrics}
        (out / "result.json").write_text(json.dumps(record) + "\n")
        print(f"done: {out} {metrics}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
