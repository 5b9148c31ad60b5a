"""Fixtures for the tests of ``trio_worker/``: a private tool registry."""

from __future__ import annotations

import pytest

from shared.metadata import ToolMetadataRegistry


@pytest.fixture
def registry() -> ToolMetadataRegistry:
    """A registry of this test only, so the process-wide one is never polluted."""
    return ToolMetadataRegistry()
