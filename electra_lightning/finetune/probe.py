"""The deterministic linear probe: logistic regression on the mean-pooled last layer of a frozen
encoder, trained on a GLUE task's first training examples and scored on its dev set with the
task's headline metric (as fine-tuning logs it). No seeds: it reads the representation itself,
where brief fine-tuning can end at the majority class. Used by the ``DownstreamProbe`` callback
(``probe/<task>_<metric>`` while pretraining runs) and by the studies in ``experiments/``."""

from __future__ import annotations

import functools
import os
import sys
import time

import lightning as L
import torch
from torchmetrics.functional.classification import binary_accuracy, binary_f1_score

from electra_lightning.data.units import HUB_PREFIX
from electra_lightning.finetune.classifier import glue_mcc
from electra_lightning.finetune.glue import Example, read_examples
from electra_lightning.finetune.tasks import task_key, task_spec

# single-sentence tasks: a mean-pooled pair is no fair readout for MRPC/RTE
PROBE_TASKS = ["sst2", "cola"]


def glue_split(data_dir: str, task: str, split: str, limit: int = 0) -> list:
    """A GLUE task's train or dev examples (the first ``limit`` if set) from ``data_dir/TASK``
    or, for ``data_dir='hub:NAME'``, from the Hugging Face dataset NAME laid out as
    ``nyu-mll/glue`` (config ``sst2``/``cola``, splits ``train``/``validation``)."""
    spec = task_spec(task)
    if data_dir.startswith(HUB_PREFIX):
        if not data_dir[len(HUB_PREFIX) :].strip():
            raise ValueError("probe.data_dir: 'hub:' needs a dataset name, e.g. hub:nyu-mll/glue")
        return list(hub_split(data_dir[len(HUB_PREFIX) :], task_key(task), split, limit))
    path = split_path(data_dir, task, split)
    if not os.path.isfile(path):
        raise ValueError(
            f"probe: '{path}' does not exist; point probe.data_dir at a GLUE directory "
            "(DIR/TASK/{train,dev}.tsv)"
        )
    examples = read_examples(path, spec.text, spec.text_pair, spec.label, spec.labels, spec.header)
    return examples[:limit] if limit else examples


def check_probe_data(data_dir: str, task: str, train_limit: int, dev_limit: int) -> None:
    """The examples a probe will read (the first ``train_limit`` training and ``dev_limit`` dev
    examples, 0: all), checked as a whole before training: readable, and both labels present in
    each split — with one label the regression has nothing to separate and its standardisation
    divides by zero. A one-line ``ValueError`` naming the file (or dataset) and the fix."""
    spec = task_spec(task)
    for split, limit, option in (
        ("train", train_limit, "probe.train_examples"),
        ("dev", dev_limit, "probe.dev_examples"),
    ):
        examples = glue_split(data_dir, task, split, limit)
        labels = sorted({e.label for e in examples})
        if len(labels) < 2:
            hub = data_dir.startswith(HUB_PREFIX)
            where = (
                f"'{data_dir}' ({task}, {split})"
                if hub
                else f"'{split_path(data_dir, task, split)}'"
            )
            read = f"the first {limit} ({option})" if limit else "all"
            raise ValueError(
                f"probe: {where} gives {len(examples)} example(s) with only label "
                f"{spec.labels[labels[0]] if labels else '-'} ({read} read); the probe needs both "
                f"labels in train and dev: point probe.data_dir at the full GLUE {spec.name} data"
            )


def split_path(data_dir: str, task: str, split: str) -> str:
    """``data_dir/TASK/train.tsv`` or the task's dev file."""
    spec = task_spec(task)
    return os.path.join(data_dir, spec.name, "train.tsv" if split == "train" else spec.dev)


@functools.lru_cache(maxsize=8)  # a run probes many times: fetched once
def hub_split(name: str, config: str, split: str, limit: int) -> tuple:
    """``glue_split`` from a ``datasets`` dataset: its ``sentence`` and ``label`` columns (labels as
    in the GLUE files: 0/1), ``validation`` for dev. A dataset that cannot be opened, or lacks the
    columns, is a one-line ``ValueError`` naming it and the fix."""
    from itertools import islice

    from datasets import load_dataset

    hub = "train" if split == "train" else "validation"
    where = f"probe.data_dir: the Hugging Face dataset '{name}' (config {config}, split {hub})"
    try:  # streamed: only the rows read are fetched, nothing is cached on disk
        rows = list(islice(load_dataset(name, config, split=hub, streaming=True), limit or None))
    except Exception as err:  # offline, a typo, a missing config or split
        reason = (str(err).strip().splitlines() or [""])[0][:200]
        raise ValueError(
            f"{where} cannot be opened ({type(err).__name__}{': ' + reason if reason else ''}); "
            "check the name, or point probe.data_dir at a local GLUE directory"
        ) from None
    if not rows or not {"sentence", "label"} <= rows[0].keys():
        raise ValueError(f"{where} has no rows with the columns 'sentence' and 'label'")
    examples = [Example(str(r["sentence"]), None, int(r["label"])) for r in rows]
    if any(e.label not in (0, 1) for e in examples):  # GLUE's test splits are labelled -1
        raise ValueError(f"{where} holds labels other than 0/1")
    return tuple(examples)


def headline_metric(task: str):
    """The torchmetrics function of a binary task's headline metric (as the fine-tuning logs)."""

    metrics = {"acc": binary_accuracy, "f1": binary_f1_score, "mcc": glue_mcc}
    return metrics[task_spec(task).headline]


def logistic_regression(x, y, x_dev):
    """Fit a lightly L2-regularised logistic regression (full-batch L-BFGS); predict x_dev."""
    weight = torch.zeros(x.shape[1], requires_grad=True)
    bias = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ weight + bias, y)
        loss = loss + 1e-2 * weight.pow(2).sum() / len(y)
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return (x_dev @ weight + bias > 0).long()


def linear_probe(
    encoder,
    tokenizer,
    tasks: list[str],
    train_limit: int,
    device: str = "cpu",
    dev_limit: int = 0,
    max_length: int = 128,
    data_dir: str = "glue_data",
):
    """Probe scores (percent) per task for a frozen ``encoder`` (an ``ElectraModel`` or any model
    returning ``last_hidden_state``) with its ``tokenizer``; ``dev_limit``: score on the first
    dev examples only (smoke tests); ``max_length``: tokens per example (the pretraining length);
    ``data_dir``: the GLUE root."""
    encoder = encoder.to(device).eval()

    @torch.no_grad()
    def features(examples) -> torch.Tensor:
        out = []
        for i in range(0, len(examples), 64):
            batch = examples[i : i + 64]
            pairs = [e.text_pair for e in batch] if batch[0].text_pair is not None else None
            enc = tokenizer(
                [e.text for e in batch],
                pairs,
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            ).to(device)
            hidden = encoder(**enc).last_hidden_state.float()
            mask = enc["attention_mask"].unsqueeze(-1).float()
            out.append(((hidden * mask).sum(1) / mask.sum(1)).cpu())
        return torch.cat(out)

    scores = {}
    for task in tasks:
        train = glue_split(data_dir, task, "train", train_limit)
        dev = glue_split(data_dir, task, "dev", dev_limit)
        x, x_dev = features(train), features(dev)
        mean, std = x.mean(0), x.std(0) + 1e-6
        x, x_dev = (x - mean) / std, (x_dev - mean) / std
        y = torch.tensor([e.label for e in train], dtype=torch.float32)
        y_dev = torch.tensor([e.label for e in dev])
        predicted = logistic_regression(x, y, x_dev)
        scores[task] = 100 * float(headline_metric(task)(predicted, y_dev))
    return scores


class DownstreamProbe(L.Callback):
    """Downstream quality while pretraining runs: every ``every_n_steps`` optimizer steps and at
    the end, the linear probe (``linear_probe`` above: frozen discriminator, mean-pooled last
    layer, logistic regression on a task's first ``train_examples`` training examples, scored on
    its dev set) is logged as ``probe/<task>_<metric>`` (e.g. ``probe/sst2_acc``,
    ``probe/cola_mcc``) to every configured logger, beside the losses.

    Deterministic (no seeds, no random numbers drawn, dropout off while probing, so a resumed run
    is unchanged). Every rank runs it at the same steps (a sharded model's forward needs them all);
    rank 0's loggers write it. Off until ``tasks`` names a task (``configs/callbacks/probe.yaml``).

    Args:
        tasks: Single-sentence GLUE tasks from the task table (``sst2``, ``cola``).
        data_dir: The GLUE root, ``DIR/TASK/{train,dev}.tsv``, or ``hub:NAME``: a Hugging Face
            dataset laid out as ``nyu-mll/glue`` (e.g. ``hub:nyu-mll/glue``; needs network).
        every_n_steps: Optimizer steps between probes (and one at the end of training).
        train_examples: Training examples the logistic regression is fitted on.
        dev_examples: Dev examples it is scored on (0: all).
        tokenizer: The pretraining tokenizer's directory; the CLI links it from ``data.tokenizer``.
    """

    def __init__(
        self,
        tasks: list[str] | None = None,
        data_dir: str = "glue_data",
        every_n_steps: int = 1000,
        train_examples: int = 1000,
        dev_examples: int = 0,
        tokenizer: str | None = None,
    ):
        self.tasks = [t.lower() for t in (tasks or [])]
        for task in self.tasks:
            spec = task_spec(task)  # an unknown name: one line naming the choices
            if spec.text_pair is not None or spec.labels is None or len(spec.labels) != 2:
                raise ValueError(
                    f"probe.tasks: '{task}' is not a single-sentence binary task; the probe reads "
                    "sst2 or cola"
                )
        if every_n_steps < 1 or train_examples < 2 or dev_examples < 0:
            raise ValueError(
                "probe: every_n_steps >= 1, train_examples >= 2 and dev_examples >= 0 are needed"
            )
        self.data_dir, self.every = data_dir, every_n_steps
        self.train_examples, self.dev_examples = train_examples, dev_examples
        self.tokenizer = tokenizer
        self._last_step = -1
        self.seconds = 0.0  # time spent probing (this run)

    def setup(self, trainer, pl_module, stage: str) -> None:
        if self.tasks and stage == "fit":  # the data is checked before training, not at step 1000
            if not self.tokenizer:
                raise ValueError(
                    "probe.tokenizer: no tokenizer directory; the CLI links it from data.tokenizer, "
                    "a Trainer built in Python passes DownstreamProbe(tokenizer=DIR)"
                )
            for task in self.tasks:
                check_probe_data(self.data_dir, task, self.train_examples, self.dev_examples)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if self.tasks and step % self.every == 0 and step != self._last_step:
            self.probe_or_warn(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.tasks and trainer.global_step != self._last_step:
            self.probe_or_warn(trainer, pl_module)

    def probe_or_warn(self, trainer, pl_module) -> dict[str, float] | None:
        """A side job never costs training: a probe that fails (its data changed, the device ran
        out of memory, a numerical failure) is one warning line and the run goes on; it is tried
        again at its next step."""
        try:
            return self.probe(trainer, pl_module)
        except Exception as err:  # noqa: BLE001 — any failure: the training must not pay for it
            reason = (str(err).strip().splitlines() or [""])[0][:200]
            rank = f" on rank {trainer.global_rank}" if trainer.world_size > 1 else ""
            print(
                f"warning: the probe failed at step {trainer.global_step}{rank} "
                f"({type(err).__name__}{': ' + reason if reason else ''}); training goes on, "
                f"next probe at step {trainer.global_step + self.every}",
                file=sys.stderr,
                flush=True,
            )
            return None

    def probe(self, trainer, pl_module) -> dict[str, float]:
        from transformers import AutoTokenizer  # on first use: transformers' import is slow

        started = time.perf_counter()
        self._last_step = trainer.global_step
        encoder = pl_module.electra.encoder  # the discriminator's (the MLM's, for MLM-only)
        was_training = encoder.training
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.tokenizer)
            with torch.autocast(pl_module.device.type, enabled=False):
                scores = linear_probe(
                    encoder,
                    tokenizer,
                    self.tasks,
                    self.train_examples,
                    pl_module.device,
                    self.dev_examples,
                    pl_module.contract.max_seq_length,
                    self.data_dir,
                )
        finally:
            encoder.train(was_training)
            self.seconds += time.perf_counter() - started
        metrics = {
            f"probe/{task}_{task_spec(task).headline}": score / 100
            for task, score in scores.items()
        }
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=trainer.global_step)
        return metrics
