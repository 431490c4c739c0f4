"""The `gplake` console script: the same command line, flags and exit codes as the binary."""

import sys

from ._gplake import run_cli


def main() -> None:
    sys.exit(run_cli(sys.argv))
