"""What more than one benchmark uses, one job per module (the scripts are the modules of ``benchmarks``).

====================  ==================================================================================
``lifeline``          a child dies with the benchmark that started it (standard library only)
``trampoline``        ``python -m benchmarks.lib.trampoline PARENT PROGRAM ...``: become ``PROGRAM``
``running``           a benchmark script's places, log, event loop and private directory
``children``          every process a benchmark started, by pid: watched, stopped, killed as a last resort
``machine``           the machine, and the CPU time and memory of processes on it
``stats``             percentiles, medians, ratios, and how figures are written
``timing``            timed loops: sequential, concurrent callers, a window in flight; rotating rounds
``results``           what a benchmark of ``python -m benchmarks`` produces (``Section``, ``Target``)
``suite``             the state of a ``python -m benchmarks`` run; starting and stopping its processes
``mcp_client``        one 2026-07-28 ``tools/call`` over HTTP
``servers``           the HTTP servers a benchmark measures: the supervisor and the SDK-only baselines
``wrk``               the load generator, driven by a generated Lua script (``wrk.lua``)
``hop_peers``         both ends of a router⇄worker hop: router, echo children, worker processes
``hop_paths``         the paths the hop benchmark measures (``Probe``), and their interleaved rounds
====================  ==================================================================================

This package imports nothing itself: ``lifeline`` and ``trampoline`` run in every child before it
``exec``-s, and must stay cheap to import.
"""
