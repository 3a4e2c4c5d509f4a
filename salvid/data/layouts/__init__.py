"""Dataset layouts: each lists sequences -> frames -> masks as its authors distribute them.

``LAYOUTS`` maps a layout name (``data.layout``) to its lister ``f(root, split, **options) -> list[VideoSequence]``.
``split=None`` means every sequence; the config spells it ``all``.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from salvid.data.acquire.registry import prepare_command
from salvid.data.layouts.base import DatasetError, VideoSequence, load_target, read_split
from salvid.data.layouts.concat import concat
from salvid.data.layouts.davis import davis2016
from salvid.data.layouts.davsod import davsod
from salvid.data.layouts.fbms import fbms
from salvid.data.layouts.image_sod import image_sod
from salvid.data.layouts.segtrackv2 import segtrackv2
from salvid.data.layouts.videos import video_folder
from salvid.data.layouts.vot2016 import vot2016

LAYOUTS: dict[str, Callable[..., list[VideoSequence]]] = {
    "videos": video_folder,
    "davis2016": davis2016,
    "segtrackv2": segtrackv2,
    "vot2016": vot2016,
    "usvd": davsod,  # see salvid.data.layouts.davsod
    "davsod": davsod,
    "fbms": fbms,
    "image_sod": image_sod,
    "concat": concat,
}

ALL = "all"


def check_options(layout: str, options: dict[str, Any], where: str = "data") -> None:
    """A clear error for an unknown layout or an option the layout does not take."""
    if layout not in LAYOUTS:
        raise DatasetError(f"{where}.layout={layout!r}: must be one of {sorted(LAYOUTS)}")
    params = inspect.signature(LAYOUTS[layout]).parameters
    known = [p for p in params if p not in ("root", "split")]
    unknown = [k for k in options if k not in known]
    if unknown:
        nearest = difflib.get_close_matches(unknown[0], known, 1)
        hint = (f"; an option of one dataset goes under data.datasets.<name> (e.g. +data.datasets.<name>.{unknown[0]})"
                if layout == "concat" else f"; did you mean {nearest[0]}?" if nearest else "")
        raise DatasetError(f"{where}.{unknown[0]}: not an option of layout {layout!r} (its options: {known}){hint}")


def layout_options(layout: str, data: Any) -> dict[str, Any]:
    """The entries of a data config (any mapping) that are options of its layout's lister."""
    check_options(layout, {})
    params = [p for p in inspect.signature(LAYOUTS[layout]).parameters if p not in ("root", "split")]
    return {k: data[k] for k in params if k in data}


def list_sequences(layout: str, root: str | Path, split: str | None, where: str = "data",
                   **options: Any) -> list[VideoSequence]:
    """The sequences of one split of a dataset; a missing dataset says where it looked and how to prepare it.

    ``where`` is the config key that holds the options (``data``, or ``data.datasets.<name>`` in a ``concat``):
    an option's error names its whole key."""
    check_options(layout, options, where)
    check_root(layout, root)
    try:
        return LAYOUTS[layout](Path(root), None if split == ALL else split, **options)
    except DatasetError as error:
        message = str(error)
        if type(error) is DatasetError and message.startswith(tuple(f"{k}{c}" for k in options for c in "=.:")):
            raise DatasetError(f"{where}.{message}") from None
        raise


def check_root(layout: str, root: str | Path, key: str = "data.root") -> None:
    """A missing dataset says where it looked, how to prepare it, and which setting (``key``) names its folder."""
    if not Path(root).exists():
        made = ""
        if layout == "davis2016":  # the release is 854x480; the held-out protocol's copy is made from it
            made = (" (the official 480p release; `python -m salvid.prepare downscale --root <it> --out <copy>` "
                    "makes the 427x240 copy of data=davis2016_holdout)")
        raise DatasetError(
            f"{layout} dataset not found: {root} does not exist. Prepare it with `{prepare_command(layout, root)}`"
            f"{made} or point {key} at an existing copy"
        )


def dataset_roots(data: Any) -> list[tuple[str, Path, str]]:
    """``(layout, root, the key that names it)`` of each dataset a data config reads (those of a ``concat``), or []
    for generated synthetic data, which is made where it is asked for."""
    if data.get("synthetic") is not None:
        return []
    if data.get("layout") == "concat":
        return [(str(entry["layout"]), Path(data["root"]) / str(entry["root"]),
                 f"data.root and data.datasets.{name}.root (the folder within it)")
                for name, entry in (data.get("datasets") or {}).items() if "layout" in entry and "root" in entry]
    return [(str(data["layout"]), Path(data["root"]), "data.root")] if data.get("layout") and data.get("root") else []


__all__ = ["ALL", "LAYOUTS", "DatasetError", "VideoSequence", "check_options", "check_root", "dataset_roots",
           "layout_options", "list_sequences", "load_target", "read_split"]
