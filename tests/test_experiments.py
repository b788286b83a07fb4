"""The experiments' --quick modes run end to end (CI-sized), share runs, and resume."""

import json
import subprocess
import sys

import pytest

from .conftest import REPO, shared_data


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    shared_data("glue")
    shared_data("nltk_english_text")
    return tmp_path_factory.mktemp("experiments")


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
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


def trained(stdout):
    """Names of the pretraining runs a runner launched."""
    return {
        part.split("=", 1)[1]
        for line in stdout.splitlines()
        if " fit --config" in line
        for part in line.split()
        if part.startswith("--trainer.logger.init_args.name=")
    }


@pytest.mark.slow
def test_electra_vs_mlm_quick(root):
    stdout = quick("electra_vs_mlm", root)
    assert trained(stdout) == {"electra-g0.25-shared", "mlm"}
    report = (root / "README.md").read_text()
    for row in ("| ELECTRA |", "| MLM |", "| no pretraining |", "ELECTRA vs MLM:"):
        assert row in report
    plan = json.loads((root / "plan.json").read_text())
    assert plan["mlm_steps"] > plan["electra_steps"]  # equal FLOPs: MLM gets the generator's share
    kept = {p.name for p in (root / "results").iterdir()}  # the tables' source data
    assert {"plan.json", "glue-random.jsonl", "glue-mlm.jsonl", "pretrain-mlm.csv"} <= kept
    assert {"probe-random.json", "probe-mlm.json"} <= kept
    assert "## Linear probe" in report
    for png in ("pretraining.png", "scores.png"):
        assert (root / png).read_bytes()[:4] == b"\x89PNG"
    # resumable: a second run finds every stage done and only rewrites the report
    again = quick("electra_vs_mlm", root)
    assert not trained(again) and "seed 1:" not in again


@pytest.mark.slow
def test_generator_size_quick_reuses_the_shared_run(root):
    stdout = quick("generator_size", root)
    # the 1/4 generator is experiment 1's ELECTRA run: trained once
    assert trained(stdout) == {f"electra-g{s}-shared" for s in (0.125, 0.5, 1.0)}
    report = (root / "README.md").read_text()
    for row in ("| 1/8 |", "| 1/4 |", "| 1/2 |", "| 1 |", "Best average: generator"):
        assert row in report
    cfg = (root / "pretrain/electra-g0.125-shared/version_0/hparams.yaml").read_text()
    assert "generator_size: 0.125" in cfg


@pytest.mark.slow
def test_embedding_sharing_quick(root):
    stdout = quick("embedding_sharing", root)
    assert trained(stdout) == {"electra-g0.25-none", "electra-g0.25-gdes"}
    report = (root / "README.md").read_text()
    for row in ("| shared |", "| none |", "| gdes |", "gdes vs shared:"):
        assert row in report
