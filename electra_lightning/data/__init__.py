"""From corpus files to masked batches: formats and units, sources, sentence packing, the
resumable stream, the tokenizer, the model/data contract and the LightningDataModule.

May import: ``common``, ``model`` (masking, baselines)."""
