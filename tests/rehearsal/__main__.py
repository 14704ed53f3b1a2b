"""`python -m tests.rehearsal` (`make cluster-rehearsal`): the cluster rehearsal, rehearsal.py."""

import sys

from tests.rehearsal.rehearsal import main

sys.exit(main())
