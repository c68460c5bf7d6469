"""`python -m terminal`: the terminal service (pingjia-terminal.service), with nothing else
of the `pingjia` CLI imported."""
import sys

from terminal.serve import main

sys.exit(main())
