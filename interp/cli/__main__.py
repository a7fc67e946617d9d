"""``python -m interp.cli``: the ``interp`` command."""

import sys

from interp.cli.commands import main

sys.exit(main())
