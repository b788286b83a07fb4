"""Scale-out on CPU (gloo, loopback only): DDP, two simulated nodes, FSDP2; W&B offline; compare."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from .helpers import HANG_GUARD, REPO, run_cli, tiny_args

pytestmark = pytest.mark.slow
AUDIT = "tests.helpers.RankAudit"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dist_args(corpus_dir, tokenizer_dir, workdir, steps=8, *extra):
    audit = json.dumps({"class_path": AUDIT, "init_args": {"out_dir": str(workdir / "audit")}})
    return [
        *tiny_args(corpus_dir, tokenizer_dir, steps=steps),
        *extra,  # e.g. --config configs/trainer/ddp.yaml: the flags below override it
        "--trainer.accelerator=cpu",  # every distributed test: CPU, gloo, fp32
        "--trainer.precision=32-true",
        "--data.num_workers=1",
        "--trainer.val_check_interval=4",
        f"--trainer.callbacks+={audit}",
    ]


def audits(workdir, n):
    return [torch.load(workdir / "audit" / f"rank{r}.pt") for r in range(n)]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def env_with_path():
    return {**os.environ, "PYTHONPATH": str(REPO)}


def fit(workdir, *args):
    """``fit`` in a subprocess that can import tests.helpers; fails the test on a non-zero exit."""
    proc = subprocess.run(
        [sys.executable, "-m", "electra_lightning", "fit", *args],
        cwd=workdir,
        env=env_with_path(),
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_ddp_two_processes_train_one_model_on_disjoint_data(tmp_path, corpus_dir, tokenizer_dir):
    args = dist_args(
        corpus_dir,
        tokenizer_dir,
        tmp_path,
        8,
        "--config",
        str(REPO / "configs/trainer/ddp.yaml"),
        "--trainer.devices=2",
    )
    fit(tmp_path, *args)
    r0, r1 = audits(tmp_path, 2)
    assert_same_weights(r0["state"], r1["state"])
    assert len(r0["samples"]) == len(r1["samples"]) == 8 * 16
    assert not set(r0["samples"]) & set(r1["samples"]), "ranks trained on the same examples"


def test_two_nodes_on_loopback_train_the_same_model(tmp_path, corpus_dir, tokenizer_dir):
    port = free_port()
    procs = []
    for node in range(2):
        env = {
            **env_with_path(),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "NODE_RANK": str(node),
        }
        args = dist_args(
            corpus_dir,
            tokenizer_dir,
            tmp_path,
            6,
            "--config",
            str(REPO / "configs/trainer/ddp.yaml"),
            "--trainer.num_nodes=2",
            "--trainer.devices=1",
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "electra_lightning", "fit", *args],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outs = [p.communicate(timeout=HANG_GUARD) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    r0, r1 = audits(tmp_path, 2)
    assert_same_weights(r0["state"], r1["state"])
    assert not set(r0["samples"]) & set(r1["samples"])


@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
def test_fsdp2_on_cpu_trains_saves_sharded_resumes_and_exports(
    tmp_path, corpus_dir, tokenizer_dir, compile
):
    base = [
        "--config",
        str(REPO / "configs/trainer/fsdp2.yaml"),
        "--trainer.devices=2",
        f"--model.compile={str(compile).lower()}",
    ]
    args = dist_args(corpus_dir, tokenizer_dir, tmp_path, 4, *base)
    fit(tmp_path, *args)
    ckpt = tmp_path / "runs/tiny/checkpoints/last.ckpt"
    assert ckpt.is_dir(), "expected a sharded (distributed) checkpoint directory"
    # resume the sharded checkpoint for 4 more steps
    args = dist_args(corpus_dir, tokenizer_dir, tmp_path, 8, *base)
    fit(tmp_path, *args, "--ckpt_path=last")
    r0, r1 = audits(tmp_path, 2)
    assert_same_weights(r0["state"], r1["state"])
    run_cli("export", "--ckpt_path", str(ckpt), "--output_dir", str(tmp_path / "hf"), cwd=tmp_path)

    from transformers import ElectraForPreTraining

    from electra_lightning.train.loading import load_any_checkpoint, module_from_checkpoint

    checkpoint = load_any_checkpoint(str(ckpt))
    assert checkpoint["global_step"] == 8
    module = module_from_checkpoint(checkpoint)
    module.load_state_dict(r0["state"])  # the full weights the ranks held at the end
    hf = ElectraForPreTraining.from_pretrained(tmp_path / "hf" / "discriminator").eval()
    for p in [*module.parameters(), *hf.parameters()]:
        p.data = p.data.clone()
    ids = torch.randint(5, 2000, (2, 24))
    with torch.no_grad():
        assert torch.equal(module.discriminator(input_ids=ids).logits, hf(input_ids=ids).logits)


def test_killing_a_ddp_rank_ends_the_job(tmp_path, corpus_dir, tokenizer_dir):
    args = dist_args(
        corpus_dir,
        tokenizer_dir,
        tmp_path,
        100000,
        "--config",
        str(REPO / "configs/trainer/ddp.yaml"),
        "--trainer.devices=2",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "electra_lightning", "fit", *args],
        cwd=tmp_path,
        env=env_with_path(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ckpt = tmp_path / "runs/tiny/checkpoints/last.ckpt"
    deadline = time.time() + HANG_GUARD
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    assert ckpt.exists() and proc.poll() is None, "training did not get going"
    children = subprocess.run(
        ["pgrep", "-P", str(proc.pid), "-f", "electra_lightning"], capture_output=True, text=True
    ).stdout.split()
    assert children, "no second rank process found"
    os.kill(int(children[0]), signal.SIGKILL)
    try:  # a hang guard far above any machine's speed, far below the 30-min collective timeout
        code = proc.wait(timeout=HANG_GUARD)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the job hung after a rank died")
    assert code != 0


def test_wandb_offline_run_holds_config_and_history(tmp_path, corpus_dir, tokenizer_dir):
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_MODE", "WANDB_API_KEY")}
    env["HOME"] = str(tmp_path)  # no ~/.netrc credentials: must go offline by itself, no prompt
    args = [
        *tiny_args(corpus_dir, tokenizer_dir, steps=6),
        "--config",
        str(REPO / "configs/logger/wandb.yaml"),
        "--run_name=offline-test",  # the W&B run's name and directory runs/offline-test
        "--trainer.logger.init_args.group=tests",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "electra_lightning", "fit", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "wandb sync" in proc.stdout
    (run_dir,) = list((tmp_path / "runs" / "offline-test" / "wandb").glob("offline-run-*"))
    wandb = os.path.join(os.path.dirname(sys.executable), "wandb")
    summary = json.loads(
        subprocess.run(
            [wandb, "leet", "inspect", "--summary", "--json", str(run_dir)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    config = summary["config"]
    assert config["model.size.hidden_size"] == 128 and config["data.max_seq_length"] == 128
    assert config["data.tokenizer"] == str(tokenizer_dir) and config["model/params_total"] > 0
    assert summary["name"] == "offline-test"
    # each hyperparameter once, under its CLI name (no un-prefixed copies from the modules)
    assert not {"hidden_size", "max_seq_length", "tokenizer", "generator_size"} & set(config)
    assert (run_dir / "files" / "config.yaml").is_file()  # the run's own saved config
    assert not (tmp_path / "runs" / "config.yaml").exists()  # nothing shared between runs
    records = subprocess.run(
        [wandb, "leet", "inspect", "--json", str(run_dir)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    history = [
        json.loads(line)["history"]["item"]
        for line in records.splitlines()
        if '"type":"history"' in line
    ]
    keys = set().union(*history)
    assert {"train/gen_loss", "train/disc_loss", "train/tokens_per_sec"} <= keys

    # compare: a W&B run next to a CSV run (another name: another run directory)
    run_cli("fit", *tiny_args(corpus_dir, tokenizer_dir, steps=10), cwd=tmp_path)
    out = run_cli(
        "compare",
        str(run_dir),
        str(tmp_path / "runs/tiny"),
        "--output",
        str(tmp_path / "cmp.png"),
        cwd=tmp_path,
    ).stdout
    assert (
        "offline-test" in out and "final train/gen_loss" in out and "model.size.hidden_size" in out
    )
    assert (tmp_path / "cmp.png").read_bytes()[:4] == b"\x89PNG"


def test_resuming_on_another_device_count_is_one_line_from_every_rank(
    tmp_path, corpus_dir, tokenizer_dir
):
    """The data position of 1 process cannot continue on 2: every rank refuses it before any
    collective, so the user sees one line (rank 0's) and no gloo traceback from rank 1."""
    fit(tmp_path, *dist_args(corpus_dir, tokenizer_dir, tmp_path, 2))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "electra_lightning",
            "fit",
            *dist_args(corpus_dir, tokenizer_dir, tmp_path, 4),
            "--trainer.devices=2",
            "--trainer.strategy=ddp",
            "--ckpt_path=last",
        ],
        cwd=tmp_path,
        env=env_with_path(),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "saved with 1 shards" in errors[0] and "this run has 2" in errors[0]
    assert "Traceback" not in proc.stderr and "[rank1]" not in proc.stderr


def _rank_auc(rank: int, world: int, init_file: str, out_dir: str) -> None:
    """One rank of the val/disc_auc reduction test: its half of the scores into the module's
    own metric, then compute() (torchmetrics gathers every rank's state)."""
    import torch.distributed as dist

    from electra_lightning.data.contract import DataContract
    from electra_lightning.model.electra import ModelSize
    from electra_lightning.train.pretraining import ElectraPretraining

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    module = ElectraPretraining(
        contract=DataContract(50, 0, 8, 2), size=ModelSize(16, 1, 1, 16, 16, 16)
    )
    scores = [[0.9, 0.8, 0.1, 0.2], [0.3, 0.4, 0.5, 0.6]][rank]
    metric = module.val_metrics["disc_auc"]
    metric.update(torch.tensor(scores), torch.tensor([1, 1, 0, 0]))
    with open(os.path.join(out_dir, f"auc{rank}.txt"), "w") as f:
        f.write(str(float(metric.compute())))
    dist.destroy_process_group()


def test_val_disc_auc_is_one_auc_over_every_ranks_tokens(tmp_path):
    """Two gloo ranks, one perfect (AUC 1) and one inverted (AUC 0): val/disc_auc is the AUC of
    all their tokens together (12 of 16 replaced-original pairs ranked right: 0.75) on both
    ranks, not the mean of the ranks' AUCs (0.5)."""
    import torch.multiprocessing as mp

    mp.spawn(_rank_auc, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        assert float((tmp_path / f"auc{rank}.txt").read_text()) == pytest.approx(0.75)


def test_sigterm_to_one_ddp_rank_stops_every_rank_at_the_next_agreement(
    tmp_path, corpus_dir, tokenizer_dir
):
    """Rank 1 alone gets SIGTERM at step 3; the ranks compare notes every log_every_n_steps (5)
    steps, so both stop after step 5 with one checkpoint at step 5, exit 143, no traceback."""
    helper = json.dumps(
        {
            "class_path": "tests.helpers.SendSignal",
            "init_args": {"signum": int(signal.SIGTERM), "at_step": 3, "rank": 1},
        }
    )
    args = dist_args(
        corpus_dir,
        tokenizer_dir,
        tmp_path,
        40,
        "--config",
        str(REPO / "configs/trainer/ddp.yaml"),
        "--trainer.devices=2",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "electra_lightning", "fit", *args, f"--trainer.callbacks+={helper}"],
        cwd=tmp_path,
        env=env_with_path(),
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
    )
    assert proc.returncode == 143, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "stopped by SIGTERM at step 5; saved" in proc.stderr, proc.stderr[-2000:]
    from electra_lightning.common.checkpoint import load_checkpoint

    assert load_checkpoint(str(tmp_path / "runs/tiny/checkpoints/last.ckpt"))["global_step"] == 5


def test_ddp_validation_file_of_one_document_gives_every_rank_batches(
    tmp_path, corpus_dir, tokenizer_dir
):
    """A validation file without blank lines is one document: split by documents, rank 1 had
    no validation batch, skipped the sanity check, and rank 0 waited in the epoch-end collective
    until the gloo timeout (5 min), then crashed with nothing saved. Validation is now dealt by
    batches, so both ranks validate. The collective timeout is cut to 3 minutes so a
    regression fails instead of hanging."""
    lines = [line for line in (corpus_dir / "val.txt").read_text().splitlines() if line.strip()]
    one_document = tmp_path / "one-document.txt"
    one_document.write_text("\n".join((lines * 3000)[:3000]) + "\n")
    args = dist_args(
        corpus_dir,
        tokenizer_dir,
        tmp_path,
        4,
        "--config",
        str(REPO / "configs/trainer/ddp.yaml"),
        "--trainer.devices=2",
        "--trainer.strategy.init_args.timeout=0:03:00",
    )
    fit(tmp_path, *args, f"--data.val_files={one_document}")
    r0, r1 = audits(tmp_path, 2)
    # the sanity check's 2 batches and the validation at step 4's 2 (limit_val_batches=2)
    assert r0["val_batches"] == r1["val_batches"] == 4, (r0["val_batches"], r1["val_batches"])


def test_ddp_training_shard_without_documents_is_one_line_from_its_rank(
    tmp_path, corpus_dir, tokenizer_dir
):
    """A training file of one document (no blank lines) on 2 ranks: with data.seed=2 the
    document's byte range is dealt to rank 0, so rank 1's shard is empty. Its error used to be
    silenced (only rank 0 prints) and the user saw only rank 0's gloo traceback; now the line
    comes from rank 1 and names the layout and the fix."""
    lines = [line for line in (corpus_dir / "train.txt").read_text().splitlines() if line.strip()]
    one_document = tmp_path / "one-document.txt"
    one_document.write_text("\n".join(lines[:3000]) + "\n")
    args = dist_args(
        corpus_dir,
        tokenizer_dir,
        tmp_path,
        4,
        "--config",
        str(REPO / "configs/trainer/ddp.yaml"),
        "--trainer.devices=2",
        "--trainer.strategy.init_args.timeout=0:03:00",
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "electra_lightning",
            "fit",
            *args,
            f"--data.train_files={one_document}",
            "--data.seed=2",
        ],
        cwd=tmp_path,
        env=env_with_path(),
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
    )
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors and errors[0].startswith("error: shard 1/2 (ranks × data.num_workers)"), (
        proc.stderr[-3000:]
    )
    assert "a .txt file without blank lines is one document" in errors[0]
