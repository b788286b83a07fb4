"""environment.yml is a valid conda spec that mirrors requirements.txt (no conda needed)."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def load():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    return env, conda, pip


def requirements():
    lines = (REPO / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_structure_and_conda_specs():
    rattler = pytest.importorskip("rattler")
    env, conda, pip = load()
    assert env["name"] == "electra-lightning" and env["channels"]
    for spec in conda:
        rattler.MatchSpec(spec)  # raises on an invalid conda spec
    assert any(s.startswith("python") for s in conda) and any(s.startswith("pip") for s in conda)


def test_pip_section_mirrors_requirements():
    _, _, pip = load()
    assert [p for p in pip if not p.startswith("-e")] == requirements()
    assert "torch==2.13.0" in pip


@pytest.mark.slow
def test_pip_section_resolves():
    _, _, pip = load()
    pins = [p for p in pip if not p.startswith("-e")]
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--quiet", *pins],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_make_venv_takes_torch_from_torch_index_when_given():
    """`make venv TORCH_INDEX=URL` installs torch from that index before requirements.txt (the
    README's CPU-only and other-CUDA installs); without it, nothing but requirements.txt."""
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("make absent")
    root = Path(__file__).resolve().parents[1]

    def dry_run(*args):
        return subprocess.run(
            ["make", "-n", "-B", "venv", "VENV=/nonexistent-venv", *args],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    given = dry_run("TORCH_INDEX=https://example.invalid/whl/cpu").splitlines()
    torch_line = next(i for i, line in enumerate(given) if "--index-url" in line)
    assert "torch==2.13.0 --index-url https://example.invalid/whl/cpu" in given[torch_line]
    requirements = next(i for i, line in enumerate(given) if "-r requirements.txt" in line)
    assert torch_line < requirements
    assert "--index-url" not in dry_run()
    readme = " ".join((root / "README.md").read_text().split())
    assert "TORCH_INDEX=https://download.pytorch.org/whl/cpu" in readme
    assert "CUDA build" in readme
