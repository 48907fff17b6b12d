"""``python -m semcal.cli``: the ``semcal`` command."""

import sys

from semcal.cli.app import main

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
