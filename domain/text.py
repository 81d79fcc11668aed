"""What text the platform accepts from outside: no NUL and no other control characters except
in free text, where tab, line feed and carriage return may stand. (PostgreSQL refuses U+0000
in text outright, and control characters in ids, names and codes only ever mean a mistake or
an attack.)"""

from __future__ import annotations

import re

# C0 controls, DEL and the C1 controls.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_CONTROL_IN_FREE_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def control_character(value: str, *, free_text: bool = False) -> str | None:
    """The first control character `value` holds that it may not, as `U+XXXX`, or None."""
    found = (_CONTROL_IN_FREE_TEXT if free_text else _CONTROL).search(value)
    return None if found is None else f"U+{ord(found.group()):04X}"
