"""Keep what start-up built out of the cyclic garbage collector's way, once a process is ready to serve.

A process of ours imports a large object graph before it serves (the SDK, pydantic, uvicorn, the tool
modules): 90,000-110,000 tracked objects in the supervisor, 40,000 in a worker. CPython's generation-2
collections walk all of them, and under load one ran every 5,000-8,000 requests in the supervisor and
took 50-160 ms: the p99 of a whole run. ``gc.freeze()`` moves every object alive at that moment into the
permanent generation, which no collection walks; the collector keeps running for what serving allocates.

The price: a reference cycle among frozen objects that later becomes garbage is never collected (it
stays until the process exits). Start-up's own garbage is collected first, so only what start-up left
alive is frozen; a module that builds and drops cycles at import time costs nothing after that.

In the supervisor, the threshold of generation 0 also goes from 700 to ``GEN0_THRESHOLD``. A
fast-path call leaves no cyclic garbage, but its objects are alive while it is in flight, and with 32
calls in flight the count of allocations minus deallocations crossed 700 every ~35 requests: a collection
that found nothing (and promoted the in-flight objects to older generations, to be walked again there).
At 10,000 none ran in 50,000 fast-path requests. A call through the SDK does leave cycles (its
per-request ``ServerRunner``, whose cached bound methods refer to it, and ``Connection``: ~18 objects a
request): there the collector ran 24 times instead of 2,900 over the same load, and took 0.1 s of CPU
instead of 0.7 s; a generation-0 pass over 10,000 objects takes 2-5 ms. The workers keep CPython's
default: a no-op call left nothing for the collector there (not one collection in 40,000 calls), and the
cycles a tool's code leaves may hold large objects, which a higher threshold would keep alive longer.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 10_000
"""The supervisor's: allocations minus deallocations of tracked objects that trigger a generation-0
collection (CPython's default: 700)."""


def freeze_startup_heap(gen0_threshold: int | None = None) -> int:
    """Collect start-up's garbage, freeze every object still alive and, when ``gen0_threshold`` is given,
    make it generation 0's threshold (those of generations 1 and 2 stay); returns how many objects were
    frozen.

    Call it once, after the last import of start-up and before serving (the supervisor: once the app is
    built; a worker: once its tool modules are loaded, before READY). Calling it again freezes what was
    allocated since, which is harmless but rarely what is meant.
    """
    gc.collect()
    gc.freeze()
    if gen0_threshold is not None:
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(gen0_threshold, gen1, gen2)
    return gc.get_freeze_count()
