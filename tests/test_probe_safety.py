"""A side job never costs training: the downstream probe's data is checked as a whole before
training starts, and a probe that fails while training runs is one warning line, not a crash
that loses the steps since the last checkpoint."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from .helpers import REPO, run_main, tiny_args


def glue_dir(root: Path, train: list[tuple[str, int]], dev: list[tuple[str, int]]) -> Path:
    """A GLUE root with SST-2's layout: ``SST-2/{train,dev}.tsv`` (header ``sentence\\tlabel``)."""
    task = root / "glue" / "SST-2"
    task.mkdir(parents=True)
    for name, rows in (("train.tsv", train), ("dev.tsv", dev)):
        lines = ["sentence\tlabel", *(f"{text}\t{label}" for text, label in rows)]
        (task / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root / "glue"


BOTH = [("a fine film", 1), ("a dull film", 0), ("warm and funny", 1), ("tedious", 0)]


def probe_fit(corpus_dir, tokenizer_dir, data_dir, steps=10):
    """The issue's command: a tiny pretraining run with configs/callbacks/probe.yaml and
    ``--probe.every_n_steps 10``."""
    return [
        "fit",
        *tiny_args(corpus_dir, tokenizer_dir, steps=steps),
        "--trainer.callbacks.init_args.every_n_train_steps=10",
        "--config",
        REPO / "configs/callbacks/probe.yaml",
        f"--probe.data_dir={data_dir}",
        "--probe.every_n_steps=10",
        "--probe.train_examples=64",
    ]


def test_probe_data_of_one_row_is_refused_before_training(
    tmp_path, corpus_dir, tokenizer_dir, capsys
):
    """The issue's case: train.tsv of one row passed the start-up check (it read one example)
    and the probe crashed the run at step 10 (rc 1, RuntimeError from logistic_regression, no
    last.ckpt). Now: one line naming the file, exit 2, before a step is trained."""
    glue = glue_dir(tmp_path, train=[("a fine film", 1)], dev=BOTH)
    code, err = run_main(probe_fit(corpus_dir, tokenizer_dir, glue), tmp_path, capsys)
    assert code == 2, err[-2000:]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err[-2000:]
    assert "SST-2/train.tsv' gives 1 example(s) with only label 1" in errors[0]
    assert "Traceback" not in err
    assert not (tmp_path / "runs/tiny/checkpoints/last.ckpt").exists()


@pytest.mark.parametrize(
    ("train", "dev", "message"),
    [
        (
            [("good", 1), ("great", 1), ("fine", 1)],
            BOTH,
            "train.tsv' gives 3 example(s) with only label 1",
        ),
        (BOTH, [("bad", 0), ("awful", 0)], "dev.tsv' gives 2 example(s) with only label 0"),
    ],
    ids=["train one label", "dev one label"],
)
def test_probe_data_with_one_label_is_refused(tmp_path, train, dev, message):
    from electra_lightning.finetune.probe import check_probe_data

    glue = glue_dir(tmp_path, train, dev)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_probe_data(str(glue), "sst2", 64, 0)


def test_probe_data_one_label_among_the_examples_read_is_refused(tmp_path):
    """Both labels in the file, but the probe reads only the first train_examples."""
    from electra_lightning.finetune.probe import check_probe_data

    glue = glue_dir(tmp_path, [("good", 1), ("great", 1), ("bad", 0)], BOTH)
    check_probe_data(str(glue), "sst2", 0, 0)  # all of it: both labels
    with pytest.raises(ValueError, match=r"the first 2 \(probe.train_examples\) read"):
        check_probe_data(str(glue), "sst2", 2, 0)


def test_probe_data_not_utf8_names_the_file(tmp_path):
    from electra_lightning.finetune.probe import check_probe_data

    glue = glue_dir(tmp_path, BOTH, BOTH)
    (glue / "SST-2/dev.tsv").write_bytes(
        "sentence\tlabel\nza\u017c\u00f3\u0142\u0107\t1\n".encode("cp1250")
    )
    with pytest.raises(ValueError, match=r"SST-2/dev.tsv' is not UTF-8 text \(byte 0x"):
        check_probe_data(str(glue), "sst2", 64, 0)


def test_a_probe_that_fails_while_training_is_one_warning_and_the_run_goes_on(
    tmp_path, corpus_dir, tokenizer_dir, capsys, monkeypatch
):
    """Any failure inside the probe at step 10 (here: the probe itself raising): one warning
    line, training continues, last.ckpt at the final step and the CSV log are written, exit 0."""
    import electra_lightning.finetune.probe

    def broken(*args, **kwargs):
        raise RuntimeError("value cannot be converted to type float without overflow")

    monkeypatch.setattr(electra_lightning.finetune.probe, "linear_probe", broken)
    glue = glue_dir(tmp_path, BOTH, BOTH)
    code, err = run_main(probe_fit(corpus_dir, tokenizer_dir, glue, steps=12), tmp_path, capsys)
    assert code == 0, err[-3000:]
    warnings = [line for line in err.splitlines() if "the probe failed" in line]
    assert warnings == [
        "warning: the probe failed at step 10 (RuntimeError: value cannot be converted to type "
        "float without overflow); training goes on, next probe at step 20",
        "warning: the probe failed at step 12 (RuntimeError: value cannot be converted to type "
        "float without overflow); training goes on, next probe at step 22",
    ], err[-3000:]
    from electra_lightning.common.checkpoint import load_checkpoint

    ckpt = load_checkpoint(str(tmp_path / "runs/tiny/checkpoints/last.ckpt"))
    assert ckpt["global_step"] == 12
    rows = list(csv.DictReader(open(tmp_path / "runs/tiny/metrics.csv")))
    assert rows and "probe/sst2_acc" not in rows[0]


def test_probe_options_without_probe_tasks_say_so(tmp_path, corpus_dir, tokenizer_dir, capsys):
    """``--probe.*`` without configs/callbacks/probe.yaml (no probe.tasks): one warning line."""
    argv = [
        "fit",
        *tiny_args(corpus_dir, tokenizer_dir, steps=1),
        "--trainer.limit_val_batches=0",
        "--probe.every_n_steps=10",
        "--probe.data_dir=elsewhere",
    ]
    code, err = run_main(argv, tmp_path, capsys)
    assert code == 0, err[-3000:]
    lines = [line for line in err.splitlines() if "probe.tasks" in line]
    assert lines == [
        "warning: probe.data_dir, probe.every_n_steps are set but probe.tasks is empty, so no "
        "probe runs; add --config configs/callbacks/probe.yaml (or --probe.tasks [sst2])"
    ], err[-3000:]
