"""Loading what ``fit`` wrote: a checkpoint file or a sharded (FSDP2/DCP) checkpoint directory,
and the pretraining module or its discriminator from it. ``export``, ``finetune`` (``init_from``)
and ``glue`` load through here."""

from __future__ import annotations

import os

from electra_lightning.common._compat import load_sharded_checkpoint
from electra_lightning.common.checkpoint import load_checkpoint
from electra_lightning.train.pretraining import ElectraPretraining


def load_any_checkpoint(path: str, field: str = "--ckpt_path") -> dict:
    """A single-file checkpoint, or a sharded (FSDP2/DCP) checkpoint directory consolidated in CPU
    memory."""
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, ".metadata")):
        try:
            return load_sharded_checkpoint(path)
        except Exception as err:
            raise ValueError(
                f"{field}: cannot read sharded checkpoint directory '{path}' ({err})"
            ) from None
    return load_checkpoint(path, field)


def module_from_checkpoint(checkpoint: dict):
    """The ``ElectraPretraining`` a pretraining checkpoint holds, in eval mode."""
    hparams = {k: v for k, v in checkpoint["hyper_parameters"].items() if not k.startswith("_")}
    if "contract" not in hparams:  # no format migrations before a first release
        raise ValueError(
            "the checkpoint was written by an electra-lightning from before the model/data "
            "contract (model.contract); this version does not load it: retrain, or export it "
            "with the version that wrote it"
        )
    module = ElectraPretraining(**hparams)
    module.load_state_dict(checkpoint["state_dict"])
    return module.eval()


def discriminator_from_checkpoint(checkpoint: dict):
    """ELECTRA's pretrained discriminator as a plain ``ElectraForPreTraining`` (GDES folded in)."""
    module = module_from_checkpoint(checkpoint)
    module.electra.fold_embeddings()
    return module.discriminator


def encoder_from_checkpoint(checkpoint: dict):
    """The encoder to fine-tune or probe (``ElectraModel``): ELECTRA's discriminator (GDES folded
    in) or the MLM baseline's encoder."""
    module = module_from_checkpoint(checkpoint)
    module.electra.fold_embeddings()
    return module.electra.encoder
