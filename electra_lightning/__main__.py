import sys

from electra_lightning.cli.main import main

sys.exit(main())
