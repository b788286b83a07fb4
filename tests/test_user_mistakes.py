"""A user's mistake gets one line: unknown commands and options (no prefix abbreviations), config
typos, unreachable ``hub:`` datasets, a fresh run into another run's checkpoints, a resume with
nothing left to do."""

from __future__ import annotations

import pytest
import torch

from electra_lightning.cli.main import main

from .helpers import REPO

TINY = str(REPO / "configs" / "tiny.yaml")


def run_main(argv, cwd, capsys, monkeypatch) -> tuple[int, str]:
    monkeypatch.chdir(cwd)
    try:
        code = main(argv)
    except SystemExit as exit_info:
        code = exit_info.code
    captured = capsys.readouterr()
    return code, captured.err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err[-3000:]
    assert "Traceback" not in err and "usage:" not in err, err[-3000:]
    return lines[0]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--trainer.max_stepz", "3"], "did you mean --trainer.max_steps?"),
        # a prefix is not an abbreviation: argparse would silently take it as max_steps
        (["--trainer.max_step", "3"], "unrecognized arguments: --trainer.max_step 3"),
        (["--model.size.hiden_size", "3"], "did you mean --model.size.hidden_size?"),
        (["--data.batch_size", "abc"], 'key "data.batch_size"'),
    ],
)
def test_option_mistakes_are_one_line(args, expected, tmp_path, capsys, monkeypatch):
    code, err = run_main(["fit", "--config", TINY, *args], tmp_path, capsys, monkeypatch)
    assert code == 2
    line = one_error_line(err)
    assert expected in line and "fit --help" in line, line
    assert len(err.strip().splitlines()) <= 3, err  # not the ~90-line usage


def test_config_key_typo_is_one_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "typo.yaml").write_text("trainer:\n  max_stepz: 3\n")
    code, err = run_main(
        ["fit", "--config", TINY, "--config", "typo.yaml"], tmp_path, capsys, monkeypatch
    )
    assert code == 2
    assert "did you mean --trainer.max_steps?" in one_error_line(err)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("trainer:\n\tmax_steps: 3\n", "bad.yaml:2: not valid YAML"),
        ("trainer: [1, 2\n", "bad.yaml:2: not valid YAML"),
        ("model: 5\n", "bad.yaml: 'model:' must hold settings"),
        ("- a\n- b\n", "bad.yaml: a config is a mapping"),
    ],
)
def test_malformed_yaml_is_one_line(text, expected, tmp_path, capsys, monkeypatch):
    (tmp_path / "bad.yaml").write_text(text)
    code, err = run_main(["fit", "--config", "bad.yaml"], tmp_path, capsys, monkeypatch)
    assert code == 2
    assert expected in one_error_line(err)


def test_unknown_command_lists_every_command(tmp_path, capsys, monkeypatch):
    code, err = run_main(["fitt"], tmp_path, capsys, monkeypatch)
    assert code == 2
    line = one_error_line(err)
    assert "did you mean 'fit'?" in line
    for command in ("fit", "validate", "test", "tokenizer", "export", "predict", "compare"):
        assert command in line
    assert "glue" in line and "summary" in line


def test_summary_takes_the_run_dir_as_its_help_says(tmp_path, capsys, monkeypatch):
    from electra_lightning.cli.main import COMMANDS

    assert "summary RUN_DIR" in COMMANDS
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text(
        "step,train/gen_loss,train/tokens_seen,train/tokens_per_sec\n0,7.0,2048,1000\n"
        "9,6.5,20480,1000\n"
    )
    code, err = run_main(["summary", "run"], tmp_path, capsys, monkeypatch)
    assert code in (0, None), err
    assert (run / "curves.png").is_file()


def test_unreachable_hub_dataset_is_one_line(
    tmp_path, corpus_dir, tokenizer_dir, capsys, monkeypatch
):
    """Offline (HF_DATASETS_OFFLINE=1, as in every test): the shipped Small config's validation
    set on the Hub cannot be reached; one line names it and the fix, before any logger starts."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, err = run_main(
        [
            "fit",
            "--config",
            str(REPO / "configs" / "electra-small.yaml"),
            f"--data.train_files={corpus_dir / 'train.txt'}",
            f"--data.tokenizer={tokenizer_dir}",
        ],
        tmp_path,
        capsys,
        monkeypatch,
    )
    assert code == 2
    line = one_error_line(err)
    assert "data.val_files: cannot open the Hugging Face dataset 'Salesforce/wikitext'" in line
    assert "point data.val_files at local" in line
    assert not (tmp_path / "runs").exists()  # no W&B run, no directory


def tiny(corpus_dir, tokenizer_dir, steps: int) -> list[str]:
    return [
        "fit",
        "--config",
        TINY,
        f"--data.train_files={corpus_dir / 'train.txt'}",
        f"--data.val_files={corpus_dir / 'val.txt'}",
        f"--data.tokenizer={tokenizer_dir}",
        f"--trainer.max_steps={steps}",
        "--trainer.val_check_interval=2",
        "--trainer.limit_val_batches=1",
        "--trainer.enable_progress_bar=false",
        "--model.size.num_layers=1",
        "--data.num_workers=0",
        "--data.batch_size=4",
    ]


def test_no_run_is_lost_by_accident(tmp_path, corpus_dir, tokenizer_dir, capsys, monkeypatch):
    """A second fresh fit into the same checkpoint directory is refused (naming --ckpt_path last);
    a resume already at max_steps says so and writes nothing; a real resume goes on."""
    args = tiny(corpus_dir, tokenizer_dir, 2)
    code, err = run_main(args, tmp_path, capsys, monkeypatch)
    assert code in (0, None), err[-3000:]
    checkpoints = tmp_path / "runs/tiny/checkpoints"
    before = {p.name: p.read_bytes() for p in checkpoints.iterdir() if p.is_file()}
    assert "last.ckpt" in before

    code, err = run_main(args, tmp_path, capsys, monkeypatch)
    assert code == 2
    line = one_error_line(err)
    assert "runs/tiny/checkpoints already holds another run's checkpoints" in line
    assert "--ckpt_path last" in line and "start fresh" in line and "--run_name" in line
    after = {p.name: p.read_bytes() for p in checkpoints.iterdir() if p.is_file()}
    assert after == before
    logged = (tmp_path / "runs/tiny/metrics.csv").read_bytes()

    code, err = run_main([*args, "--ckpt_path=last"], tmp_path, capsys, monkeypatch)
    assert code in (0, None)
    assert "nothing to do:" in err and "already at step 2 = trainer.max_steps" in err, err
    assert "raise --trainer.max_steps" in err
    assert (tmp_path / "runs/tiny/metrics.csv").read_bytes() == logged
    assert "step:" not in err  # no progress bar

    resumed = [*tiny(corpus_dir, tokenizer_dir, 4), "--ckpt_path=last"]
    code, err = run_main(resumed, tmp_path, capsys, monkeypatch)
    assert code in (0, None), err[-3000:]
    last = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 4


def test_a_renamed_data_field_fails_at_start_up(
    tmp_path, corpus_dir, tokenizer_dir, capsys, monkeypatch
):
    """The model knows the data only through ``ElectraDataModule.contract``, linked by the CLI:
    if the data module stops publishing it (a rename), the run stops before training."""
    from electra_lightning.data.datamodule import ElectraDataModule

    monkeypatch.setattr(ElectraDataModule, "published", ElectraDataModule.contract, raising=False)
    monkeypatch.delattr(ElectraDataModule, "contract")
    with pytest.raises(AttributeError, match="contract"):
        run_main(tiny(corpus_dir, tokenizer_dir, 1), tmp_path, capsys, monkeypatch)
    assert not (tmp_path / "runs/tiny/checkpoints").exists()


def test_module_reads_nothing_from_the_data_module():
    """The contract is the only seam: train/pretraining.py never reaches into ``trainer.datamodule``."""
    source = (REPO / "electra_lightning" / "train" / "pretraining.py").read_text()
    assert "trainer.datamodule" not in source and "getattr(self.trainer," not in source


@pytest.mark.parametrize("option", [["--config", "configs/tiny"], ["--config=configs/tiny"]])
def test_a_config_without_yaml_gets_the_hint(option, capsys, monkeypatch):
    code, err = run_main(["fit", *option], REPO, capsys, monkeypatch)
    assert code == 2
    line = one_error_line(err)
    assert line == "error: --config: 'configs/tiny' does not exist; did you mean configs/tiny.yaml?"


@pytest.mark.parametrize(
    "configs",
    [
        ["configs/tiny.yaml"],
        [
            "configs/electra-small.yaml",
            "configs/trainer/ddp.yaml",
            "configs/logger/wandb.yaml",
            "configs/callbacks/probe.yaml",
        ],
    ],
)
def test_every_unknown_config_key_is_named_with_its_file(configs, tmp_path, capsys, monkeypatch):
    """jsonargparse stops at the first unknown key; the line names each (with the nearest
    option) and the file, and none of the shipped configs' own keys (groups, class init_args)."""
    (tmp_path / "two.yaml").write_text(
        "trainer:\n  max_stepz: 3\n  logger:\n    class_path: lightning.pytorch.loggers.CSVLogger\n"
        "    init_args:\n      save_dir: runs\nmodel:\n  warmup_stepz: 4\n  size:\n    hiden_size: 8\n"
    )
    args = [a for c in configs for a in ("--config", str(REPO / c))]
    code, err = run_main(["fit", *args, "--config", "two.yaml"], tmp_path, capsys, monkeypatch)
    assert code == 2
    assert one_error_line(err).startswith(
        "error: two.yaml: unknown keys 'trainer.max_stepz' (did you mean --trainer.max_steps?), "
        "'model.warmup_stepz' (did you mean --model.warmup_steps?), 'model.size.hiden_size' "
        "(did you mean --model.size.hidden_size?) (all options: "
    )


def test_summary_next_commands_say_how_to_run_them(tmp_path):
    """``make demo`` runs ``.venv/bin/python`` without activating anything: the "Next" commands
    (bare ``python -m electra_lightning``) come after the activation line, name only commands
    that exist, and fetch the GLUE data before fine-tuning on it."""
    from electra_lightning.cli.main import LIGHTNING_COMMANDS, OUR_COMMANDS
    from electra_lightning.report.summary import summarize

    (tmp_path / "metrics.csv").write_text("step,train/gen_loss,train/tokens_seen\n9,6.5,20480\n")
    header, *steps = summarize(str(tmp_path)).split("\nNext")[1].splitlines()
    assert "source .venv/bin/activate" in header, header
    commands = [line.split() for line in steps if "python" in line]
    assert all(c[:3] == ["python", "-m", "electra_lightning"] for c in commands), commands
    names = [c[3] for c in commands]
    assert set(names) <= {*LIGHTNING_COMMANDS, *OUR_COMMANDS}, names
    assert names.index("glue-data") < len(names) - 1 - names[::-1].index(
        "fit"
    )  # before fine-tuning
