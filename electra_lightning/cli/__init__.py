"""The command line on top: ``main`` (the light dispatcher, fast ``--help``) and ``lightning``
(LightningCLI for fit / validate / test, pretraining and fine-tuning).

May import every other part."""
