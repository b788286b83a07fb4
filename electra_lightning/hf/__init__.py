"""Hugging Face directories: export a checkpoint, predict with an export.

May import: ``common``, ``model``, ``data``, ``train``, ``finetune``."""
