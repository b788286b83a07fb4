"""The first five minutes: a quick ``--help``, a quiet run, a progress bar in steps, each run's
own config, output never read back as input."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

import pytest

from electra_lightning.data.datamodule import exclude_outputs

from .helpers import REPO, run_cli, tiny_args

HEAVY = ("torch", "lightning", "transformers", "pytorch_lightning")
HELP_COMMANDS = [
    ["--help"],
    ["tokenizer", "--help"],
    ["export", "--help"],
    ["predict", "--help"],
    ["predict", "classify", "--help"],
    ["compare", "--help"],
    ["glue", "--help"],
    ["glue-data", "--help"],
    ["summary", "--help"],
]


def test_help_of_the_cli_and_its_commands_imports_no_heavy_library():
    """Deterministic half of 'quick': nothing heavy is imported to print any help."""
    probe = f"""
import contextlib, io, json, sys
from electra_lightning.cli.main import main
out = {{}}
for argv in {HELP_COMMANDS!r}:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        try:
            main(argv)
        except SystemExit:
            pass
    heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))
    out[" ".join(argv)] = [heavy, buffer.getvalue()[:400]]
print(json.dumps(out))
"""
    proc = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for command, (heavy, text) in result.items():
        assert heavy == [], f"`{command}` imported {heavy}"
        assert "usage: python -m electra_lightning" in text, (command, text)


def _wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=REPO, capture_output=True, check=True)
    return time.perf_counter() - start


def test_help_is_faster_than_importing_torch():
    """Measured side by side in this process tree (a ratio, not seconds): the median of three
    `--help` calls against the median of three bare `import torch`."""
    help_times, torch_times = [], []
    for _ in range(3):  # interleaved, so load on the machine hits both alike
        help_times.append(_wall([sys.executable, "-m", "electra_lightning", "--help"]))
        torch_times.append(_wall([sys.executable, "-c", "import torch"]))
    ratio = statistics.median(help_times) / statistics.median(torch_times)
    print(f"--help / import torch = {ratio:.2f}")
    assert ratio < 1.0


NOISE = [
    "Unable to serialize instance",  # jsonargparse on our own plugin
    "litlogger",  # Lightning's advert
    "LeafSpec",  # a torch/_pytree deprecation from Lightning
    "Total FLOPs",  # Lightning's summary with a FLOPs column of 0
    "Epoch 0/-2",  # the per-epoch bar of an endless stream
    "`weights_only` was not set",  # we always load with weights_only=True
    "Trainer already configured with model summary",
]


@pytest.mark.slow
def test_a_short_fit_prints_no_library_noise_and_a_step_progress_bar(
    tmp_path, corpus_dir, tokenizer_dir
):
    args = [a for a in tiny_args(corpus_dir, tokenizer_dir, steps=6) if "progress_bar" not in a]
    args.append("--trainer.log_every_n_steps=2")
    first = run_cli("fit", *args, "--trainer.max_steps=4", cwd=tmp_path, env={"COLUMNS": "80"})
    resumed = run_cli("fit", *args, "--ckpt_path=last", cwd=tmp_path, env={"COLUMNS": "80"})
    for proc in (first, resumed):
        text = proc.stdout + proc.stderr
        for noise in NOISE:
            assert noise not in text, (noise, text[-3000:])
        assert "ElectraPretraining:" in text and "training FLOPs" in text  # our summary
    # our config copy in the checkpoint directory must not trip Lightning's "not empty" warning
    # on a fresh run (on a resume the directory rightly holds last.ckpt)
    assert "is not empty" not in first.stderr
    bar = resumed.stdout.replace("\r", "\n")
    assert "step: 6/6 100%" in bar and "tok/s=" in bar and "Epoch" not in bar
    widest = max(len(line) for line in bar.splitlines() if line.startswith("step:"))
    assert widest <= 80, widest  # readable in an 80-column terminal (COLUMNS=80 below)


def test_every_run_keeps_its_own_config(tmp_path, corpus_dir, tokenizer_dir, capsys):
    from .helpers import run_main

    args = ["fit", *tiny_args(corpus_dir, tokenizer_dir, steps=2)]
    assert run_main(args, tmp_path, capsys)[0] == 0
    resume = [*args, "--trainer.max_steps=3", "--ckpt_path=last"]
    assert run_main(resume, tmp_path, capsys)[0] == 0
    # the run's directory holds the config it last ran with (the resume's); no shared copy
    assert "max_steps: 3" in (tmp_path / "runs/tiny/config.yaml").read_text()
    assert "max_steps: 3" in (tmp_path / "runs/tiny/checkpoints/config.yaml").read_text()
    assert not (tmp_path / "runs/config.yaml").exists()
    assert not list((tmp_path / "runs/tiny").glob("version_*"))


def test_output_directories_are_never_read_as_corpus(tmp_path, corpus_dir, tokenizer_dir, capsys):
    """A corpus directory that holds the run's own logs: those files are left out, with a warning."""
    from .helpers import run_main

    corpus = tmp_path / "corpus"
    (corpus / "runs/tiny/version_0").mkdir(parents=True)
    (corpus / "train.txt").write_text((corpus_dir / "train.txt").read_text())
    (corpus / "runs/tiny/version_0/requirements.txt").write_text("torch==2.13.0\n")  # as W&B writes
    args = [
        "fit",
        *tiny_args(corpus_dir, tokenizer_dir, steps=2),
        f"--data.train_files={corpus}",
        f"--trainer.logger.init_args.save_dir={corpus / 'runs'}",
        f"--trainer.callbacks.init_args.dirpath={corpus / 'runs/tiny/checkpoints'}",
    ]
    code, err = run_main(args, tmp_path, capsys)
    assert code == 0, err[-2000:]
    assert "data.train_files: left out 1 file(s) inside this run's output directories" in err

    inside = [str(corpus / "runs/tiny/version_0/requirements.txt")]
    with pytest.raises(ValueError, match="every file is inside this run's output directories"):
        exclude_outputs(inside, [str(corpus / "runs/tiny")], "data.train_files")
    assert exclude_outputs(["hub:wikitext"], [str(corpus)], "x") == ["hub:wikitext"]
