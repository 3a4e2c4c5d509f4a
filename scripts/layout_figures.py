"""The package's plan in figures, read from its imports: ``python scripts/layout_figures.py``.

Rooms are the modules flat in ``salvid/`` and its sub-packages (``salvid/models/`` is one room); an arrow is
a room that imports from another; a room's floor is one above the highest room it imports (floor 1 imports no
other room). Also printed: the modules flat in ``salvid/``, imports that climb (a lower room importing a higher
one, which would make a circle), and the longest functions.
"""

from __future__ import annotations

import ast
import sys
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "salvid"


def room_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("salvid.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("salvid"):
            found.add(node.module)
    return found


def main() -> None:
    mods = modules()
    arrows: dict[str, set[str]] = {}
    for name, path in mods.items():
        if name == "salvid":
            continue
        room = room_of(name)
        arrows.setdefault(room, set())
        arrows[room] |= {room_of(m) for m in imports(path) if room_of(m) not in (room, "salvid")}

    @cache
    def floor(room: str, seen: tuple[str, ...] = ()) -> int:
        if room in seen:
            sys.exit(f"circle of imports: {' -> '.join([*seen, room])}")
        return 1 + max((floor(r, (*seen, room)) for r in arrows.get(room, ())), default=0)

    floors = {room: floor(room) for room in arrows}
    print(f"rooms {len(arrows)}, floors {max(floors.values())}, import arrows {sum(map(len, arrows.values()))}")
    for level in range(max(floors.values()), 0, -1):
        print(f"  floor {level}: {', '.join(sorted(r for r, f in floors.items() if f == level))}")
    flat = sorted(n for n in mods if n.count(".") == 1 and not mods[n].name == "__init__.py"
                  and mods[n].parent == PACKAGE)
    print(f"modules flat in salvid/: {len(flat)} ({', '.join(m.split('.')[1] for m in flat)})")
    functions = []
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.append((node.end_lineno - node.lineno + 1, f"{name}.{node.name}"))
    print("longest functions: " + ", ".join(f"{qual} {n}" for n, qual in sorted(functions, reverse=True)[:5]))


if __name__ == "__main__":
    main()
