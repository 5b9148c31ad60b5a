"""How the task database is named: a path (SQLite) or a ``postgresql://`` URL (any libpq URL), and a URL's
password kept out of command lines and messages.

The supervisor hands the ``trio-queue`` worker its URL without the password on the command line (which
every user of the host can read in ``/proc``) and the password in that worker's ``PGPASSWORD``, which
libpq reads itself (``split_password``); messages and logs show ``redact(url)``.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

SCHEMES = ("postgresql://", "postgres://")


def is_url(value: str) -> bool:
    """True when ``value`` names a PostgreSQL database rather than a file."""
    return value.startswith(SCHEMES)


def split_password(url: str) -> tuple[str, str | None]:
    """``url`` without its password (in the user part or as ``?password=``), and that password (decoded).

    Raises:
        ValueError: ``url`` is not a URL.
    """
    parts = urlsplit(url)
    password = None if parts.password is None else unquote(parts.password)
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, host = netloc.rpartition("@")
        netloc = f"{userinfo.split(':', 1)[0]}@{host}"
    kept = []
    for item in parts.query.split("&") if parts.query else []:
        key, _, value = item.partition("=")
        if unquote(key) == "password":
            password = unquote(value)
        else:
            kept.append(item)
    return _join(parts.scheme, netloc, parts.path, "&".join(kept), parts.fragment), password


def redact(url: str) -> str:
    """``url`` with ``***`` in place of its password (for messages and logs)."""
    try:
        bare, password = split_password(url)
        parts = urlsplit(bare)
    except ValueError:
        return "postgresql://?"
    if password is None or "@" not in parts.netloc:
        return bare
    user, _, host = parts.netloc.rpartition("@")
    return _join(parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment)


def _join(scheme: str, netloc: str, path: str, query: str, fragment: str) -> str:
    """A URL from its parts, keeping ``//`` before an empty host (``postgresql:///db`` is libpq's)."""
    url = f"{scheme}://{netloc}{path}"
    if query:
        url += f"?{query}"
    if fragment:
        url += f"#{fragment}"
    return url
