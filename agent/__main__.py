"""`python -m agent`: the sync agent, with nothing else of the `pingjia` CLI imported."""
import sys

from agent.service import main

sys.exit(main())
