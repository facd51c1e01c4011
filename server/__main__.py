"""``python -m clipasso_server``: the same as the ``clipasso-server`` command."""

import sys

from .cli import main

sys.exit(main())
