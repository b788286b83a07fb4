"""Export a pretraining checkpoint as plain Hugging Face model directories.

``DIR/discriminator`` (``ElectraForPreTraining``; the encoder to fine-tune), ``DIR/generator``
(``ElectraForMaskedLM``) and the tokenizer in both and in ``DIR/tokenizer`` — loadable by
transformers alone, without this project.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from contextlib import contextmanager

from jsonargparse import CLI

# torch, Lightning and the model are imported where they are used, so `export --help` is quick
# (not to dodge a cycle: loading and finetune do not import this module).


# What an export directory holds (pretraining: the three subdirectories; a classifier: one
# Hugging Face model directory). A directory with anything else is the user's, not ours to replace.
EXPORT_ENTRIES = {
    "discriminator",
    "generator",
    "tokenizer",
    "mlm",
    "config.json",
    "model.safetensors",
    "pytorch_model.bin",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
}


@contextmanager
def fresh_output(output_dir: str):
    """Yield a new, empty directory beside ``output_dir`` to write the export into; on success it
    replaces ``output_dir`` by renames (no stale file of an earlier export survives, and no write
    follows a symlink planted in it). ``output_dir`` must be new, empty, or an earlier export.

    The export gets the permissions of the one it replaces, or the umask's for a new one. An
    export killed between the renames left the previous export as ``.export-NAME.old``: the next
    export puts it back first; the staging directories of exports that died are removed."""
    output_dir = os.path.normpath(output_dir)
    if os.path.islink(output_dir):
        raise ValueError(f"--output_dir: '{output_dir}' is a symlink; name the directory itself")
    parent = os.path.dirname(os.path.abspath(output_dir))
    name = os.path.basename(os.path.abspath(output_dir))
    old = os.path.join(parent, f".export-{name}.old")
    _recover(output_dir, parent, name, old)
    if os.path.exists(output_dir):
        if not os.path.isdir(output_dir):
            raise ValueError(f"--output_dir: '{output_dir}' is a file; choose a directory")
        stray = sorted(set(os.listdir(output_dir)) - EXPORT_ENTRIES)
        if stray:
            raise ValueError(
                f"--output_dir: '{output_dir}' holds files that are not an export ({stray[0]}"
                f"{', …' if len(stray) > 1 else ''}); export into a new or empty directory"
            )
        mode = stat.S_IMODE(os.stat(output_dir).st_mode)
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o777 & ~umask
    try:
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=f".export-{name}.{os.getpid()}.", dir=parent)
        os.chmod(staging, mode)  # mkdtemp makes it 0700
    except OSError as err:
        raise ValueError(
            f"--output_dir: cannot write beside '{output_dir}' ({err.strerror})"
        ) from None
    try:
        yield staging
        if os.path.exists(output_dir):
            os.rename(output_dir, old)
            os.rename(staging, output_dir)
            shutil.rmtree(old)  # does not follow symlinks
        else:
            os.rename(staging, output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone unless something failed


def _recover(output_dir: str, parent: str, name: str, old: str) -> None:
    """Undo what a killed export left beside ``output_dir``: the previous export, renamed aside
    (put back if ``output_dir`` is gone, else removed), and staging directories of processes
    that no longer run."""
    if os.path.isdir(old) and not os.path.islink(old):
        if not os.path.lexists(output_dir):
            os.rename(old, output_dir)
            print(f"note: put back the previous export '{output_dir}' (an export was interrupted)")
        else:
            shutil.rmtree(old)
    prefix = f".export-{name}."
    for entry in os.listdir(parent) if os.path.isdir(parent) else []:
        pid = entry[len(prefix) :].split(".", 1)[0]
        if entry.startswith(prefix) and pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def export_classifier(checkpoint: dict, output_dir: str, ckpt_path: str = "") -> str:
    """A fine-tuned ``ElectraClassifier`` checkpoint → ``ElectraForSequenceClassification`` dir."""
    # torch/Lightning/transformers on first use: `export --help` stays light (test_console)
    from electra_lightning.common.checkpoint import tokenizer_files_of, write_tokenizer
    from electra_lightning.finetune.classifier import ElectraClassifier

    hparams = {k: v for k, v in checkpoint["hyper_parameters"].items() if not k.startswith("_")}
    hparams["init_from"] = None
    tokenizer_files = tokenizer_files_of(checkpoint, ckpt_path)
    module = ElectraClassifier(**hparams)
    module.load_state_dict(checkpoint["state_dict"], strict=False)
    with fresh_output(output_dir) as staging:
        module.classifier.save_pretrained(staging)
        write_tokenizer(tokenizer_files, staging)
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
    import transformers  # on first use, as above: `export --help` stays light

    from electra_lightning.common.checkpoint import (
        checkpoint_kind,
        require_kind,
        tokenizer_files_of,
        write_tokenizer,
    )
    from electra_lightning.train.loading import load_any_checkpoint, module_from_checkpoint

    transformers.logging.disable_progress_bar()  # one small file per model: no shard bars
    checkpoint = load_any_checkpoint(ckpt_path)
    if checkpoint_kind(checkpoint) == "finetuning":
        return export_classifier(checkpoint, output_dir, ckpt_path)
    require_kind(checkpoint, "pretraining", ckpt_path, "--ckpt_path")
    tokenizer_files = tokenizer_files_of(checkpoint, ckpt_path)  # checked before writing anything
    module = module_from_checkpoint(checkpoint)
    module.electra.fold_embeddings()  # GDES: discriminator table = generator's + delta
    with fresh_output(output_dir) as staging:
        for name, model in module.electra.exports().items():
            target = os.path.join(staging, name)
            model.save_pretrained(target)
            write_tokenizer(tokenizer_files, target)
        if tokenizer_files:
            write_tokenizer(tokenizer_files, os.path.join(staging, "tokenizer"))
    if not tokenizer_files:
        print("warning: the checkpoint carries no tokenizer; copy yours next to the models")
    print(f"exported discriminator and generator to {output_dir}")
    return output_dir


def main(argv: list[str], prog: str | None = None) -> None:
    CLI(export, args=argv, as_positional=False, prog=prog)
