"""The check every task applies to text a user gives it (reviews, sentences, seed text)."""

from __future__ import annotations


def require_text(name: str, text: object) -> str:
    """`text` itself when it is a string holding at least one non-whitespace character.

    Raises TypeError naming `name` for a non-string, ValueError for an empty or whitespace-only
    string (a model would otherwise score or continue nothing and print a number as if it had).
    """
    if not isinstance(text, str):
        raise TypeError(f"{name}: expected a str, got {type(text).__name__}")
    if not text.strip():
        what = "empty" if not text else "only whitespace"
        raise ValueError(f"{name}: the text is {what}; give at least one word")
    return text
