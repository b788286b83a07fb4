"""electra-lightning: ELECTRA pretraining with PyTorch Lightning.

One folder a role; imports flow down (docs/architecture.md has the map of every module)::

    cli/       the command line (dispatcher, LightningCLI, GLUE runner)
    hf/        export to Hugging Face directories, predict with them
    finetune/  task table, GLUE data, classifier, linear probe
    train/     the LightningModule, callbacks, parallelism, hardware, checkpoint loading
    data/      corpus → units → documents → packed, masked batches; the data contract
    model/     the ELECTRA pair in pure torch: sizes, masking and sampling, optimizer, baselines
    report/    summary, compare, console output
    common/    errors, checkpoint files, config files, run names, the run lock

``ElectraPretraining`` and ``ElectraDataModule`` are imported on first use, so that
``python -m electra_lightning --help`` does not pay for torch and Lightning.
"""

__all__ = ["ElectraDataModule", "ElectraPretraining"]
__version__ = "0.2.0"


def __getattr__(name: str):
    if name == "ElectraDataModule":
        # imported on first use, so that --help stays light
        from electra_lightning.data.datamodule import ElectraDataModule

        return ElectraDataModule
    if name == "ElectraPretraining":
        from electra_lightning.train.pretraining import ElectraPretraining

        return ElectraPretraining
    raise AttributeError(f"module 'electra_lightning' has no attribute {name!r}")
