"""Step 2 of loading, per file: the shorthand expanded (``stem: deep`` is ``{type: deep}``), and the
Bag-of-Tricks ``tweaks`` (B, C, D) set, refused where they contradict a field of the same file."""

from __future__ import annotations

from typing import Any

from ..errors import Problem, SpecError, dotted, printable
from . import spec as spec_models
from .messages import short
from .yamlsource import Data, Path_, Pos, Positions, yaml_text

SHORTHAND_KEYS = ("stem", "block", "head")


def normalize(data: Data) -> Data:
    """Expand ``stem: deep`` to ``{type: deep}`` (also for stage blocks and the
    shortcut) so that a child's mapping merges over a parent's shorthand."""

    def typed(value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value

    def block(value: Any) -> Any:
        value = typed(value)
        if isinstance(value, dict) and "shortcut" in value:
            value = {**value, "shortcut": typed(value["shortcut"])}
        return value

    out = {k: typed(v) if k in ("stem", "head") else v for k, v in data.items()}
    if "block" in out:
        out["block"] = block(out["block"])
    if isinstance(out.get("stages"), list):
        out["stages"] = [
            {**st, "block": block(st["block"])} if isinstance(st, dict) and "block" in st else st
            for st in out["stages"]
        ]
    return out


def union_tweaks(a: Any, b: Any) -> Any:
    if not (isinstance(a, list) and isinstance(b, list)):
        return b
    return a + [t for t in b if t not in a]


# What each tweak sets: (path, value). B only concerns bottleneck blocks.
TWEAKS: dict[str, str] = {
    "B": "stride on the 3x3 conv of bottleneck blocks (block.stride_at: 3x3)",
    "C": "deep stem of three 3x3 convs (stem.type: deep)",
    "D": "average-pool shortcut (block.shortcut.type: avgpool)",
}


def apply_tweaks(
    merged: Data,
    own: Data,
    tweaks: Any,
    own_pos: dict[Path_, Pos],
    display: str,
    conflicts: list[Problem] | None = None,
) -> Data:
    """Expand the Bag-of-Tricks shorthand, refusing contradictions in the same file: each is added to
    ``conflicts`` (the tweak is then not applied), or raised where that is None."""
    if not isinstance(tweaks, list):
        return merged  # validation reports the type
    merged = dict(merged)
    written = Positions([own_pos])

    def conflict(tweak: str, path: Path_, wanted: str, found: Any) -> None:
        pos = written.find(path) if path[:1] in own_pos else None
        pos = pos or own_pos.get(("tweaks",)) or Pos(display, None, None)
        shown = found if isinstance(found, str) else yaml_text(found)
        problem = Problem(
            pos.file,
            pos.line,
            pos.column,
            dotted(path),
            f"tweak {tweak} means {wanted}, but this file sets {dotted(path)}: {printable(short(shown))}",
        )
        if conflicts is None:
            raise SpecError(problem)
        conflicts.append(problem)

    own_block: Data = own["block"] if isinstance(own.get("block"), dict) else {}
    for tweak in tweaks:
        if tweak == "B":
            found = own_block.get("stride_at")
            if found not in (None, "3x3"):
                conflict("B", ("block", "stride_at"), "stride_at: 3x3", found)
                continue
            block = merged.get("block")
            if isinstance(block, dict) and block.get("type") == "bottleneck":
                merged["block"] = {**block, "stride_at": "3x3"}
        elif tweak == "C":
            stem: Any = own.get("stem")
            found = stem.get("type") if isinstance(stem, dict) else stem
            if found not in (None, "deep"):
                conflict("C", ("stem", "type"), "stem.type: deep", found)
                continue
            alien = [k for k in stem if k not in spec_models.DeepStem.model_fields] if isinstance(stem, dict) else []
            if alien:  # e.g. stem: {width: 16}, a classic stem's field that the deep stem would drop
                conflict("C", ("stem", alien[0]), f"stem.type: deep (which has no '{alien[0]}')", stem[alien[0]])
                continue
            old = merged.get("stem")
            old = {"type": old} if isinstance(old, str) else (old or {})
            if old.get("type") != "deep":
                kept = {k: old[k] for k in ("pool", "pool_padding", "norm_act") if k in old}
                merged["stem"] = {"type": "deep", **kept}
        elif tweak == "D":
            shortcut = own_block.get("shortcut")
            found = shortcut.get("type") if isinstance(shortcut, dict) else shortcut
            if found not in (None, "avgpool"):
                conflict("D", ("block", "shortcut", "type"), "shortcut.type: avgpool", found)
                continue
            block = merged.get("block")
            if isinstance(block, dict) and block.get("type") in ("basic", "bottleneck"):
                merged["block"] = {**block, "shortcut": {"type": "avgpool"}}
    return merged
