"""Kill a run anywhere, resume it, and get bit-identical weights; checkpoint safety."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from electra_lightning.checkpoint import atomic_save, load_checkpoint

from .test_cli import REPO, run_cli, tiny_args

STEPS, EVERY = 40, 4


def resume_args(corpus_dir, tokenizer_dir, workdir):
    return [
        *tiny_args(corpus_dir, tokenizer_dir, steps=STEPS),
        "--data.num_workers=2",
        "--trainer.deterministic=true",
        "--trainer.log_every_n_steps=1",
        f"--trainer.callbacks.init_args.every_n_train_steps={EVERY}",
        f"--trainer.callbacks.init_args.dirpath={workdir / 'ckpt'}",
        f"--trainer.logger.init_args.save_dir={workdir / 'logs'}",
        "--trainer.val_check_interval=10",
    ]


def final_state(workdir):
    return load_checkpoint(str(workdir / "ckpt" / "last.ckpt"))


def losses(workdir):
    rows = []
    for path in sorted((workdir / "logs").rglob("metrics.csv")):
        rows += [r for r in csv.DictReader(open(path)) if r.get("train/loss")]
    return {int(r["step"]): float(r["train/loss"]) for r in rows}


@pytest.mark.slow
def test_sigkill_and_resume_is_bit_identical(tmp_path, corpus_dir, tokenizer_dir):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    straight.mkdir(), killed.mkdir()
    run_cli("fit", *resume_args(corpus_dir, tokenizer_dir, straight), cwd=straight)
    reference = final_state(straight)
    assert reference["global_step"] == STEPS

    # SIGKILL the second run somewhere after its second checkpoint
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "electra_lightning",
            "fit",
            *resume_args(corpus_dir, tokenizer_dir, killed),
        ],
        cwd=killed,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    ckpt = killed / "ckpt" / "last.ckpt"
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists() and load_checkpoint(str(ckpt))["global_step"] >= 2 * EVERY:
            break
        time.sleep(0.2)
    time.sleep(0.7)  # an arbitrary point between checkpoints
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = load_checkpoint(str(ckpt))["global_step"]
    assert 2 * EVERY <= killed_at < STEPS

    run_cli("fit", *resume_args(corpus_dir, tokenizer_dir, killed), "--ckpt_path=last", cwd=killed)
    resumed = final_state(killed)
    assert resumed["global_step"] == STEPS
    for key, tensor in reference["state_dict"].items():
        assert torch.equal(tensor, resumed["state_dict"][key]), key
    # optimizer moments too
    ref_opt, res_opt = (
        reference["optimizer_states"][0]["state"],
        resumed["optimizer_states"][0]["state"],
    )
    for k in ref_opt:
        assert torch.equal(ref_opt[k]["exp_avg"], res_opt[k]["exp_avg"])
    # the steps after the resume logged the same losses
    a, b = losses(straight), losses(killed)
    after = [s for s in a if s > killed_at]
    assert after and all(a[s] == b[s] for s in after)


def test_atomic_save_keeps_previous_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    atomic_save({"step": 1}, path)
    before = path.read_bytes()

    def disk_full(obj, f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(
        ValueError, match="No space left on device.*earlier checkpoints are untouched"
    ):
        atomic_save({"step": 2}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temp file left behind


def test_corrupt_and_unsafe_checkpoints_are_refused(tmp_path):
    good = tmp_path / "good.ckpt"
    atomic_save({"state_dict": {"w": torch.ones(1000)}}, good)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[:500])
    with pytest.raises(ValueError, match="truncated.ckpt' is truncated or corrupt"):
        load_checkpoint(str(truncated))
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="garbage.ckpt"):
        load_checkpoint(str(garbage))

    class RunsCode:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": RunsCode()}, evil)
    with pytest.raises(ValueError, match="refused to load .*evil.ckpt.*would run code"):
        load_checkpoint(str(evil))
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(ValueError, match="does not exist"):
        load_checkpoint(str(tmp_path / "nope.ckpt"))


_ = (REPO, Path)
