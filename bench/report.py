"""Shared output of the benchmarks: a plain-text table and the reproducing command.

Each benchmark prints one table (a header row, then one row per measurement),
then the ratios that compare the product with its reference, then the command
line that reproduces the figures.
"""

from __future__ import annotations

import os
import resource
import shlex
import sys
import time
from collections.abc import Sequence


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Prints rows under headers, one column per header, as a Markdown table."""
    cells = [[str(header) for header in headers]] + [
        [_cell(value) for value in row] for row in rows
    ]
    widths = [max(len(row[index]) for row in cells) for index in range(len(headers))]

    def line(row):
        return (
            "| "
            + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
            + " |"
        )

    print(line(cells[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        print(line(row))
    sys.stdout.flush()


def _cell(value: object) -> str:
    if isinstance(value, float):
        if value == 0 or abs(value) >= 100:
            return f"{value:.1f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.4f}"
    return str(value)


def print_command() -> None:
    """Prints the command line that reproduces this run."""
    module = sys.modules["__main__"].__spec__
    if module is not None:
        argv = [".venv/bin/python", "-m", module.name] + sys.argv[1:]
    else:
        argv = [".venv/bin/python"] + sys.argv
    print(f"\nReproduce: {shlex.join(argv)}")
    load = os.getloadavg()
    print(
        f"Load average at the end (1/5/15 min): {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f} on {os.cpu_count()} cores; a load above the core count "
        "means other jobs shared the cores."
    )
    sys.stdout.flush()


def progress(message: str, *args) -> None:
    """One progress line on stderr, so the table on stdout stays clean."""
    stamp = time.strftime("%H:%M:%S")
    print(f"[{stamp}] " + (message % args if args else message), file=sys.stderr)
    sys.stderr.flush()


def peak_rss_mib(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident memory in MiB (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(who).ru_maxrss / 1024.0
