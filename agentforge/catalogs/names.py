"""Component names from what authors write (``Code Reviewer``, ``Café``, ``日本語``).

The database and every document require ``^[a-z0-9][a-z0-9._-]{0,99}$``. A name that does not
fit is folded (NFKD, accents dropped, lower case, other characters to ``-``); a name with no
Latin letters left is spelled in Punycode (``xn--…``), so it stays unique and reversible.
The original is kept in the record's metadata (``original_name``) by the caller.
"""

from __future__ import annotations

import re
import unicodedata

from agentforge.core.documents import is_valid_name

__all__ = ["NAMESPACE_SEPARATOR", "namespaced", "normalise_name"]

#: ``plugin:name`` of the issue, spelled with a character the name rule allows.
NAMESPACE_SEPARATOR = "--"
_INVALID = re.compile(r"[^a-z0-9._-]+")
_INVISIBLE = re.compile(r"[\u200b\u200c\u200d\u2060\ufeff]")


def normalise_name(text: str) -> str | None:
    """A valid component name for ``text``, or None when nothing usable is left."""
    if not isinstance(text, str):
        return None
    cleaned = _INVISIBLE.sub("", text).replace("\u00a0", " ").strip()
    if not cleaned:
        return None
    if is_valid_name(cleaned):
        return cleaned
    folded = unicodedata.normalize("NFKD", cleaned)
    ascii_text = "".join(ch for ch in folded if not unicodedata.combining(ch)).lower()
    slug = _INVALID.sub("-", ascii_text.encode("ascii", "ignore").decode("ascii").replace(" ", "-"))
    slug = re.sub(r"-{3,}", "--", slug)
    slug = slug.lstrip("._-").rstrip("._-")[:100].rstrip("._-")
    has_letters = any(ch.isalnum() for ch in slug)
    if not has_letters and any(ord(ch) > 127 and ch.isalnum() for ch in cleaned):
        try:
            slug = "xn--" + cleaned.lower().replace(" ", "-").encode("punycode").decode("ascii")
        except UnicodeError:
            return None
        slug = _INVALID.sub("-", slug)[:100].rstrip("._-")
    return slug if slug and is_valid_name(slug) else None


def namespaced(namespace: str, name: str) -> str:
    """``<namespace>--<name>``, shortened to the 100-character limit (the name part kept whole)."""
    room = 100 - len(NAMESPACE_SEPARATOR) - len(name)
    head = namespace[: max(room, 1)].rstrip("._-") or namespace[:1]
    return f"{head}{NAMESPACE_SEPARATOR}{name}"[:100]
