"""``ElectraPretraining``: the LightningModule that trains generator + discriminator together."""

from __future__ import annotations

from dataclasses import asdict
from typing import Literal

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torchmetrics import MeanMetric
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    BinaryF1Score,
    BinaryPrecision,
    BinaryRecall,
)
from torchmetrics.functional.classification import (
    binary_accuracy,
    binary_f1_score,
    binary_precision,
    binary_recall,
)

from electra_lightning.common._compat import attached_trainer, logs_this_step
from electra_lightning.common.checkpoint import gather_rng_states, require_kind, set_rng_state
from electra_lightning.data.contract import DataContract
from electra_lightning.data.stream import attention_mask_of
from electra_lightning.model.baselines import context_gains
from electra_lightning.model.electra import (
    DROPOUT,
    PAIR_DEFAULTS,
    ElectraPair,
    ElectraStepOutput,
    EmbeddingSharing,
    MaskedLM,
    ModelSize,
    Objective,
    build_pretraining_model,
    training_flops_per_token,
)
from electra_lightning.model.optim import (
    ADAMW_DEFAULTS,
    AdamW,
    clip_fused_gradients,
    official_lr_lambda,
    param_groups,
    skips_on_device,
)
from electra_lightning.train.guard import NonFiniteGuard
from electra_lightning.train.parallel import shard_electra


class ElectraPretraining(L.LightningModule):
    """ELECTRA pretraining: generator MLM + weighted replaced token detection, one optimizer.

    Args:
        contract: What the model knows about the data (vocabulary, pad id, sequence length,
            masked predictions per sequence, tokenizer digest): linked by the CLI from
            ``ElectraDataModule.contract``; the sequence length must fit the position embeddings.
        size: The discriminator's size and the generator's relative to it (``model.size.*``:
            ``hidden_size``, ``num_layers``, ``num_heads``, ``intermediate_size``,
            ``embedding_size``, ``max_position_embeddings``, ``generator_size``,
            ``generator_layers``; see :class:`~electra_lightning.model.electra.ModelSize`).
        embedding_sharing: ``shared`` (official: one embedding module), ``none``, or ``gdes``
            (DeBERTa-v3 gradient-disentangled sharing; export folds it into plain weights).
        tie_generator_head: Tie the generator's output layer to the word embeddings.
        gen_weight: Weight of the generator's MLM loss (official 1.0).
        disc_weight: Weight of the discriminator's RTD loss (official 50.0).
        temperature: Sampling temperature for the generator's replacements.
        dropout: Hidden and attention dropout.
        warmup_steps: Linear warmup steps of the default schedule (official 10000).
        objective: ``electra`` (generator + replaced token detection) or ``mlm``: the BERT-style
            baseline, a discriminator-sized encoder trained with MLM only (use it with
            ``data.mask_token_prob: 0.8``, ``data.random_token_prob: 0.1``); same data, optimizer
            and logging, so the two differ only in the objective.
        on_nonfinite: On a NaN/inf loss: ``stop`` (save ``rescue-step=N.ckpt`` with the last
            finite weights and exit with an error) or ``skip`` the batch.
        max_nonfinite_skips: With ``skip``: stop after this many skipped batches.
        compile: ``torch.compile`` the encoders (generator's and discriminator's; the sampling
            and the losses stay eager, in fp32). Checkpoints, resume and export are unchanged
            (in-place ``Module.compile``: same parameter names). See docs/benchmarks.md for
            what it buys where.
        optimizer: Optimizer over the two parameter groups; default ``optim.AdamW`` (fused on
            CUDA and CPU) with lr 5e-4, betas (0.9, 0.999), eps 1e-6, weight decay 0.01 except
            LayerNorm/bias. A fused optimizer skips a non-finite step on the device; with any
            other the host checks the loss every step.
        lr_scheduler: Scheduler; default the official linear warmup + linear decay to 0 at
            ``trainer.max_steps``, stepped every optimizer step.
    """

    def __init__(
        self,
        contract: DataContract,
        size: ModelSize = ModelSize(),  # noqa: B008 (frozen: a shared default is safe)
        embedding_sharing: EmbeddingSharing = PAIR_DEFAULTS["embedding_sharing"],
        tie_generator_head: bool = PAIR_DEFAULTS["tie_generator_head"],
        gen_weight: float = PAIR_DEFAULTS["gen_weight"],
        disc_weight: float = PAIR_DEFAULTS["disc_weight"],
        temperature: float = PAIR_DEFAULTS["temperature"],
        dropout: float = DROPOUT,
        warmup_steps: int = 10000,
        objective: Objective = "electra",
        on_nonfinite: Literal["stop", "skip"] = "stop",
        max_nonfinite_skips: int = 10,
        compile: bool = False,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
    ):
        super().__init__()
        size = size if isinstance(size, ModelSize) else ModelSize(**size)  # a checkpoint's dict
        size = size.resolved()  # fields a preset fills in are stored resolved
        contract = DataContract.of(contract)
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"], logger=False)
        # plain values: checkpoints load with weights_only
        self.hparams["size"] = asdict(size)
        self.hparams["contract"] = contract.as_dict()
        self.contract = contract
        self.optimizer_factory = optimizer
        self.scheduler_factory = lr_scheduler
        self.nonfinite = NonFiniteGuard(on_nonfinite, max_nonfinite_skips)
        self._logging_step = False
        self._rng_to_restore: dict | None = None
        self.electra: ElectraPair | MaskedLM = build_pretraining_model(
            objective=objective,
            vocab_size=contract.vocab_size,
            max_seq_length=contract.max_seq_length,
            size=size,
            pad_token_id=contract.pad_token_id,
            dropout=dropout,
            embedding_sharing=embedding_sharing,
            tie_generator_head=tie_generator_head,
            gen_weight=gen_weight,
            disc_weight=disc_weight,
            temperature=temperature,
        )
        self.val_metrics = torch.nn.ModuleDict(
            {
                "loss": MeanMetric(),
                "gen_loss": MeanMetric(),
                "disc_loss": MeanMetric(),
                "gen_acc": MeanMetric(),
                "replaced_frac": MeanMetric(),
                "disc_acc": BinaryAccuracy(),
                "disc_precision": BinaryPrecision(),
                "disc_recall": BinaryRecall(),
                "disc_f1": BinaryF1Score(),
                # threshold-free: does the discriminator rank replaced tokens above original
                # ones, whatever its calibration (recall at 0.5 stays 0 on the base-rate plateau)
                "disc_auc": BinaryAUROC(thresholds=None),
            }
        )

    @property
    def generator(self):
        """ELECTRA's generator (``model.objective: electra``)."""
        return self.electra.generator

    @property
    def discriminator(self):
        """ELECTRA's discriminator (``model.objective: electra``)."""
        return self.electra.discriminator

    def forward(self, batch: dict) -> ElectraStepOutput:
        return self.electra(**batch)

    def configure_model(self) -> None:
        """Shard with FSDP2 under ``FSDP2Strategy``/``ModelParallelStrategy``
        (configs/trainer/fsdp2.yaml), then compile the encoders if ``compile`` is set."""
        if self.device_mesh is not None and not getattr(self, "_sharded", False):
            precision = str(self.trainer.precision)
            bf16 = precision.startswith("bf16") and torch.cuda.is_available()
            shard_electra(self.electra, self.device_mesh, bf16_params=bf16)
            self._sharded = True
        if self.hparams.compile and not getattr(self, "_compiled", False):
            for encoder in self.electra.encoders():
                encoder.compile()
            self._compiled = True

    @property
    def nonfinite_skips(self) -> int:
        """Batches skipped for a non-finite loss so far."""
        return self.nonfinite.skips

    # -- steps -------------------------------------------------------------------------------------

    # what a resumed checkpoint must share with the config (besides model.size)
    ARCHITECTURE = (
        "embedding_sharing",
        "tie_generator_head",
        "objective",
    )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["rng_states"] = gather_rng_states()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        trainer = attached_trainer(self)
        path = getattr(trainer, "ckpt_path", None) if trainer else None
        require_kind(checkpoint, "pretraining", str(path or "the checkpoint"), "--ckpt_path")
        saved = checkpoint.get("hyper_parameters", {})
        changed = [
            f"model.{k}: checkpoint {saved[k]!r}, now {self.hparams[k]!r}"
            for k in self.ARCHITECTURE
            if k in saved and saved[k] != self.hparams[k]
        ] + [
            f"model.size.{k}: checkpoint {v!r}, now {self.hparams.size[k]!r}"
            for k, v in saved.get("size", {}).items()
            if self.hparams.size.get(k) != v
        ]
        if changed:
            raise ValueError(
                "the model differs from the checkpoint's (" + "; ".join(changed) + "); resume "
                "with the checkpoint's config"
            )
        saved_contract = saved.get("contract") or {}
        ours = self.contract
        if saved_contract.get("tokenizer_sha256") not in (None, "", ours.tokenizer_sha256):
            raise ValueError(
                "data.tokenizer is not the tokenizer this checkpoint was trained with; use that "
                "one (export writes it out)"
            )
        changed = [
            f"{key}: checkpoint {saved_contract[key]!r}, now {getattr(ours, key)!r}"
            for key in ("vocab_size", "pad_token_id", "max_seq_length")
            if key in saved_contract and saved_contract[key] != getattr(ours, key)
        ]
        if changed:
            raise ValueError(
                "the data differs from the checkpoint's (" + "; ".join(changed) + "); resume "
                "with the checkpoint's data.tokenizer and data.max_seq_length"
            )
        states = checkpoint.get("rng_states")
        if states:
            rank = trainer.global_rank if trainer else 0
            self._rng_to_restore = states[rank] if rank < len(states) else None

    def on_train_start(self) -> None:
        # Restored here, after the sanity check, right before the first resumed step.
        if self._rng_to_restore is not None:
            set_rng_state(self._rng_to_restore)
            self._rng_to_restore = None

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor | None:
        out = self(batch)
        optimizer = self.optimizers(use_pl_optimizer=False)
        if not self.nonfinite.admits(out, self.global_step, self.trainer, optimizer):
            return None  # skip: no backward, no optimizer step
        # statistics are computed, reduced over ranks and logged only where Lightning logs
        self._logging_step = logs_this_step(self.trainer)
        if self._logging_step:
            self._log_statistics(batch, out)
        return out.loss

    def _log_statistics(self, batch: dict, out: ElectraStepOutput) -> None:
        stats = {"loss": out.loss.detach(), **self._statistics(batch, out)}
        if self.trainer.world_size > 1:  # mean over ranks in one collective, not one per metric
            reduced = self.trainer.strategy.reduce(
                torch.stack(list(stats.values())), reduce_op="mean"
            )
            stats = dict(zip(stats, reduced, strict=True))
        batch_size = batch["input_ids"].size(0)
        for name, value in stats.items():
            self.log(f"train/{name}", value, prog_bar=name == "loss", batch_size=batch_size)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], batch_size=batch_size)

    def on_before_optimizer_step(self, optimizer) -> None:
        self.nonfinite.before_optimizer_step(optimizer, self.trainer)

    def on_train_batch_end(self, outputs, batch: dict, batch_idx: int) -> None:
        if self._logging_step:  # the host reads the device's non-finite count only then
            self.nonfinite.check(self.trainer)

    def on_train_end(self) -> None:
        self.nonfinite.check(self.trainer)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        # Replacements from a fixed-seed generator: validation is reproducible and leaves the
        # global RNG (dropout, training samples) untouched, so it cannot perturb a resumed run.
        generator = torch.Generator(device=self.device).manual_seed(1_000_003 + batch_idx)
        out = self.electra(**batch, sampling_generator=generator)
        stats = self._statistics(batch, out)
        m = self.val_metrics
        n_masked = batch["masked_weights"].sum()
        token_weights = self._token_weights(batch)
        n_tokens = token_weights.sum()
        m["loss"].update(out.loss)
        m["gen_loss"].update(out.gen_loss, n_masked)
        m["gen_acc"].update(stats["gen_acc"], n_masked)
        if out.disc_logits is None:  # MLM objective: no discriminator metrics
            return
        m["disc_loss"].update(out.disc_loss, n_tokens)
        m["replaced_frac"].update(stats["replaced_frac"], n_tokens)
        keep = token_weights.bool()
        preds = (out.disc_logits.detach() > 0)[keep]
        target = out.disc_labels[keep]
        for name in ("disc_acc", "disc_precision", "disc_recall", "disc_f1"):
            m[name].update(preds, target)
        m["disc_auc"].update(out.disc_logits.detach().float()[keep].sigmoid(), target)

    def on_validation_epoch_end(self) -> None:
        values = {}
        for name, metric in self.val_metrics.items():
            if metric.update_count:
                # already reduced over ranks by torchmetrics; sync_dist only averages equal values
                values[name] = metric.compute()
                self.log(f"val/{name}", values[name], prog_bar=name == "loss", sync_dist=True)
            metric.reset()
        gains = context_gains(self.contract.unigram_ce, values)
        for name, gain in gains.items():
            self.log(f"val/{name}", gain, sync_dist=True)

    @staticmethod
    def _token_weights(batch: dict) -> torch.Tensor:
        return attention_mask_of(batch)

    @torch.no_grad()
    def _statistics(self, batch: dict, out: ElectraStepOutput) -> dict[str, torch.Tensor]:
        """Generator accuracy and the discriminator's accuracy and replaced-class precision, recall
        and F1 over non-padding tokens (torchmetrics' functions, without host syncs)."""
        weights = batch["masked_weights"].float()
        gen_correct = (out.gen_logits.argmax(-1) == batch["masked_ids"]).float()
        stats = {
            "gen_loss": out.gen_loss.detach(),
            "gen_acc": (gen_correct * weights).sum() / weights.sum().clamp(min=1),
        }
        if out.disc_logits is None:  # MLM objective
            return stats
        tokens = self._token_weights(batch)
        preds = (out.disc_logits > 0).long()
        target = out.disc_labels.long().masked_fill(tokens == 0, -100)  # padding: ignored
        kw = {"ignore_index": -100, "validate_args": False}  # no host sync
        return {
            **stats,
            "disc_loss": out.disc_loss.detach(),
            "disc_acc": binary_accuracy(preds, target, **kw),
            "disc_precision": binary_precision(preds, target, **kw),
            "disc_recall": binary_recall(preds, target, **kw),
            "disc_f1": binary_f1_score(preds, target, **kw),
            "replaced_frac": (out.disc_labels * tokens).sum() / tokens.sum().clamp(min=1),
        }

    # -- optimization ------------------------------------------------------------------------------

    def configure_optimizers(self):
        groups = param_groups(self.electra)
        if self.optimizer_factory is None:
            optimizer = AdamW(groups, **ADAMW_DEFAULTS)
        else:
            optimizer = self.optimizer_factory(groups)
        if self.scheduler_factory is not None:
            scheduler = self.scheduler_factory(optimizer)
        else:
            total = self.trainer.max_steps if self.trainer.max_steps > 0 else None
            if total is None:
                raise ValueError(
                    "trainer.max_steps must be set: the learning-rate schedule decays to 0 there"
                )
            scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, official_lr_lambda(self.hparams.warmup_steps, total)
            )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def configure_gradient_clipping(
        self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None
    ) -> None:
        """Clip as Lightning does, also with a fused optimizer under mixed precision (which
        Lightning's mixed-precision plugin refuses; see ``optim.clip_fused_gradients``)."""
        if not gradient_clip_val or not skips_on_device(optimizer):
            return self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)  # fp16's; bf16 has none
        clip_fused_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm, scaler)

    def flops_per_token(self) -> float:
        """Training matmul FLOPs per token (see ``model.training_flops_per_token``)."""
        contract = self.contract
        return training_flops_per_token(
            self.electra, contract.max_seq_length, contract.max_predictions_per_seq
        )

    def num_parameters(self) -> dict[str, int]:
        """Unique parameters of each exported network (generator, discriminator; or the MLM
        encoder) and of all together (shared embeddings counted once)."""

        def count(module) -> int:
            return sum(p.numel() for p in {id(p): p for p in module.parameters()}.values())

        counts = {name: count(net) for name, net in self.electra.exports().items()}
        return {**counts, "total": count(self.electra)}
