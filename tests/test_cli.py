"""End to end through the command line: tokenizer → fit → validate → export → plain transformers."""

import csv
import subprocess
import sys

import pytest
import torch

from .helpers import run_cli, tiny_args


@pytest.mark.slow
def test_fit_lowers_generator_loss_and_exports(tmp_path, corpus_dir, tokenizer_dir):
    run_cli("fit", *tiny_args(corpus_dir, tokenizer_dir), cwd=tmp_path)
    metrics = list(csv.DictReader(open(tmp_path / "runs/tiny/metrics.csv")))
    gen = [float(r["train/gen_loss"]) for r in metrics if r.get("train/gen_loss")]
    assert len(gen) >= 5
    assert gen[-1] < gen[0] - 0.25, gen  # untrained: ln(2000) ≈ 7.6, stays there if broken
    assert any(r.get("val/disc_f1") for r in metrics)
    for name in (
        "train/disc_loss",
        "train/gen_acc",
        "train/disc_acc",
        "train/disc_precision",
        "train/disc_recall",
        "train/disc_f1",
        "train/replaced_frac",
        "train/lr",
        "train/tokens_per_sec",
        "val/loss",
        "val/gen_loss",
        "val/disc_loss",
        "val/disc_auc",
    ):
        assert name in metrics[0], name

    ckpt = tmp_path / "runs/tiny/checkpoints/last.ckpt"
    out = run_cli(
        "validate", *tiny_args(corpus_dir, tokenizer_dir), f"--ckpt_path={ckpt}", cwd=tmp_path
    )
    assert "val/disc_f1" in out.stdout

    run_cli("export", "--ckpt_path", str(ckpt), "--output_dir", str(tmp_path / "hf"), cwd=tmp_path)
    # plain transformers, no code from this project
    code = f"""
import torch, sys
from transformers import AutoTokenizer, ElectraForPreTraining, ElectraForMaskedLM
tok = AutoTokenizer.from_pretrained("{tmp_path / "hf" / "discriminator"}")
disc = ElectraForPreTraining.from_pretrained("{tmp_path / "hf" / "discriminator"}").eval()
gen = ElectraForMaskedLM.from_pretrained("{tmp_path / "hf" / "generator"}").eval()
for p in [*disc.parameters(), *gen.parameters()]:  # fresh aligned memory, as after torch.load
    p.data = p.data.clone()
enc = tok("the function returns a list of the arguments.", return_tensors="pt")
with torch.no_grad():
    torch.save({{"disc": disc(**enc).logits, "gen": gen(**enc).logits, "ids": enc["input_ids"]}}, "{tmp_path / "hf_out.pt"}")
assert "electra_lightning" not in sys.modules
"""
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
    hf = torch.load(tmp_path / "hf_out.pt")

    from transformers import ElectraForPreTraining

    from electra_lightning.common.checkpoint import load_checkpoint
    from electra_lightning.train.loading import module_from_checkpoint

    module = module_from_checkpoint(load_checkpoint(str(ckpt)))
    reloaded = ElectraForPreTraining.from_pretrained(tmp_path / "hf" / "discriminator").eval()
    # Memory alignment (safetensors mmap vs fresh tensors) changes CPU kernels' rounding by ~1e-7;
    # with both models in freshly allocated memory the logits are bit-identical.
    for p in [*module.parameters(), *reloaded.parameters()]:
        p.data = p.data.clone()
    ids, mask = hf["ids"], torch.ones_like(hf["ids"])
    with torch.no_grad():
        disc = module.discriminator(input_ids=ids, attention_mask=mask).logits
        gen = module.generator(input_ids=ids, attention_mask=mask).logits
        assert torch.equal(disc, reloaded(input_ids=ids, attention_mask=mask).logits)
    assert torch.equal(disc, hf["disc"])  # plain transformers in a separate process
    assert torch.equal(gen, hf["gen"])


@pytest.mark.slow
def test_demo_commands_fill_mask_and_detect(tmp_path, corpus_dir, tokenizer_dir):
    run_cli("fit", *tiny_args(corpus_dir, tokenizer_dir, steps=5), cwd=tmp_path)
    ckpt = tmp_path / "runs/tiny/checkpoints/last.ckpt"
    run_cli("export", "--ckpt_path", str(ckpt), "--output_dir", str(tmp_path / "hf"), cwd=tmp_path)
    out = run_cli(
        "predict",
        "fill-mask",
        "--model",
        str(tmp_path / "hf/generator"),
        "--text",
        "the [MASK] returns a value.",
        cwd=tmp_path,
    ).stdout
    assert out.startswith("[MASK] #1:") and out.count("(") == 5
    out = run_cli(
        "predict",
        "detect",
        "--model",
        str(tmp_path / "hf/discriminator"),
        "--text",
        "the function returns a value.",
        cwd=tmp_path,
    ).stdout
    assert "function" in out and "0." in out


def test_bad_input_gives_one_clear_line(tmp_path, corpus_dir, tokenizer_dir):
    args = tiny_args(corpus_dir, tokenizer_dir, steps=1)
    proc = run_cli(
        "fit", *args, f"--data.train_files={tmp_path / 'missing.txt'}", cwd=tmp_path, check=False
    )
    assert proc.returncode == 2  # the exit code a shell sees (the other cases: test_bad_input.py)
    assert "data.train_files" in proc.stderr and "missing.txt' does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run_cli("fit", *args, "--data.max_seq_length=256", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "max_position_embeddings" in proc.stderr
    proc = run_cli("fit", *args, f"--data.tokenizer={tmp_path}", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "data.tokenizer" in proc.stderr


@pytest.mark.slow
def test_gdes_run_exports_plain_weights(tmp_path, corpus_dir, tokenizer_dir):
    run_cli(
        "fit",
        *tiny_args(corpus_dir, tokenizer_dir, steps=4),
        "--model.embedding_sharing=gdes",
        cwd=tmp_path,
    )
    ckpt = tmp_path / "runs/tiny/checkpoints/last.ckpt"
    run_cli("export", "--ckpt_path", str(ckpt), "--output_dir", str(tmp_path / "hf"), cwd=tmp_path)
    from transformers import ElectraForPreTraining

    from electra_lightning.common.checkpoint import load_checkpoint
    from electra_lightning.train.loading import discriminator_from_checkpoint

    hf = ElectraForPreTraining.from_pretrained(tmp_path / "hf" / "discriminator").eval()
    folded = discriminator_from_checkpoint(load_checkpoint(str(ckpt))).eval()
    ids = torch.randint(5, 2000, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(hf(input_ids=ids).logits, folded(input_ids=ids).logits)


@pytest.mark.slow
def test_mlm_baseline_trains_and_exports(tmp_path, corpus_dir, tokenizer_dir):
    run_cli(
        "fit",
        *tiny_args(corpus_dir, tokenizer_dir, steps=10),
        "--model.objective=mlm",
        "--data.mask_token_prob=0.8",
        "--data.random_token_prob=0.1",
        cwd=tmp_path,
    )
    metrics = list(csv.DictReader(open(tmp_path / "runs/tiny/metrics.csv")))
    assert any(r.get("train/gen_loss") for r in metrics) and not any(
        r.get("train/disc_f1") for r in metrics
    )
    ckpt = tmp_path / "runs/tiny/checkpoints/last.ckpt"
    run_cli("export", "--ckpt_path", str(ckpt), "--output_dir", str(tmp_path / "hf"), cwd=tmp_path)
    from transformers import ElectraForMaskedLM, ElectraModel

    from electra_lightning.common.checkpoint import load_checkpoint
    from electra_lightning.train.loading import encoder_from_checkpoint

    # one model, DIR/mlm: fill-mask as exported, and the encoder fine-tuning starts from
    assert sorted(p.name for p in (tmp_path / "hf").iterdir()) == ["mlm", "tokenizer"]
    ElectraForMaskedLM.from_pretrained(tmp_path / "hf" / "mlm")
    exported = ElectraModel.from_pretrained(tmp_path / "hf" / "mlm")
    trained = encoder_from_checkpoint(load_checkpoint(str(ckpt)))
    for (name, a), (_, b) in zip(
        exported.state_dict().items(), trained.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_an_unwritable_checkpoint_directory_is_one_line_before_training(tmp_path):
    """The CLI checks every checkpoint directory before fit (on every rank), as it does the
    loggers' directories."""
    from types import SimpleNamespace

    from electra_lightning.cli.lightning import check_checkpoint_dirs

    def trainer(*dirpaths):
        return SimpleNamespace(checkpoint_callbacks=[SimpleNamespace(dirpath=d) for d in dirpaths])

    check_checkpoint_dirs(trainer(None, str(tmp_path / "new")))  # none, or one it can create
    assert (tmp_path / "new").is_dir()
    with pytest.raises(ValueError, match=r"^ModelCheckpoint.dirpath: cannot write to '/proc/"):
        check_checkpoint_dirs(trainer(str(tmp_path), "/proc/version/x"))
