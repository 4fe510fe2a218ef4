"""Text a person typed, shown back in a message: quoted, and cut when long."""

SHOWN_CHARS = 60  # characters of a user's input repeated in an error message


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """
    Return `value` quoted (repr) for a message, its first `limit` characters when longer.

    A long value ends with '...' and its length, so a 100 kB run id or prompt neither floods a
    log nor comes back whole in an action result.
    """
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(text)
    return f'{text[:limit]!r}... ({len(text)} characters)'
