"""Unit tests of supervisor/text_guard.py: which JSON bodies hold a string that is not valid text."""

from __future__ import annotations

import json

import pytest

from supervisor.text_guard import not_text


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": "\\ud800"}',
        b'{"a": "\\uDFFF tail"}',
        b'{"\\udc00": 1}',
        b'["ok", "\\ud83d"]',  # a high surrogate without its low half
        '{"a": "\udfff"}'.encode("utf-8", "surrogatepass"),  # the bytes, not the escape
    ],
)
def test_lone_surrogates_are_not_text(body: bytes) -> None:
    assert not_text(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": "hi"}',
        json.dumps({"a": "\U0001f600"}).encode(),  # a pair: \ud83d\ude00
        b'{"a": "\\\\ud800"}',  # an escaped backslash, then the letters u d 8 0 0
        b'{"a": "\\ud800", ',  # not JSON: the SDK answers it
        b'{"id": 123456789012345678901234567890, "a": "\\ud83d\\ude00"}',
        b"",
    ],
)
def test_other_bodies_are_left_to_the_sdk(body: bytes) -> None:
    assert not not_text(body)
