"""How one layer of spec data is laid over another (``extends``, stage blocks).

- mappings merge key by key, recursively;
- a mapping whose ``type`` differs from the one beneath replaces it whole
  (the fields of one variant mean nothing to another);
- a ``null`` value removes the key, so the default applies again;
- anything else (scalars, lists such as ``stages``) replaces what was beneath.
"""

from __future__ import annotations

from typing import Any


def replaces(base: Any, over: Any) -> bool:
    """True when ``over`` replaces ``base`` outright instead of merging into it."""
    if not (isinstance(base, dict) and isinstance(over, dict)):
        return True
    return "type" in over and "type" in base and over["type"] != base["type"]


def merge(base: Any, over: Any) -> Any:
    if replaces(base, over):
        return over
    out = dict(base)
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
        elif key in out:
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out
