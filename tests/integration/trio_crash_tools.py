"""A tool module that kills the Trio worker at import (like a C extension that aborts), asyncio unharmed."""

import os
import sys

import shared.worker.builtin_tools  # noqa: F401

if "trio_worker" in sys.modules:
    os._exit(70)
