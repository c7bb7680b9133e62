import sys

from ckd_core.cli import main

sys.exit(main())
