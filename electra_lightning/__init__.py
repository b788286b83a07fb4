"""electra-lightning: ELECTRA pretraining with PyTorch Lightning.

Architecture — the modules, and the way a pretraining batch flows through them::

    units.py      the corpus formats; units (files, byte ranges, row groups) dealt to shards
    sources.py    files, globs, Hub datasets → documents of a unit; bad records
    packing.py    sentences → [CLS] A [SEP] B [SEP] examples of max_seq_length
    stream.py     one shard (rank × worker): shuffled blocks, masking, resumable position
    masking.py    pure tensor functions: which tokens to mask, Gumbel sampling, scatter/gather
    data.py       ElectraDataModule: the DataLoaders; the data position, the tokenizer files and
                  the skipped-record count in its own checkpoint state
        │  batch: input_ids, generator_input_ids, masked_positions/ids/weights, attention mask
        │  contract.py  DataContract (vocab, pad id, seq length, masked predictions, tokenizer
        │               digest): published by data.py, linked into module.py once by the CLI
        ▼
    module.py     ElectraPretraining (LightningModule): logging, metrics, optimizer, RNG state
    model.py      ModelSize; ElectraPair.forward = the whole ELECTRA step (generator MLM at the
                  masked positions → samples → discriminator RTD → 1·MLM + 50·RTD), or MaskedLM
    optim.py      AdamW defaults, weight-decay rule, official schedule, layer-wise LR decay
    parallel.py   FSDP2 sharding of that one root module

Around them: ``cli.py`` (the light dispatcher) → ``lightning_cli.py`` (LightningCLI for fit /
validate / test, pretraining and fine-tuning), ``callbacks.py`` (throughput, ``last.ckpt``,
graceful stop), ``checkpoint.py`` (atomic saves, safe loads, the tokenizer a checkpoint carries),
``loading.py`` (checkpoints → modules), ``export.py`` / ``predict.py`` (Hugging Face
directories), ``tasks.py`` (the task table and the one fine-tuning recipe; ``configs/finetune/TASK.yaml`` are
generated from it) + ``glue.py`` + ``finetune.py`` + ``glue_runner.py`` (fine-tuning),
``compare.py`` / ``summary.py`` / ``console.py`` (what a user reads), ``tokenizer.py``.

``ElectraPretraining`` and ``ElectraDataModule`` are imported on first use, so that
``python -m electra_lightning --help`` does not pay for torch and Lightning.
"""

__all__ = ["ElectraDataModule", "ElectraPretraining"]
__version__ = "0.2.0"


def __getattr__(name: str):
    if name == "ElectraDataModule":
        from electra_lightning.data.datamodule import ElectraDataModule

        return ElectraDataModule
    if name == "ElectraPretraining":
        from electra_lightning.train.pretraining import ElectraPretraining

        return ElectraPretraining
    raise AttributeError(f"module 'electra_lightning' has no attribute {name!r}")
