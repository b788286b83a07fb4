"""What a user reads: run summaries, run comparisons (CSV, TensorBoard, W&B), console output.

May import: ``common`` (and, lazily, anything below ``cli``)."""
