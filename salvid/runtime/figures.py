"""Saving figures for screens and papers: PNG to look at, PDF with embedded TrueType fonts to print, each written
atomically (a reader never sees half a file)."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from salvid.runtime.files import atomic_write_bytes

FORMATS = {".png": {"dpi": 120}, ".pdf": {}}  # raster for viewing, vector for papers
# TrueType (Type 42) fonts in PDFs: some paper submission systems reject matplotlib's default Type 3 fonts
PDF_FONTS = {"pdf.fonttype": 42, "ps.fonttype": 42}
# embedding them subsets each font with fontTools, which logs hundreds of INFO lines per PDF into the run's log
logging.getLogger("fontTools").setLevel(logging.WARNING)


def save_figure(fig: Figure, *paths: Path) -> None:
    """Write ``fig`` to each path in the format its suffix names (``.png``, ``.pdf``)."""
    for path in paths:
        suffix = Path(path).suffix.lower()
        if suffix not in FORMATS:
            raise ValueError(f"{path}: figures are written as {' or '.join(FORMATS)}")
        buffer = io.BytesIO()
        with matplotlib.rc_context(PDF_FONTS):
            fig.savefig(buffer, format=suffix[1:], bbox_inches="tight", **FORMATS[suffix])
        atomic_write_bytes(path, buffer.getvalue())
