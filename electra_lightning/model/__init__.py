"""The ELECTRA pair in pure torch (no Lightning): sizes and presets, generator + discriminator
with shared embeddings, masking and sampling, the optimizer recipe, the frequency baselines.

May import: ``common``."""
