"""``python -m benchmarks.rss_probe MODULE...``: import the modules, then print ``RSS <MB>`` of this process.

What ``benchmarks.memory`` starts to tell what a kind of process weighs from its imports alone, before it
holds any state (MB of 10⁶ bytes, as the issue's targets).
"""

from __future__ import annotations

import importlib
import sys

import psutil


def main(modules: list[str]) -> None:
    for module in modules:
        importlib.import_module(module)
    print("RSS", psutil.Process().memory_info().rss / 1e6)


if __name__ == "__main__":
    main(sys.argv[1:])
