"""The `gplake` console script: the same command line, flags and exit codes as the binary."""

import signal
import sys

from ._gplake import run_cli


def main() -> None:
    # Signals as the binary has them: Python ignores SIGPIPE (so `gplake status | head`
    # would fail writing, where Unix tools stop quietly) and turns SIGINT into
    # KeyboardInterrupt (where the command's own handler stops at a safe point, exit 130).
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.exit(run_cli(sys.argv))
