"""Describe a PostgreSQL DSN for error messages without ever showing its password."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit


def describe_dsn(dsn: str) -> str:
    """``host:port/dbname`` of a ``postgresql://`` DSN (the socket directory for unix sockets).

    The user's password never appears in the result, whatever the DSN looks like.
    """
    try:
        parts = urlsplit(dsn)
        query = parse_qs(parts.query)
        host = parts.hostname or (query.get("host") or ["localhost"])[0]
        port = parts.port or int((query.get("port") or ["5432"])[0])
        dbname = parts.path.lstrip("/") or (query.get("dbname") or [parts.username or ""])[0]
    except ValueError:
        return "<unparseable DSN>"
    return f"{host}:{port}/{dbname}"
