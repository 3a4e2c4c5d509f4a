"""Where each dataset comes from: the one place for download URLs, checksums, licences and layout options.

``sha256`` is ``None`` where the authors publish no checksum and none was recorded here: such archives are
verified by their own integrity (every zip member's CRC, a full read of a tar) and, when known, their size;
``prepare`` prints the sha256 it computed so it can be pinned here. Datasets the authors distribute only
through pages that need a browser (Google Drive, Baidu, a toolkit) have no archive URL: ``prepare`` then says
where to get the files and takes them with ``--from-archive``.

Each archive says what its contents hold at their top (``top``, patterns such as ``JPEGImages`` or, for a
layout whose sequences sit at the top, ``*/Imgs``), so that extraction unwraps a lone folder only when it is a
wrapper (``DAVIS/``), never when it is the contents themselves (a one-sequence archive's ``bear/``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Archive:
    filename: str
    url: str | None = None  # None: download by hand from the dataset's homepage
    sha256: str | None = None
    size: int | None = None  # bytes
    into: str = ""  # sub-folder of the dataset root to extract into
    top: tuple[str, ...] = ()  # what the contents hold at their top: see salvid.data.acquire.extract.unwrap


@dataclass(frozen=True)
class DatasetSource:
    layout: str
    archives: tuple[Archive, ...]
    homepage: str
    licence: str
    options: dict[str, Any] = field(default_factory=dict)  # layout options for reading it


def _duts(part: str) -> DatasetSource:
    """DUTS-TR (training) or DUTS-TE (test), as the authors distribute them."""
    return DatasetSource(
        layout="image_sod",
        archives=(Archive(f"DUTS-{part}.zip", f"http://saliencydetection.net/duts/download/DUTS-{part}.zip",
                          top=(f"DUTS-{part}-Image", f"DUTS-{part}-Mask")),),
        homepage="http://saliencydetection.net/duts/",
        licence="research benchmark (no licence stated by the authors)",
        options={"images": f"DUTS-{part}-Image", "masks": f"DUTS-{part}-Mask"},
    )


DAVIS_TOP = ("JPEGImages", "Annotations")

DATASETS: dict[str, DatasetSource] = {
    "davis2016": DatasetSource(
        layout="davis2016",
        archives=(Archive("DAVIS-data.zip", "https://graphics.ethz.ch/Downloads/Data/Davis/DAVIS-data.zip",
                          top=DAVIS_TOP),),
        homepage="https://davischallenge.org/davis2016/code.html",
        licence="CC BY-NC 4.0 (some sequences: YouTube terms)",
        options={"resolution": "480p"},
    ),
    "davis2017": DatasetSource(
        layout="davis2016",
        archives=(
            Archive(
                "DAVIS-2017-trainval-480p.zip",
                "https://data.vision.ee.ethz.ch/csergi/share/davis/DAVIS-2017-trainval-480p.zip",
                top=DAVIS_TOP,
            ),
        ),
        homepage="https://davischallenge.org/davis2017/code.html",
        licence="CC BY-NC 4.0 (some sequences: YouTube terms)",
        options={"resolution": "480p"},
    ),
    "segtrackv2": DatasetSource(
        layout="segtrackv2",
        archives=(Archive("SegTrackv2.zip", "https://web.engr.oregonstate.edu/~lif/SegTrack2/SegTrackv2.zip",
                          top=("JPEGImages", "GroundTruth")),),
        homepage="https://web.engr.oregonstate.edu/~lif/SegTrack2/dataset.html",
        licence="research use (no explicit licence from the authors)",
    ),
    "vot2016": DatasetSource(
        layout="vot2016",
        archives=(  # sequence folders at the top: frames in <seq>/ or <seq>/color/, masks in <seq>/
            Archive("vot2016.zip", top=("*/*.jpg", "*/color")),
            Archive("vot2016-segmentation.zip", into="segmentation", top=("*/*.png",)),
        ),
        homepage="https://www.votchallenge.net/vot2016/dataset.html (frames, via the VOT toolkit) and "
        "http://cmp.felk.cvut.cz/~vojirtom/dataset/votseg/ (segmentation masks)",
        licence="research use; sequences keep their original sources' terms",
    ),
    "usvd": DatasetSource(
        layout="usvd",
        archives=(Archive("UVSD.zip", top=("*/Imgs",)),),
        homepage="https://github.com/DengPingFan/DAVSOD (benchmark datasets: UVSD)",
        licence="research use (no explicit licence from the authors)",
    ),
    "davsod": DatasetSource(
        layout="davsod",
        archives=(Archive("DAVSOD.zip", top=("*/Imgs",)),),
        homepage="https://github.com/DengPingFan/DAVSOD",
        licence="research use (see the DAVSOD page)",
    ),
    "fbms": DatasetSource(
        layout="fbms",
        archives=(
            Archive("FBMS_Trainingset.zip", top=("Trainingset",)),
            Archive("FBMS_Testset.zip", top=("Testset",)),
        ),
        homepage="https://lmb.informatik.uni-freiburg.de/resources/datasets/moseg.en.html",
        licence="research use (see the FBMS page)",
    ),
    # DUTS (image salient-object detection): each zip wraps its folders in one top-level folder, which prepare
    # unwraps, so --root gets DUTS-TR-Image/ and DUTS-TR-Mask/ (DUTS-TE-Image/, DUTS-TE-Mask/) directly.
    "duts": _duts("TR"),
    "duts-te": _duts("TE"),
}


def prepare_command(layout: str, root: str | Path) -> str:
    """The command that prepares a dataset of ``layout`` at ``root``."""
    names = [name for name, source in DATASETS.items() if source.layout == layout]
    name = layout if layout in names else names[0] if names else None
    if name is None:
        return f"python -m salvid.prepare pack <frame-folder layout> --root <source folder> --out {root}"
    return f"python -m salvid.prepare {name} --root {root}"
