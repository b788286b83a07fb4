"""The experiments' --quick modes run end to end (CI-sized)."""

import subprocess
import sys

import pytest

from .conftest import REPO, shared_data


@pytest.mark.slow
def test_electra_vs_mlm_quick(tmp_path):
    shared_data("glue")
    shared_data("nltk_english_text")
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "experiments/electra_vs_mlm/run.py"),
            "--quick",
            "--output_dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (tmp_path / "README.md").read_text()
    for row in ("| ELECTRA |", "| MLM |", "| no pretraining |"):
        assert row in report
    plan = (tmp_path / "plan.json").read_text()
    assert '"mlm_steps"' in plan
    assert (tmp_path / "pretraining.png").read_bytes()[:4] == b"\x89PNG"
    # resumable: a second run finds everything done and only rewrites the report
    again = subprocess.run(
        [
            sys.executable,
            str(REPO / "experiments/electra_vs_mlm/run.py"),
            "--quick",
            "--output_dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
    )
    assert again.returncode == 0 and "seed 1:" not in again.stdout
