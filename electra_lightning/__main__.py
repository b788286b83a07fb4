import sys

from electra_lightning.cli import main

sys.exit(main())
