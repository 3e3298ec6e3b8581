"""``python -m posegen``: the same command line as the ``posegen`` console script."""

import sys

from .cli.main import main

if __name__ == "__main__":
    sys.exit(main())
