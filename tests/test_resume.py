"""Kill a run anywhere, resume it, and get bit-identical weights; checkpoint safety."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from electra_lightning.common.checkpoint import atomic_save, load_checkpoint

from .helpers import REPO, run_cli, tiny_args

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


@pytest.fixture(scope="module")
def straight(tmp_path_factory, corpus_dir, tokenizer_dir):
    """The uninterrupted run every interrupted one is compared with."""
    workdir = tmp_path_factory.mktemp("straight")
    run_cli("fit", *resume_args(corpus_dir, tokenizer_dir, workdir), cwd=workdir)
    assert final_state(workdir)["global_step"] == STEPS
    return workdir


def assert_same_run(straight, resumed_dir, stopped_at):
    """Weights, Adam moments and the losses logged after ``stopped_at`` equal the straight run's."""
    reference, resumed = final_state(straight), final_state(resumed_dir)
    assert resumed["global_step"] == STEPS
    for key, tensor in reference["state_dict"].items():
        assert torch.equal(tensor, resumed["state_dict"][key]), key
    ref_opt = reference["optimizer_states"][0]["state"]
    res_opt = resumed["optimizer_states"][0]["state"]
    for k in ref_opt:
        assert torch.equal(ref_opt[k]["exp_avg"], res_opt[k]["exp_avg"])
        assert torch.equal(ref_opt[k]["exp_avg_sq"], res_opt[k]["exp_avg_sq"])
    a, b = losses(straight), losses(resumed_dir)
    after = [s for s in a if s > stopped_at]
    assert after and all(a[s] == b[s] for s in after)


@pytest.mark.slow
def test_sigterm_to_the_process_group_saves_the_current_step_and_resumes_exactly(
    straight, tmp_path, corpus_dir, tokenizer_dir
):
    """SIGTERM (SLURM/Kubernetes preemption) to the whole group, workers included, with no
    periodic checkpoint due: exit 143, one line, last.ckpt at the current step, exact resume."""
    steps_file = tmp_path / "steps"
    helper = json.dumps(
        {"class_path": "tests.helpers.StepFile", "init_args": {"path": str(steps_file)}}
    )
    args = [
        *resume_args(corpus_dir, tokenizer_dir, tmp_path),
        "--trainer.callbacks.init_args.every_n_train_steps=1000",  # nothing saved periodically
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "electra_lightning", "fit", *args, f"--trainer.callbacks+={helper}"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as under a scheduler
    )
    while proc.poll() is None:  # bounded by the run itself: it ends at STEPS if never signalled
        if steps_file.exists() and int(steps_file.read_text()) >= 13:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be stopped"
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate()
    assert proc.returncode == 143, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    last = [line for line in err.splitlines() if line.startswith("stopped by SIGTERM")]
    assert len(last) == 1 and "Resume with the same command plus --ckpt_path last" in last[0]
    saved = final_state(tmp_path)
    stopped_at = saved["global_step"]
    assert stopped_at == int(steps_file.read_text())  # zero steps lost
    assert 13 <= stopped_at < STEPS
    assert f"at step {stopped_at}; saved" in last[0]

    run_cli("fit", *args, "--ckpt_path=last", cwd=tmp_path)
    assert_same_run(straight, tmp_path, stopped_at)


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGUSR1, 138)])
def test_sigint_and_sigusr1_save_and_exit_with_their_codes(
    signum, code, tmp_path, corpus_dir, tokenizer_dir, capsys
):
    from electra_lightning.cli.main import main

    from .helpers import cwd

    helper = json.dumps(
        {
            "class_path": "tests.helpers.SendSignal",
            "init_args": {"signum": int(signum), "at_step": 3},
        }
    )
    argv = [
        *map(str, tiny_args(corpus_dir, tokenizer_dir, steps=20)),
        f"--trainer.callbacks+={helper}",
    ]
    with cwd(tmp_path):
        assert main(["fit", *argv]) == code
    err = capsys.readouterr().err
    name = signal.Signals(signum).name
    assert f"stopped by {name} at step 4; saved" in err and "Traceback" not in err
    assert load_checkpoint(str(tmp_path / "runs/tiny/checkpoints/last.ckpt"))["global_step"] == 4
    assert signal.getsignal(signum) is not None  # handlers handed back after the run


@pytest.mark.slow
def test_sigkill_and_resume_is_bit_identical(straight, tmp_path, corpus_dir, tokenizer_dir):
    killed = tmp_path / "killed"
    killed.mkdir()

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
    ckpt = killed / "ckpt" / "last.ckpt"
    while proc.poll() is None:  # bounded by the run itself
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
    assert_same_run(straight, killed, killed_at)


@pytest.mark.parametrize(
    "error,reason",
    [
        (OSError(28, "No space left on device"), "No space left on device"),
        # what torch's zip writer raises on a full disk
        (
            RuntimeError(
                "[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0\n"
                "PytorchStreamWriter failed writing file data/0: file write failed"
            ),
            "PytorchStreamWriter failed writing file data/0: file write failed",
        ),
    ],
)
def test_atomic_save_keeps_previous_file_on_failure(tmp_path, monkeypatch, error, reason):
    path = tmp_path / "last.ckpt"
    atomic_save({"step": 1}, path)
    before = path.read_bytes()

    def disk_full(obj, f):
        f.write(b"partial")
        raise error

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(ValueError, match=f"{reason}.*earlier checkpoints are untouched"):
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


@pytest.mark.parametrize(
    ("hook", "signum"),
    [
        ("setup", signal.SIGTERM),
        ("on_sanity_check_start", signal.SIGTERM),
        ("on_sanity_check_start", signal.SIGUSR1),
        ("on_sanity_check_start", signal.SIGINT),
    ],
)
def test_a_stop_signal_before_training_exits_with_its_code_and_saves_nothing(
    hook, signum, tmp_path, corpus_dir, tokenizer_dir, capsys
):
    """The start-up window of a fresh run (set-up, the sanity check): it used to exit 0 (SIGTERM)
    or 1 (Ctrl-C) and a SLURM script then never requeued; now 143/138/130, nothing trained,
    nothing written."""
    from electra_lightning.cli.main import main

    from .helpers import cwd

    helper = json.dumps(
        {
            "class_path": "tests.helpers.SendSignalAt",
            "init_args": {"signum": int(signum), "hook": hook},
        }
    )
    argv = [
        *map(str, tiny_args(corpus_dir, tokenizer_dir, steps=6)),
        f"--trainer.callbacks+={helper}",
    ]
    with cwd(tmp_path):
        code = main(["fit", *argv])
    err = capsys.readouterr().err
    assert code == 128 + signum, err[-2000:]
    assert f"stopped by {signal.Signals(signum).name} before training started" in err, err[-2000:]
    assert "Traceback" not in err
    assert not list(tmp_path.rglob("*.ckpt"))


def test_sigterm_after_a_resume_restored_its_checkpoint_keeps_it(
    tmp_path, corpus_dir, tokenizer_dir, capsys
):
    from electra_lightning.cli.main import main

    from .helpers import cwd

    ckpt = tmp_path / "runs/tiny/checkpoints/last.ckpt"
    with cwd(tmp_path):
        assert main(["fit", *map(str, tiny_args(corpus_dir, tokenizer_dir, steps=2))]) == 0
    before = ckpt.read_bytes()
    helper = json.dumps(
        {
            "class_path": "tests.helpers.SendSignalAt",
            "init_args": {"signum": int(signal.SIGTERM), "hook": "on_load_checkpoint"},
        }
    )
    argv = [
        *map(str, tiny_args(corpus_dir, tokenizer_dir, steps=6)),
        f"--trainer.callbacks+={helper}",
    ]
    capsys.readouterr()
    with cwd(tmp_path):
        code = main(["fit", *argv, "--ckpt_path=last"])
    err = capsys.readouterr().err
    assert code == 143, err[-2000:]
    assert "stopped by SIGTERM before training started; nothing new to save" in err, err[-2000:]
    assert ckpt.read_bytes() == before  # the restored checkpoint is the state
    assert load_checkpoint(str(ckpt))["global_step"] == 2


def test_a_second_ctrl_c_while_saving_exits_130_and_leaves_no_temporary_file(
    tmp_path, corpus_dir, tokenizer_dir, capsys, monkeypatch
):
    import torch

    import electra_lightning.common.checkpoint as checkpoint_module
    from electra_lightning.cli.main import main

    from .helpers import cwd

    real_save = torch.save
    calls = []

    def interrupted_save(obj, f, *args, **kwargs):  # the second Ctrl-C arrives mid-write
        calls.append(1)
        if len(calls) == 1:
            f.write(b"half a checkpoint")
            os.kill(os.getpid(), signal.SIGINT)
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(checkpoint_module.torch, "save", interrupted_save)
    helper = json.dumps(
        {
            "class_path": "tests.helpers.SendSignal",
            "init_args": {"signum": int(signal.SIGINT), "at_step": 2},
        }
    )
    argv = [
        *map(str, tiny_args(corpus_dir, tokenizer_dir, steps=20)),
        f"--trainer.callbacks+={helper}",
    ]
    with cwd(tmp_path):
        code = main(["fit", *argv])
    err = capsys.readouterr().err
    assert code == 130, err[-2000:]
    assert "stopped by a second SIGINT without saving" in err and "Traceback" not in err
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]


def _accumulating_run(workdir, corpus_dir, tokenizer_dir, *extra):
    from electra_lightning.cli.main import main

    from .helpers import cwd

    args = [
        *map(str, tiny_args(corpus_dir, tokenizer_dir, steps=6)),
        "--trainer.accumulate_grad_batches=2",
        "--trainer.deterministic=true",
        "--trainer.limit_val_batches=0",
        f"--trainer.callbacks.init_args.dirpath={workdir / 'ckpt'}",
        f"--trainer.logger.init_args.save_dir={workdir / 'logs'}",
        *extra,
    ]
    workdir.mkdir(exist_ok=True)
    with cwd(workdir):
        return main(["fit", *args])


@pytest.mark.slow
@pytest.mark.parametrize("batch", [4, 5], ids=["mid-accumulation", "at-a-step-boundary"])
def test_a_stop_inside_gradient_accumulation_resumes_exactly(
    tmp_path, corpus_dir, tokenizer_dir, batch
):
    """accumulate_grad_batches=2: micro-batch 4 starts step 3's accumulation, 5 ends it. A
    SIGTERM at either finishes step 3's accumulation, saves at step 3, and the resumed run ends
    bit-identical to an uninterrupted one (it used to save mid-accumulation: max |Δ| 1.2e-3)."""
    assert _accumulating_run(tmp_path / "straight", corpus_dir, tokenizer_dir) == 0
    helper = json.dumps(
        {"class_path": "tests.helpers.SendSignal", "init_args": {"signum": 15, "at_batch": batch}}
    )
    stopped = tmp_path / "stopped"
    code = _accumulating_run(stopped, corpus_dir, tokenizer_dir, f"--trainer.callbacks+={helper}")
    assert code == 143
    assert load_checkpoint(str(stopped / "ckpt/last.ckpt"))["global_step"] == 3
    assert _accumulating_run(stopped, corpus_dir, tokenizer_dir, "--ckpt_path=last") == 0
    reference = load_checkpoint(str(tmp_path / "straight/ckpt/last.ckpt"))
    resumed = load_checkpoint(str(stopped / "ckpt/last.ckpt"))
    assert resumed["global_step"] == reference["global_step"] == 6
    for key, tensor in reference["state_dict"].items():
        assert torch.equal(tensor, resumed["state_dict"][key]), key
