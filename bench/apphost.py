"""The function app under the dev host for a benchmark, its rate budgets measured over the sandbox's window.

    python -m bench.apphost --window-seconds 15 --port 0 --workers 4

The sandbox can enforce Omnisend's per-window limits over a compressed window (e.g. 400 requests and
60 tag calls per 15 s instead of per minute), so a benchmark of a long run takes a quarter of the
time. The app's shared budgets (`BlobRateLimiter`) must then count over the same window, or they would
spend a quarter of what the sandbox allows: this sets their window and leaves the rest to
`tools.devhost` (every other argument is the dev host's).
"""
from __future__ import annotations

import argparse
import functools
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window-seconds", type=float, default=60.0)
    args, rest = parser.parse_known_args(argv)
    if args.window_seconds != 60.0:
        from shared import ratelimit
        from shared.runs import clients

        clients.Budget = functools.partial(ratelimit.Budget, window_seconds=args.window_seconds)
    from tools import devhost

    return devhost.main(rest)


if __name__ == "__main__":
    sys.exit(main())
