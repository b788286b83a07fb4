"""Export a pretraining checkpoint as plain Hugging Face model directories.

``DIR/discriminator`` (``ElectraForPreTraining``; the encoder to fine-tune), ``DIR/generator``
(``ElectraForMaskedLM``) and the tokenizer in both and in ``DIR/tokenizer`` — loadable by
transformers alone, without this project.
"""

from __future__ import annotations

import os

from jsonargparse import CLI

# torch, Lightning and the model are imported where they are used, so `export --help` is quick
# (not to dodge a cycle: loading and finetune do not import this module).


def export_classifier(checkpoint: dict, output_dir: str, ckpt_path: str = "") -> str:
    """A fine-tuned ``ElectraClassifier`` checkpoint → ``ElectraForSequenceClassification`` dir."""
    from electra_lightning.checkpoint import tokenizer_files_of, write_tokenizer
    from electra_lightning.finetune import ElectraClassifier

    hparams = {k: v for k, v in checkpoint["hyper_parameters"].items() if not k.startswith("_")}
    hparams["init_from"] = None
    tokenizer_files = tokenizer_files_of(checkpoint, ckpt_path)
    module = ElectraClassifier(**hparams)
    module.load_state_dict(checkpoint["state_dict"], strict=False)
    module.classifier.save_pretrained(output_dir)
    write_tokenizer(tokenizer_files, output_dir)
    print(f"exported the {module.hparams.task} classifier to {output_dir}")
    return output_dir


def export(ckpt_path: str, output_dir: str) -> str:
    """Write Hugging Face model directories from a checkpoint.

    A pretraining checkpoint gives ``output_dir/{discriminator,generator,tokenizer}``; a
    fine-tuned classifier checkpoint gives one ``ElectraForSequenceClassification`` directory
    (with ``id2label``) usable by ``AutoModelForSequenceClassification`` and the
    ``text-classification`` pipeline.

    Args:
        ckpt_path: A checkpoint written by ``fit`` (e.g. ``.../checkpoints/last.ckpt``), a file or a
            sharded (FSDP2) checkpoint directory.
        output_dir: Where to write the Hugging Face directories.
    """
    import transformers

    from electra_lightning.checkpoint import (
        checkpoint_kind,
        require_kind,
        tokenizer_files_of,
        write_tokenizer,
    )
    from electra_lightning.loading import load_any_checkpoint, module_from_checkpoint

    transformers.logging.disable_progress_bar()  # one small file per model: no shard bars
    checkpoint = load_any_checkpoint(ckpt_path)
    if checkpoint_kind(checkpoint) == "finetuning":
        return export_classifier(checkpoint, output_dir, ckpt_path)
    require_kind(checkpoint, "pretraining", ckpt_path, "--ckpt_path")
    tokenizer_files = tokenizer_files_of(checkpoint, ckpt_path)  # checked before writing anything
    module = module_from_checkpoint(checkpoint)
    module.electra.fold_embeddings()  # GDES: discriminator table = generator's + delta
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as err:
        raise ValueError(f"--output_dir: cannot create '{output_dir}' ({err.strerror})") from None
    for name, model in module.electra.exports().items():
        target = os.path.join(output_dir, name)
        model.save_pretrained(target)
        write_tokenizer(tokenizer_files, target)
    if tokenizer_files:
        write_tokenizer(tokenizer_files, os.path.join(output_dir, "tokenizer"))
    else:
        print("warning: the checkpoint carries no tokenizer; copy yours next to the models")
    print(f"exported discriminator and generator to {output_dir}")
    return output_dir


def main(argv: list[str], prog: str | None = None) -> None:
    CLI(export, args=argv, as_positional=False, prog=prog)
