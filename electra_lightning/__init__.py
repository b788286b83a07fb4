"""electra-lightning: ELECTRA pretraining with PyTorch Lightning.

``ElectraPretraining`` and ``ElectraDataModule`` are imported on first use, so that
``python -m electra_lightning --help`` does not pay for torch and Lightning.
"""

__all__ = ["ElectraDataModule", "ElectraPretraining"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "ElectraDataModule":
        from electra_lightning.data import ElectraDataModule

        return ElectraDataModule
    if name == "ElectraPretraining":
        from electra_lightning.module import ElectraPretraining

        return ElectraPretraining
    raise AttributeError(f"module 'electra_lightning' has no attribute {name!r}")
