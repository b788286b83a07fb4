"""electra-lightning: ELECTRA pretraining with PyTorch Lightning."""

from electra_lightning.data import ElectraDataModule
from electra_lightning.module import ElectraPretraining

__all__ = ["ElectraDataModule", "ElectraPretraining"]
__version__ = "0.1.0"
