"""Where each dataset comes from: the one place for download URLs, checksums, licences and layout options.

``sha256`` is ``None`` where the authors publish no checksum and none was recorded here: such archives are
verified by their own integrity (every zip member's CRC, a full read of a tar) and, when known, their size;
``prepare`` prints the sha256 it computed so it can be pinned here. Datasets the authors distribute only
through pages that need a browser (Google Drive, Baidu, a toolkit) have no archive URL: ``prepare`` then says
where to get the files and takes them with ``--from-archive``.
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
        archives=(Archive(f"DUTS-{part}.zip", f"http://saliencydetection.net/duts/download/DUTS-{part}.zip"),),
        homepage="http://saliencydetection.net/duts/",
        licence="research benchmark (no licence stated by the authors)",
        options={"images": f"DUTS-{part}-Image", "masks": f"DUTS-{part}-Mask"},
    )


DATASETS: dict[str, DatasetSource] = {
    "davis2016": DatasetSource(
        layout="davis2016",
        archives=(Archive("DAVIS-data.zip", "https://graphics.ethz.ch/Downloads/Data/Davis/DAVIS-data.zip"),),
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
            ),
        ),
        homepage="https://davischallenge.org/davis2017/code.html",
        licence="CC BY-NC 4.0 (some sequences: YouTube terms)",
        options={"resolution": "480p"},
    ),
    "segtrackv2": DatasetSource(
        layout="segtrackv2",
        archives=(Archive("SegTrackv2.zip", "https://web.engr.oregonstate.edu/~lif/SegTrack2/SegTrackv2.zip"),),
        homepage="https://web.engr.oregonstate.edu/~lif/SegTrack2/dataset.html",
        licence="research use (no explicit licence from the authors)",
    ),
    "vot2016": DatasetSource(
        layout="vot2016",
        archives=(Archive("vot2016.zip"), Archive("vot2016-segmentation.zip", into="segmentation")),
        homepage="https://www.votchallenge.net/vot2016/dataset.html (frames, via the VOT toolkit) and "
        "http://cmp.felk.cvut.cz/~vojirtom/dataset/votseg/ (segmentation masks)",
        licence="research use; sequences keep their original sources' terms",
    ),
    "usvd": DatasetSource(
        layout="usvd",
        archives=(Archive("UVSD.zip"),),
        homepage="https://github.com/DengPingFan/DAVSOD (benchmark datasets: UVSD)",
        licence="research use (no explicit licence from the authors)",
    ),
    "davsod": DatasetSource(
        layout="davsod",
        archives=(Archive("DAVSOD.zip"),),
        homepage="https://github.com/DengPingFan/DAVSOD",
        licence="research use (see the DAVSOD page)",
    ),
    "fbms": DatasetSource(
        layout="fbms",
        archives=(Archive("FBMS_Trainingset.zip"), Archive("FBMS_Testset.zip")),
        homepage="https://lmb.informatik.uni-freiburg.de/resources/datasets/moseg.en.html",
        licence="research use (see the FBMS page)",
    ),
    # DUTS (image salient-object detection): each zip holds one top-level folder, which prepare unwraps, so
    # --root gets DUTS-TR-Image/ and DUTS-TR-Mask/ (DUTS-TE-Image/, DUTS-TE-Mask/) directly.
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
