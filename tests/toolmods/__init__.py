"""Tool modules imported by tests/shared/worker/test_host.py through ``ToolHost.load`` (not test files).

Importing one registers its tools in the process-wide registry; the test removes them again.
"""
