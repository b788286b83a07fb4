"""The studies run with this codebase (one folder each); run them as modules from the repository
root, e.g. ``python -m experiments.generator_size.run --quick``."""
