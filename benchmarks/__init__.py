"""Stand-alone benchmark scripts (``python -m benchmarks.<name>`` from the repository root); tests never import them."""
