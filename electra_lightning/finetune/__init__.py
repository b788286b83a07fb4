"""Using a pretrained discriminator on labelled tasks: the task table and recipe, GLUE data and
its download, the classifier, the GLUE runner and the linear probe.

May import: ``common``, ``model``, ``data``, ``train``."""
