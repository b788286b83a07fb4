"""The experiments' --quick modes run end to end (CI-sized)."""

import subprocess
import sys

import pytest

from .conftest import REPO, shared_data


def quick(name, out):
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / f"experiments/{name}/run.py"),
            "--quick",
            "--output_dir",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_electra_vs_mlm_quick(tmp_path):
    shared_data("glue")
    shared_data("nltk_english_text")
    quick("electra_vs_mlm", tmp_path)
    report = (tmp_path / "README.md").read_text()
    for row in ("| ELECTRA |", "| MLM |", "| no pretraining |"):
        assert row in report
    assert '"mlm_steps"' in (tmp_path / "plan.json").read_text()
    assert (tmp_path / "pretraining.png").read_bytes()[:4] == b"\x89PNG"
    # resumable: a second run finds every stage done and only rewrites the report
    assert "seed 1:" not in quick("electra_vs_mlm", tmp_path).stdout
