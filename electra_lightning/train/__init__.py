"""Pretraining with Lightning: the LightningModule, its callbacks (last.ckpt, graceful stop,
throughput), the non-finite guard, parallel strategies, hardware choices and checkpoint → module
loading.

May import: ``common``, ``model``, ``data``."""
