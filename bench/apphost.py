"""The function app under the dev host for a benchmark, its rate budgets measured over the sandbox's window.

    python -m bench.apphost --window-seconds 15 --port 0 --workers 4 [--profile DIR]

The sandbox can enforce Omnisend's per-window limits over a compressed window (e.g. 400 requests and
60 tag calls per 15 s instead of per minute), so a benchmark of a long run takes a quarter of the
time. The app's shared budgets (`BlobRateLimiter`) must then count over the same window, or they would
spend a quarter of what the sandbox allows: this sets their window and leaves the rest to
`tools.devhost` (every other argument is the dev host's). `--profile DIR` writes a cProfile of every
planning and finishing step (`plan-<n>.prof`, `untag-<n>.prof`) with its wall time on stderr.
"""
from __future__ import annotations

import argparse
import cProfile
import functools
import itertools
import os
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window-seconds", type=float, default=60.0)
    parser.add_argument("--profile", metavar="DIR", help="cProfile planning and finishing steps into DIR")
    args, rest = parser.parse_known_args(argv)
    if args.profile:
        from shared.runs import handlers

        os.makedirs(args.profile, exist_ok=True)
        handlers.planner.plan = _profiled(handlers.planner.plan, os.path.join(args.profile, "plan"))
        handlers.untag.untag_leavers = _profiled(handlers.untag.untag_leavers, os.path.join(args.profile, "untag"))
    if args.window_seconds != 60.0:
        from shared import ratelimit
        from shared.runs import clients

        clients.Budget = functools.partial(ratelimit.Budget, window_seconds=args.window_seconds)
    from tools import devhost

    return devhost.main(rest)


def _profiled(function, prefix: str):
    numbers = itertools.count(1)

    @functools.wraps(function)
    def run(*args, **kwargs):
        profile, started = cProfile.Profile(), time.monotonic()
        try:
            return profile.runcall(function, *args, **kwargs)
        finally:
            path = f"{prefix}-{next(numbers)}.prof"
            profile.dump_stats(path)
            print(f"{path}: {time.monotonic() - started:.2f} s wall", file=sys.stderr, flush=True)

    return run


if __name__ == "__main__":
    sys.exit(main())
