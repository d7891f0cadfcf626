"""Table and column names from user input, made safe to splice into SQL.

A name is one or more dot-separated parts. A part written in the dialect's quote characters
(``"Posts Table"``, ```x-data```, ``[dbo]``) is kept quoted, exactly as written; a bare part must be a
plain identifier (letters, digits, ``_``, ``$``; not starting with a digit) and stays bare, so the
database folds its case the way it does in the user's own SQL. Anything else (a quote character inside
a quoted part, control characters, an empty part, text between parts) is refused: no SQL can be
injected through a name.
"""

from __future__ import annotations

import dataclasses
import re

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclasses.dataclass(frozen=True)
class Quoting:
    """The quote characters of a SQL dialect (``"`` for PostgreSQL and DuckDB, `````, ``[`` ``]``...)."""

    start: str = '"'
    end: str = '"'

    @classmethod
    def from_format(cls, escape_word_format: str) -> Quoting:
        """From a common.sql dialect's ``escape_word_format`` such as ``'"{}"'`` or ``'[{}]'``."""
        start, _, end = escape_word_format.partition("{}")
        if len(start) != 1 or len(end) != 1:
            raise ValueError(f"Unsupported identifier quoting {escape_word_format!r}")
        return cls(start, end)

    def quote(self, part: str) -> str:
        """``part`` in quotes; refused when it holds a quote character or a control character."""
        if not part or self.start in part or self.end in part or _CONTROL.search(part):
            raise ValueError(f"{part!r} is empty or holds quotes or control characters")
        return f"{self.start}{part}{self.end}"


def sql_name(text: str, quoting: Quoting, *, max_parts: int = 3, what: str = "table") -> str:
    """The SQL text of a (possibly schema-qualified) name, validated part by part."""
    parts = _split(text, quoting, what)
    if len(parts) > max_parts:
        raise ValueError(f"Invalid {what} name {text!r}: at most {max_parts} dot-separated parts")
    return ".".join(parts)


def column_name(text: str, quoting: Quoting) -> str:
    """The SQL text of one column name."""
    return sql_name(text, quoting, max_parts=1, what="column")


def _split(text: str, quoting: Quoting, what: str) -> list[str]:
    parts: list[str] = []
    position = 0
    while True:
        if text.startswith(quoting.start, position):
            end = text.find(quoting.end, position + 1)
            if end < 0:
                raise ValueError(f"Invalid {what} name {text!r}: unbalanced quotes")
            try:
                parts.append(quoting.quote(text[position + 1 : end]))
            except ValueError as error:
                raise ValueError(f"Invalid {what} name {text!r}: {error}") from None
            position = end + 1
        else:
            end = text.find(".", position)
            end = len(text) if end < 0 else end
            part = text[position:end]
            if not _PLAIN.match(part):
                raise ValueError(
                    f"Invalid {what} name {text!r}: {part!r} is not a plain identifier; "
                    f"quote it as {quoting.start}...{quoting.end}"
                )
            parts.append(part)
            position = end
        if position == len(text):
            return parts
        if text[position] != ".":
            raise ValueError(f"Invalid {what} name {text!r}: expected '.' after a quoted part")
        position += 1
