"""The package's plan, read from its imports: entry points stand alone, errors and their reporting sit on the
bottom floor, and what a model family is lives in ``salvid.models`` alone."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "salvid"
ENTRY_POINTS = {"salvid.train", "salvid.evaluate", "salvid.predict", "salvid.prepare", "salvid.export",
                "salvid.curves"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def salvid_imports(path: Path) -> set[str]:
    """Every salvid module ``path`` imports, at the top or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "salvid"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "salvid":
            found.add(node.module)
            # ``from salvid.training import sweep`` imports the module salvid.training.sweep
            found |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES}
    return found


def test_the_walk_finds_the_package():
    assert ENTRY_POINTS <= set(MODULES)
    assert "salvid.inference.predicting" in salvid_imports(MODULES["salvid.predict"])


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n in ENTRY_POINTS or n.startswith("salvid.bench")))
def test_no_entry_point_or_bench_module_imports_an_entry_point(name):
    imported = salvid_imports(MODULES[name]) & (ENTRY_POINTS - {name})
    assert not imported, f"{name} imports the entry point(s) {sorted(imported)}: move the shared code into a wing"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n not in ENTRY_POINTS))
def test_only_bench_imports_entry_points_nowhere_else(name):
    assert not salvid_imports(MODULES[name]) & ENTRY_POINTS, f"{name} imports an entry point"


def test_errors_are_the_bottom_floor_and_their_reporting_stands_on_it_alone():
    assert salvid_imports(MODULES["salvid.errors"]) == set()
    assert salvid_imports(MODULES["salvid.runtime.entry"]) == {"salvid.errors"}


def _family_name_uses(tree: ast.AST, names: set[str]) -> list[str]:
    """Places that decide by a family's name: ``x == "paper"``, ``x in ("paper", ...)`` or ``.get("family",
    "paper")``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            constants = [c for c in [node.left, *node.comparators] if isinstance(c, ast.Constant)]
            constants += [e for c in node.comparators if isinstance(c, (ast.Tuple, ast.List, ast.Set))
                          for e in c.elts if isinstance(e, ast.Constant)]
            found += [f"line {node.lineno}: compares with {c.value!r}" for c in constants if c.value in names]
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                and len(node.args) == 2 and isinstance(node.args[0], ast.Constant) and node.args[0].value == "family"):
            found.append(f"line {node.lineno}: a default family outside salvid.models.families")
    return found


@pytest.mark.parametrize("name", sorted(n for n in MODULES if not n.startswith("salvid.models")))
def test_nothing_outside_models_decides_by_a_family_name(name):
    from salvid.models.families import FAMILIES

    uses = _family_name_uses(ast.parse(MODULES[name].read_text(encoding="utf-8")), set(FAMILIES))
    assert not uses, f"{name}: {uses}; ask the family (salvid.models.families.Family) instead"


def test_the_default_family_is_named_once():
    from salvid.models.families import DEFAULT_FAMILY

    defaults = [n for n, p in MODULES.items()
                if _family_name_uses(ast.parse(p.read_text(encoding="utf-8")), {DEFAULT_FAMILY})
                and n != "salvid.models.families"]
    assert defaults == [], f"modules that decide by the family name {DEFAULT_FAMILY!r}: {defaults}"
    text = MODULES["salvid.models.families"].read_text(encoding="utf-8")
    assert text.count(f'DEFAULT_FAMILY = "{DEFAULT_FAMILY}"') == 1


def test_every_family_offers_the_network_interface():
    from salvid.models import SaliencyNetwork, build_network
    from salvid.models.families import FAMILIES
    from salvid.models.interface import FrameEncodingNetwork

    small = {"paper": {"width_mult": 0.0625, "input_size": [32, 32]},
             "fusion3d": {"input_size": [32, 32], "pretrained": "none"}}
    assert set(small) == set(FAMILIES), "give the new family a small config here"
    for name, family in FAMILIES.items():
        net = build_network({"family": name, **small[name]})
        assert isinstance(net, SaliencyNetwork)
        assert isinstance(net, FrameEncodingNetwork) == family.encodes_frames, name


def test_the_rooms_form_floors_and_the_docs_give_their_figures():
    """``scripts/layout_figures.py`` finds no circle of imports between the package's rooms, and
    docs/development.md states the figures it prints."""
    import re
    import subprocess
    import sys

    repo = PACKAGE.parent
    result = subprocess.run([sys.executable, "scripts/layout_figures.py"], cwd=repo, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr
    rooms, floors, arrows = re.search(r"rooms (\d+), floors (\d+), import arrows (\d+)", result.stdout).groups()
    docs = " ".join((repo / "docs" / "development.md").read_text(encoding="utf-8").split())
    assert f"{rooms} rooms on {floors} floors with {arrows} import arrows and no import that climbs" in docs
