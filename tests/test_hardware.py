"""Defaults that fit the machine at hand: a config's bf16 on a CPU that only emulates it trains in
fp32 with one line saying why and how to insist, and more DataLoader workers than usable cores
are capped with one line — the CPU's bf16 capability mocked both ways."""

from __future__ import annotations

import pytest
import yaml

from electra_lightning.cli.main import main
from electra_lightning.train import hardware

from .helpers import tiny_args

AVX2_FLAGS = "flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma bmi2\n"


@pytest.mark.parametrize(
    "cpuinfo, native",
    [
        (AVX2_FLAGS * 2, False),  # AMD EPYC with AVX2 only
        ("flags\t\t: avx2 avx512f avx512bw avx512_vnni\n", False),  # AVX-512 without BF16
        ("flags\t\t: avx2 avx512f avx512_bf16\n", True),  # e.g. Cooper Lake, Zen 4
        ("flags\t\t: avx2 avx512f amx_bf16 amx_tile\n", True),  # Sapphire Rapids
        ("Features\t: fp asimd sve bf16 i8mm\n", True),  # Arm Neoverse V1
        ("Features\t: fp asimd\n", False),
        (None, True),  # unreadable (not Linux): taken as native, nothing changes
    ],
)
def test_native_bf16_is_read_from_the_cpu_flags(cpuinfo, native, tmp_path):
    path = tmp_path / "cpuinfo"
    if cpuinfo is not None:
        path.write_text(cpuinfo)
    assert hardware.cpu_has_native_bf16(str(path)) is native


@pytest.mark.parametrize("native", [False, True])
@pytest.mark.parametrize("precision", ["bf16-mixed", "bf16-true", "32-true", "16-mixed", None])
@pytest.mark.parametrize("accelerator", ["cpu", "auto", "gpu"])
def test_bf16_falls_back_to_fp32_only_where_emulated(native, precision, accelerator, monkeypatch):
    monkeypatch.delenv(hardware.BF16_ENV, raising=False)
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: native)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    fitted = hardware.fit_precision(precision, accelerator)
    if native or accelerator == "gpu" or not str(precision).startswith("bf16"):
        assert fitted is None
        return
    new, note = fitted
    assert new == "32-true"
    assert note.startswith(f"note: trainer.precision {precision} -> 32-true: this CPU has no ")
    assert f"{hardware.BF16_ENV}=1 keeps {precision}" in note and "\n" not in note
    monkeypatch.setenv(hardware.BF16_ENV, "1")  # insisting keeps it
    assert hardware.fit_precision(precision, accelerator) is None


def test_the_env_var_can_also_refuse_bf16_on_a_native_cpu(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setenv(hardware.BF16_ENV, "0")
    assert hardware.fit_precision("bf16-mixed", "cpu")[0] == "32-true"


def test_workers_are_capped_at_the_usable_cores(monkeypatch):
    monkeypatch.setattr(hardware, "usable_cpus", lambda: 2)
    assert hardware.fit_workers(2) is None and hardware.fit_workers(0) is None
    cores, note = hardware.fit_workers(4)
    assert cores == 2
    assert note.startswith("note: data.num_workers 4 -> 2: this process may use 2 CPU cores")


@pytest.mark.parametrize("native", [False, True])
def test_a_bf16_config_on_a_cpu_without_it_trains_in_fp32(
    native, tmp_path, corpus_dir, tokenizer_dir, capsys, monkeypatch
):
    """The run as the user starts it: ``fit`` of a config with bf16-mixed and 2 workers on a
    1-core process. Without native bf16 it trains in 32-true, and the config it saves says so;
    with it, bf16-mixed stays. The workers are capped either way; each change is one line."""
    monkeypatch.delenv(hardware.BF16_ENV, raising=False)
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: native)
    monkeypatch.setattr(hardware, "usable_cpus", lambda: 1)
    monkeypatch.chdir(tmp_path)
    args = [
        "fit",
        *tiny_args(corpus_dir, tokenizer_dir, steps=2),
        "--trainer.precision=bf16-mixed",
        "--trainer.accelerator=cpu",
        "--trainer.limit_val_batches=0",
        "--data.num_workers=2",
    ]
    assert main(args) == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if line.startswith("note: ")]
    saved = yaml.safe_load((tmp_path / "runs/tiny/config.yaml").read_text())
    assert saved["data"]["num_workers"] == 1
    assert "note: data.num_workers 2 -> 1: this process may use 1 CPU core," in notes[-1]
    if native:
        assert saved["trainer"]["precision"] == "bf16-mixed"
        assert len(notes) == 1, notes
    else:
        assert saved["trainer"]["precision"] == "32-true"
        assert len(notes) == 2 and "trainer.precision bf16-mixed -> 32-true" in notes[0], notes


@pytest.mark.parametrize("dropped", [False, True])
def test_no_wandb_anonymous_line(dropped, tmp_path, capfd, monkeypatch):
    """wandb answers the ``anonymous=None`` Lightning passes with "The anonymous setting has no
    effect"; the CLI leaves the setting out (without that, the line is there: the test can fail)."""
    from lightning.pytorch.loggers import WandbLogger

    from electra_lightning.cli.lightning import drop_wandb_anonymous

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "false")
    logger = WandbLogger(save_dir=str(tmp_path), project="p")
    if dropped:
        drop_wandb_anonymous(logger)
    try:
        logger.experiment  # noqa: B018 (wandb.init)
    finally:
        import wandb

        wandb.finish()
        wandb.teardown()  # stop the in-process service (conftest drops its WANDB_SERVICE)
    err = capfd.readouterr().err
    assert ("anonymous setting has no effect" in err) is not dropped, err[-2000:]
