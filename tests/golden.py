"""The golden curve: a seconds-long, fixed-seed pretraining run whose per-step losses are a test
asset (``tests/assets/golden_curve.json``), so that a silent change to packing, masking, sampling
or the loss cannot pass the tests (torchtitan's loss-curve assets).

The run: a synthetic corpus made here from a seeded generator (no files, no Python version in the
way), its own 400-token WordPiece tokenizer, a 2-layer 32-wide ELECTRA, batch 4 × 64 tokens,
30 optimizer steps, one CPU thread (GEMM reduction order then does not depend on the machine's
cores). It goes through ``ElectraDataModule`` (reading, packing, masking in the workers' code
path) and ``ElectraPretraining`` (sampling, both losses, the default optimizer and schedule).

Regenerate it on purpose, after a deliberate change, and commit the new asset:

    .venv/bin/python -m tests.golden --write
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

ASSET = Path(__file__).resolve().parent / "assets" / "golden_curve.json"
STEPS = 30
SEED = 1234


def synthetic_corpus(path: Path, documents: int = 300) -> None:
    """Zipf-distributed pseudo-words from syllables; sentences of 4–16 words; documents of 2–8
    sentences separated by blank lines. Deterministic from the seed alone."""
    rng = random.Random(SEED)
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "do", "gi"]
    words = sorted({"".join(rng.choices(syllables, k=rng.randint(1, 3))) for _ in range(600)})
    weights = [1.0 / (rank + 1) for rank in range(len(words))]
    lines = []
    for _ in range(documents):
        for _ in range(rng.randint(2, 8)):
            sentence = rng.choices(words, weights, k=rng.randint(4, 16))
            lines.append(" ".join(sentence) + " .")
        lines.append("")
    path.write_text("\n".join(lines) + "\n")


KEYS = ("loss", "gen_loss", "disc_loss")


def golden_losses(workdir: Path, data_overrides: dict | None = None, **model_overrides) -> dict:
    """Per-step ``train/loss``, ``train/gen_loss`` (MLM) and ``train/disc_loss`` (RTD) of the
    golden run (overrides: for the deliberate-break check)."""
    import lightning as L
    import torch

    from electra_lightning.data.datamodule import ElectraDataModule
    from electra_lightning.data.tokenizer import train_tokenizer
    from electra_lightning.model.electra import ModelSize
    from electra_lightning.train.pretraining import ElectraPretraining

    corpus = workdir / "golden.txt"
    if not corpus.exists():
        synthetic_corpus(corpus)
        train_tokenizer(str(corpus), str(workdir / "tok"), vocab_size=400)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        L.seed_everything(SEED, verbose=False)
        data = ElectraDataModule(
            train_files=str(corpus),
            tokenizer=str(workdir / "tok"),
            max_seq_length=64,
            batch_size=4,
            num_workers=0,
            seed=SEED,
            **(data_overrides or {}),
        )
        model = ElectraPretraining(
            contract=data.contract,
            size=ModelSize(
                hidden_size=32,
                num_layers=2,
                num_heads=2,
                intermediate_size=64,
                embedding_size=32,
                max_position_embeddings=64,
                generator_size=0.5,
            ),
            warmup_steps=5,
            **model_overrides,
        )
        losses: dict[str, list[float]] = {key: [] for key in KEYS}

        class Record(L.Callback):
            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                for key in KEYS:
                    losses[key].append(float(trainer.callback_metrics[f"train/{key}"]))

        trainer = L.Trainer(
            max_steps=STEPS,
            accelerator="cpu",
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            log_every_n_steps=1,
            callbacks=[Record()],
            default_root_dir=workdir,
        )
        trainer.fit(model, datamodule=data)
    finally:
        torch.set_num_threads(threads)
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {ASSET}")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        losses = golden_losses(Path(tmp))
    for key, values in losses.items():
        print(key, " ".join(f"{v:.4f}" for v in values))
    if args.write:
        ASSET.parent.mkdir(parents=True, exist_ok=True)
        ASSET.write_text(json.dumps({"steps": STEPS, "seed": SEED, **losses}, indent=1) + "\n")
        print(f"wrote {ASSET}")


if __name__ == "__main__":
    main()
