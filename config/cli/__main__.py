"""`python -m config.cli`: the `pingjia` command without its installed script."""
import sys

from config.cli import main

sys.exit(main())
