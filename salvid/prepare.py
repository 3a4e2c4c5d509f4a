"""Prepare datasets: ``python -m salvid.prepare ...``

The commands and their arguments: :data:`HELP` (``python -m salvid.prepare --help``).

``<name>`` is an entry of :mod:`salvid.data.acquire.registry`. Downloads go to ``--download-dir`` (default
``<root>/../downloads``) and resume there. Archives are verified before extraction (see
:mod:`salvid.data.acquire.download`) and extracted safely (see :mod:`salvid.data.acquire.extract`: nothing is written outside
the dataset, and no link in it leads outside) into a temporary folder beside ``--root`` that is renamed to
``--root`` only when every archive is in and checked, so an interrupted or refused run never leaves a folder
that looks prepared. An archive holding a single top-level folder that wraps its contents (``DAVIS/``) is
unwrapped; one whose single folder is itself what the dataset holds at its top (``JPEGImages/``, the one
sequence of a layout whose sequences sit at the top) is not: each registry archive says which (``top``).
"""

from __future__ import annotations

import argparse
import inspect
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from salvid.data.acquire.download import DownloadError, download, progress_bar, verify
from salvid.data.acquire.downscale import downscale
from salvid.data.acquire.extract import extract_dataset
from salvid.data.acquire.pack import pack
from salvid.data.acquire.registry import DATASETS, DatasetSource
from salvid.data.acquire.small_objects import small_objects
from salvid.data.inventory import count_sequences
from salvid.data.layouts import LAYOUTS, DatasetError, list_sequences
from salvid.errors import ConfigError, DataError
from salvid.runtime.entry import entry_point

console = Console()


def check(layout: str, root: Path, split: str = "all", **options) -> Table:
    """List and check a dataset; returns a table of per-sequence counts (with a progress bar while counting)."""
    sequences = list_sequences(layout, root, split, **options)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"checking {len(sequences)} sequences", total=len(sequences))
        counts = count_sequences(sequences, on_done=lambda _: progress.advance(task))
    table = Table(title=f"{layout} at {root}")
    for column in ("sequence", "frames", "masks", "empty masks", "size (HxW)"):
        table.add_column(column, justify="left" if column == "sequence" else "right")
    for c in counts:
        table.add_row(c.name, str(c.frames), str(c.targets), str(c.empty), f"{c.size[0]}x{c.size[1]}")
    table.add_section()
    table.add_row(
        f"{len(counts)} sequences", *(str(sum(getattr(c, k) for c in counts)) for k in ("frames", "targets", "empty")), ""
    )
    return table


def fetch(source: DatasetSource, name: str, download_dir: Path, from_archives: list[Path]) -> list[Path]:
    """The verified local archives of a dataset, downloading what is missing."""
    if from_archives:
        if len(from_archives) != len(source.archives):
            raise ConfigError(
                f"{name}: expects {len(source.archives)} archives ({[a.filename for a in source.archives]}), "
                f"got {len(from_archives)} --from-archive"
            )
        pairs = list(zip(source.archives, from_archives, strict=True))
    else:
        manual = [a.filename for a in source.archives if a.url is None]
        if manual:
            raise ConfigError(
                f"{name}: its authors distribute it through {source.homepage}, not a direct URL. Download "
                f"{manual} there, then run again with --from-archive FILE for each."
            )
        with progress_bar() as progress:
            pairs = [(a, download(a.url, download_dir / a.filename, progress)) for a in source.archives]
    for archive, path in pairs:
        console.print(f"verifying {path} ...")
        try:
            digest = verify(path, archive.sha256, archive.size)
        except DownloadError:
            if not from_archives:  # ours: remove it so the next run downloads afresh (never a user's file)
                path.unlink()
            raise
        if archive.sha256 is None:
            console.print(f"  no checksum recorded for {archive.filename}; archive intact, sha256 {digest}")
    return [path for _, path in pairs]


def dataset_folder(root: Path) -> Path:
    """The folder that will hold the dataset: ``root`` itself, or the folder a link ``root`` leads to.

    A link is followed (a user keeps data on another disk behind ``data/DAVIS``): the dataset is built beside
    its target and renamed onto it, so the link stays and leads to the prepared copy. Anything else that is
    not a folder is refused with what to do."""
    if root.is_symlink():
        target = root.resolve()
        if not target.is_dir():
            state = "is not a folder" if target.exists() else "does not exist"
            raise DataError(f"{root}: --root is a link to {target}, which {state}; create that folder (empty) or "
                            "give another --root")
        return target
    if root.exists() and not root.is_dir():
        raise DataError(f"{root}: --root is a file, not a folder; give a folder (new or empty) as --root")
    return root


def prepare(name: str, root: Path, download_dir: Path | None = None, from_archives: Sequence[Path] = ()) -> Table:
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    source = DATASETS[name]
    root = Path(root)
    folder = dataset_folder(root)
    if root.exists() and any(root.iterdir()):
        try:
            table = check(source.layout, root, **source.options)
        except (DatasetError, DataError) as error:
            raise DatasetError(
                f"{root} exists but is not a complete {name} ({error}); remove it or choose another --root"
            ) from None
        console.print(f"{root}: {name} already prepared")
        return table
    archives = fetch(source, name, download_dir or root.parent / "downloads", [Path(p) for p in from_archives])
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}.partial-", dir=folder.parent))
    try:
        extract_dataset([(path, archive.into, archive.top)
                         for archive, path in zip(source.archives, archives, strict=True)],
                        partial, on_archive=lambda path: console.print(f"extracting {path} ..."))
        if folder.exists():
            folder.rmdir()  # empty (checked above)
        partial.rename(folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return check(source.layout, root, **source.options)


def _resolution_option(pairs: list[str], command: str) -> str:
    """The source's resolution folder from ``--option resolution=...`` (default 480p), the only option taken."""
    options = _options(pairs)
    unknown = sorted(set(options) - {"resolution"})
    if unknown:
        raise ConfigError(f"--option {unknown[0]}: {command} takes only resolution=<the source's folder>")
    return options.get("resolution", "480p")


def _options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--option {pair!r}: expected KEY=VALUE")
        options[key] = value
    return options


HELP = """Prepare datasets: download (or take) their archives, verify, extract safely, check the layout.

  prepare <name> --root DIR [--from-archive FILE ...]   download (or take) the archives, verify, extract, check
  prepare check <layout> --root DIR [--option K=V ...]   print the layout's sequence/frame/mask counts
  prepare pack <layout> --root SRC --out DST [--split S ...] [--option K=V ...]   frame folders -> videos layout
  prepare downscale --root SRC --out DST [--height 240] [--option resolution=480p]   a smaller DAVIS-layout copy
                                                       (the 427x240 copy the shipped models trained on)
  prepare small-objects --root SRC --out DST [--scale 0.33] [--travel 0] [--sequences A,B,...]
                        [--option resolution=480p]     small-object clips: each DAVIS-layout sequence's
                                                       object, shrunk, in a pan over the next one's first
                                                       frame, at the view's centre or crossing it

Downloads go to --download-dir (default: downloads/ beside --root) and resume there. Nothing is written
outside the dataset, and a run that stops half-way leaves no folder that looks prepared. More:
docs/datasets.md"""


@entry_point
def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m salvid.prepare", description=HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    if argv[:1] == ["downscale"]:
        parser.add_argument("command")
        parser.add_argument("--root", type=Path, required=True)
        parser.add_argument("--out", type=Path, required=True)
        parser.add_argument("--height", type=int, default=240, help="rows of the copy (default 240)")
        parser.add_argument("--option", action="append", default=[], help="resolution=FOLDER of the source")
    elif argv[:1] == ["small-objects"]:
        parser.add_argument("command")
        parser.add_argument("--root", type=Path, required=True)
        parser.add_argument("--out", type=Path, required=True)
        parser.add_argument("--scale", type=float, default=1 / 3, help="side of the pasted frame, a fraction of "
                            "the background's (default 1/3)")
        parser.add_argument("--travel", type=float, default=0.0, help="how far the pasted frame crosses the view "
                            "over the clip, left to right: 0 stays at the centre (default), 1 goes from edge to edge")
        parser.add_argument("--sequences", help="comma-separated names, each pasted onto the next (default: all, "
                            "sorted by name)")
        parser.add_argument("--option", action="append", default=[], help="resolution=FOLDER of the source")
    elif argv[:1] in (["check"], ["pack"]):
        parser.add_argument("command")
        parser.add_argument("layout")
        parser.add_argument("--root", type=Path, required=True)
        parser.add_argument("--option", action="append", default=[], help="layout option KEY=VALUE")
        parser.add_argument("--split", action="append", default=None,
                            help="pack: a split of the source to pack and list in splits/<split>.txt (repeat it for "
                                 "each; default: every sequence, no split files)")
        parser.add_argument("--out", type=Path, help="pack: output folder")
        parser.add_argument("--gop", type=int, default=16)
        parser.add_argument("--crf", type=int, default=18)
    else:
        parser.add_argument("name", help=f"one of {sorted(DATASETS)}, or the commands check / pack / downscale / "
                            "small-objects")
        parser.add_argument("--root", type=Path, required=True)
        parser.add_argument("--from-archive", type=Path, action="append", default=[])
        parser.add_argument("--download-dir", type=Path)
    args = parser.parse_args(argv)
    try:
        _run(args)
    except DatasetError as error:  # a layout names its options as the configs set them: data.resolution=...
        layout = getattr(args, "layout", None)
        options = [p for p in inspect.signature(LAYOUTS[layout]).parameters if p not in ("root", "split")] \
            if layout in LAYOUTS else ["resolution"]  # downscale and small-objects read DAVIS-layout copies
        raise DatasetError(re.sub(rf"\bdata\.({'|'.join(options)})=", r"--option \1=", str(error))) from None


def _run(args: argparse.Namespace) -> None:
    if getattr(args, "command", None) == "check":
        console.print(check(args.layout, args.root, (args.split or ["all"])[0], **_options(args.option)))
    elif getattr(args, "command", None) == "pack":
        if args.out is None:
            raise ConfigError("pack: --out is required")
        before, after = pack(args.layout, args.root, args.out, args.split, args.gop, args.crf,
                             on_sequence=lambda n: console.print(f"packed {n}"), **_options(args.option))
        console.print(f"{args.root}: {before / 1e6:.1f} MB -> {args.out}: {after / 1e6:.1f} MB "
                      f"({after / max(before, 1):.0%})")
    elif getattr(args, "command", None) == "downscale":
        resolution = _resolution_option(args.option, "downscale")
        count = downscale(args.root, args.out, args.height, resolution,
                          on_sequence=lambda name, n: console.print(f"downscaled {name} ({n} frames)"))
        console.print(f"{args.out}: {count} sequences at {args.height}p; read it with data.root={args.out} "
                      f"data.resolution={args.height}p", soft_wrap=True)
    elif getattr(args, "command", None) == "small-objects":
        resolution = _resolution_option(args.option, "small-objects")
        names = None if args.sequences is None else [n.strip() for n in args.sequences.split(",") if n.strip()]
        count = small_objects(args.root, args.out, args.scale, resolution, names, args.travel, on_clip=lambda name, n, empty:
                              console.print(f"wrote {name} ({n} frames, {empty} with an empty mask)"))
        console.print(f"{args.out}: {count} small-object clips; score them with data=davis2016 "
                      f"data.root={args.out} data.resolution={resolution} data.split=all", soft_wrap=True)
    else:
        console.print(prepare(args.name, args.root, args.download_dir, args.from_archive))


if __name__ == "__main__":
    main()
