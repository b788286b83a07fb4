"""``ElectraClassifier``: fine-tune the pretrained discriminator on a classification/regression task,
with the official recipe (layer-wise learning-rate decay, 10% warmup, linear decay)."""

from __future__ import annotations

import os

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import (
    BinaryF1Score,
    BinaryMatthewsCorrCoef,
    BinaryPrecision,
    BinaryRecall,
    MulticlassAccuracy,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)
from torchmetrics.regression import PearsonCorrCoef, SpearmanCorrCoef
from transformers import (
    ElectraConfig,
    ElectraForSequenceClassification,
    get_linear_schedule_with_warmup,
)

from electra_lightning.common._compat import attached_trainer
from electra_lightning.common.checkpoint import (
    TOKENIZER_CHECKPOINT_KEY,
    checkpoint_kind,
    read_tokenizer_files,
    require_kind,
    tokenizer_files_of,
)
from electra_lightning.finetune.tasks import metric_names
from electra_lightning.model.electra import DROPOUT
from electra_lightning.model.optim import ADAMW_DEFAULTS, layerwise_lr_groups
from electra_lightning.train.callbacks import save_rescue_checkpoint
from electra_lightning.train.loading import encoder_from_checkpoint, load_any_checkpoint


class GlueMatthewsCorrCoef(BinaryMatthewsCorrCoef):
    """Binary MCC as GLUE scores it (sklearn's ``matthews_corrcoef``): 0 whenever a margin of the
    confusion matrix is empty — the definition's 0/0, e.g. a constant predictor. torchmetrics
    returns a small non-zero value there (0.026 for CoLA dev predicted all-acceptable)."""

    def compute(self) -> torch.Tensor:
        (tn, fp), (fn, tp) = self.confmat.tolist()
        if min(tp + fp, tp + fn, tn + fp, tn + fn) == 0:
            return torch.tensor(0.0)
        return super().compute()


def glue_mcc(preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Functional :class:`GlueMatthewsCorrCoef`."""
    metric = GlueMatthewsCorrCoef()
    metric.update(preds, target)
    return metric.compute()


def make_metrics(names: tuple[str, ...], num_labels: int) -> MetricCollection:
    classes = max(2, num_labels)
    binary = classes == 2
    factories = {
        "acc": lambda: MulticlassAccuracy(num_classes=classes, average="micro"),
        "precision": lambda: (
            BinaryPrecision() if binary else MulticlassPrecision(classes, average="macro")
        ),
        "recall": lambda: BinaryRecall() if binary else MulticlassRecall(classes, average="macro"),
        "f1": lambda: BinaryF1Score() if binary else MulticlassF1Score(classes, average="macro"),
        "mcc": lambda: GlueMatthewsCorrCoef(),
        "pearson": lambda: PearsonCorrCoef(),
        "spearman": lambda: SpearmanCorrCoef(),
    }
    return MetricCollection({name: factories[name]() for name in names})


# what an exported ELECTRA holds besides the encoder: the pretraining heads, left out here
PRETRAINING_HEADS = ("discriminator_predictions.", "generator_predictions.", "generator_lm_head.")


def quiet_from_pretrained(model_class, path: str):
    """``model_class.from_pretrained(path)`` without transformers' progress bar and its
    UNEXPECTED/MISSING load report when the only difference is the expected one (the pretraining
    head left out); any other difference is a one-line error."""
    import logging

    from transformers.utils import logging as hf_logging

    class NoLoadReport(logging.Filter):  # checked below instead
        def filter(self, record: logging.LogRecord) -> bool:
            return " LOAD REPORT" not in str(record.msg)

    report, no_report = logging.getLogger("transformers.modeling_utils"), NoLoadReport()
    bars = hf_logging.is_progress_bar_enabled()
    report.addFilter(no_report)
    hf_logging.disable_progress_bar()
    try:
        model, info = model_class.from_pretrained(path, output_loading_info=True)
    finally:
        report.removeFilter(no_report)
        if bars:
            hf_logging.enable_progress_bar()
    unexpected = [k for k in info["unexpected_keys"] if not k.startswith(PRETRAINING_HEADS)]
    missing = [k for k in info["missing_keys"] if "position_ids" not in k]
    if unexpected or missing or info["mismatched_keys"]:
        raise ValueError(
            f"model.init_from: weights in '{path}' do not fit an ELECTRA encoder (missing "
            f"{sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}, mismatched "
            f"{sorted(k[0] for k in info['mismatched_keys'])[:3]})"
        )
    return model


def load_discriminator(init_from: str) -> tuple[ElectraConfig, dict, dict[str, str] | None]:
    """(config, encoder state dict, tokenizer files or None) from an exported HF discriminator
    directory or a pretraining checkpoint (file or sharded directory)."""
    if not init_from or not os.path.exists(init_from):
        raise ValueError(f"model.init_from: '{init_from}' does not exist")
    if os.path.isdir(init_from) and os.path.isfile(os.path.join(init_from, "config.json")):
        from transformers import AutoConfig, ElectraModel

        config = AutoConfig.from_pretrained(init_from)
        if config.model_type != "electra":
            raise ValueError(
                f"model.init_from: '{init_from}' is a {config.model_type} model, not ELECTRA"
            )
        encoder = quiet_from_pretrained(ElectraModel, init_from)
        return config, encoder.state_dict(), None
    checkpoint = load_any_checkpoint(init_from, "model.init_from")
    hparams = checkpoint.get("hyper_parameters", {})
    kind = checkpoint_kind(checkpoint)
    tokenizer_files = tokenizer_files_of(checkpoint, init_from) or None
    if kind == "finetuning":  # a fine-tuned classifier checkpoint
        config = ElectraConfig(**hparams["electra_config"])
        prefix = "classifier.electra."
    elif kind == "pretraining":
        encoder = encoder_from_checkpoint(checkpoint)
        return encoder.config, encoder.state_dict(), tokenizer_files
    else:
        raise ValueError(
            f"model.init_from: '{init_from}' is neither an exported ELECTRA directory nor a "
            "checkpoint of this project"
        )
    state = {
        k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)
    }
    if not state:
        raise ValueError(f"model.init_from: '{init_from}' holds no discriminator weights")
    return config, state, tokenizer_files


class ElectraClassifier(L.LightningModule):
    """Sequence classification / regression on top of the pretrained discriminator.

    Args:
        init_from: An exported discriminator directory (``export``'s ``DIR/discriminator``, or
            any ELECTRA in Hugging Face format) or a pretraining checkpoint.
        num_labels: Linked from the data (1 = regression, e.g. STS-B).
        task: Linked from the data; picks the metrics (``val/acc``, ``val/f1``, ``val/mcc``,
            ``val/pearson``, ``val/spearman``).
        id2label: Linked from the data: label names, written into exported models.
        learning_rate: Peak learning rate of the head (official: 3e-4 Small, 1e-4 Base, 5e-5 Large).
        layerwise_lr_decay: Per-layer factor downwards (official: 0.8 Small/Base, 0.9 Large).
        official_depths: Reproduce the official depth off-by-one (see ``layerwise_lr_groups``).
        weight_decay: AdamW weight decay (paper: 0).
        warmup_fraction: Linear warmup over this fraction of all steps, then linear decay to 0.
        dropout: Classifier-head dropout (official, as the encoder's: ``model.electra.DROPOUT``).
    """

    def __init__(
        self,
        init_from: str | None = None,
        num_labels: int = 2,
        task: str = "sst2",
        id2label: list[str] | None = None,
        learning_rate: float = 3e-4,
        layerwise_lr_decay: float = 0.8,
        official_depths: bool = False,
        weight_decay: float = 0.0,
        warmup_fraction: float = 0.1,
        dropout: float = DROPOUT,
        electra_config: dict | None = None,
    ):
        super().__init__()
        if not 0 < layerwise_lr_decay <= 1:
            raise ValueError(
                f"model.layerwise_lr_decay must be in (0, 1], got {layerwise_lr_decay}"
            )
        self.tokenizer_files = None
        state = None
        if electra_config is None:
            if init_from is None:
                raise ValueError("model.init_from is required (an exported model or a checkpoint)")
            base, state, self.tokenizer_files = load_discriminator(init_from)
            electra_config = base.to_dict()
        config = ElectraConfig(**electra_config)
        config.num_labels = num_labels
        config.problem_type = "regression" if num_labels == 1 else "single_label_classification"
        config.classifier_dropout = dropout
        names = id2label or [str(i) for i in range(num_labels)]
        config.id2label = dict(enumerate(names))
        config.label2id = {name: i for i, name in enumerate(names)}
        self.save_hyperparameters(logger=False)  # the CLI logs the whole config once
        self.hparams.electra_config = {
            k: v for k, v in config.to_dict().items() if k not in ("id2label", "label2id")
        }
        self.classifier = ElectraForSequenceClassification(config)
        if state is not None:
            missing, unexpected = self.classifier.electra.load_state_dict(state, strict=False)
            if unexpected or [m for m in missing if "position_ids" not in m]:
                raise ValueError(
                    f"model.init_from: weights do not fit an ELECTRA encoder (missing {missing[:3]}, "
                    f"unexpected {unexpected[:3]})"
                )
            head = "regression head" if num_labels == 1 else f"{num_labels}-label classifier head"
            rank_zero_info(
                f"model.init_from: the pretrained encoder of {init_from} (its own head "
                f"left out) and a new {head}"
            )
        self.metric_names = metric_names(task, num_labels)
        self.val_metrics = make_metrics(self.metric_names, num_labels)
        self.val_loss = MeanMetric()

    def forward(self, batch: dict):
        return self.classifier(**{k: v for k, v in batch.items() if k != "index"})

    def training_step(self, batch: dict, batch_idx: int):
        out = self(batch)
        finite = self.trainer.strategy.reduce_boolean_decision(
            bool(torch.isfinite(out.loss)), all=True
        )
        if not finite:
            path = save_rescue_checkpoint(self.trainer)
            raise ValueError(
                f"non-finite fine-tuning loss at step {self.global_step}; saved the last finite "
                f"state to {path}. Lower model.learning_rate or check the labels"
            )
        self.log("train/loss", out.loss, prog_bar=True, batch_size=len(batch["input_ids"]))
        return out.loss

    def _predictions(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.squeeze(-1).float() if self.hparams.num_labels == 1 else logits.argmax(-1)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        out = self(batch)
        preds = self._predictions(out.logits)
        target = batch["labels"]
        self.val_loss.update(out.loss, len(target))
        self.val_metrics.update(preds, target)

    def on_validation_epoch_end(self) -> None:
        self.log("val/loss", self.val_loss.compute(), prog_bar=True, sync_dist=True)
        self.val_loss.reset()
        for name, metric in self.val_metrics.items():
            self.log(f"val/{name}", metric.compute(), prog_bar=True, sync_dist=True)
            metric.reset()

    def predict_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        logits = self(batch).logits.float()
        return logits.squeeze(-1) if self.hparams.num_labels == 1 else logits.softmax(-1)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        trainer = attached_trainer(self)
        path = getattr(trainer, "ckpt_path", None) if trainer else None
        require_kind(checkpoint, "finetuning", str(path or "the checkpoint"), "--ckpt_path")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        files = self.tokenizer_files
        # an exported directory carries its tokenizer (the CLI links data.tokenizer to init_from)
        directory = self.hparams.get("init_from")
        if files is None and directory and os.path.isdir(directory):
            files = read_tokenizer_files(directory)
        if files:
            checkpoint[TOKENIZER_CHECKPOINT_KEY] = files

    def configure_optimizers(self):
        hp = self.hparams
        groups = layerwise_lr_groups(
            self.classifier,
            hp.learning_rate,
            hp.layerwise_lr_decay,
            hp.weight_decay,
            hp.official_depths,
        )
        # the official AdamW betas and eps, as in pretraining (weight decay and lr: per group)
        betas, eps = ADAMW_DEFAULTS["betas"], ADAMW_DEFAULTS["eps"]
        optimizer = torch.optim.AdamW(groups, lr=hp.learning_rate, betas=betas, eps=eps)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        # linear warmup over warmup_fraction of the steps, then linear decay to 0
        scheduler = get_linear_schedule_with_warmup(
            optimizer, int(hp.warmup_fraction * total), total
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
