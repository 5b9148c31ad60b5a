"""Fixtures for the tests of ``shared/``: a private tool registry and a clean runtime-detection cache."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.detection import clear_cache
from shared.metadata import ToolMetadataRegistry, get_registry


@pytest.fixture
def registry() -> ToolMetadataRegistry:
    """A registry of this test only, so the process-wide one is never polluted."""
    return ToolMetadataRegistry()


@pytest.fixture(autouse=True)
def fresh_detection_cache() -> Iterator[None]:
    """``detect_runtime`` remembers answers per tool name for the whole process: forget them around each test."""
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def global_registry_guard() -> Iterator[ToolMetadataRegistry]:
    """The process-wide registry, with every tool the test added to it removed afterwards."""
    registry = get_registry()
    before = {metadata.name for metadata in registry.list_all()}
    yield registry
    for metadata in registry.list_all():
        if metadata.name not in before:
            registry.unregister(metadata.name)
