"""The package's shape: sub-packages by role, imports that only flow down, no cycles, no module
reading another's data module (docs/architecture.md draws the same map)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "electra_lightning"

# what each part may import (besides itself); the order of the map is the order of the floors
MAY_IMPORT = {
    "common": set(),
    "model": {"common"},
    "data": {"common", "model"},
    "train": {"common", "model", "data"},
    "finetune": {"common", "model", "data", "train"},
    "hf": {"common", "model", "data", "train", "finetune"},
    "report": {"common"},
    "cli": {"common", "model", "data", "train", "finetune", "hf", "report"},
}


def module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts).removesuffix(".__init__")


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module → the package's modules it imports, at top level or inside functions."""
    paths = {module_name(p, package): p for p in package.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in paths}
    for name, path in paths.items():
        is_init = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:  # relative: resolve against this module's package
                    base = name.split(".") if is_init else name.split(".")[:-1]
                    base = base[: len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:  # `from pkg import module` names a module
                    candidate = f"{target}.{alias.name}"
                    graph[name].add(candidate if candidate in paths else target)
            elif isinstance(node, ast.Import):
                graph[name].update(alias.name for alias in node.names)
        graph[name] = {t for t in graph[name] if t in paths and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, done, stack = [], set(), []

    def visit(node: str) -> None:
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt in stack:
                found.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in done:
                visit(nxt)
        stack.pop()
        done.add(node)

    for node in sorted(graph):
        if node not in done:
            visit(node)
    return found


def part(module: str) -> str | None:
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 2 else None  # electra_lightning.PART.module


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    wrong = []
    for module, targets in graph.items():
        here = part(module)
        if here is None:
            continue
        for target in targets:
            there = part(target)
            if there is not None and there != here and there not in MAY_IMPORT[here]:
                wrong.append(
                    f"{module} imports {target} ({here} may import: "
                    f"{', '.join(sorted(MAY_IMPORT[here])) or 'nothing'})"
                )
    return sorted(wrong)


def test_no_import_cycle_in_the_package():
    found = cycles(import_graph(PACKAGE))
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_imports_only_flow_down():
    graph = import_graph(PACKAGE)
    assert {part(m) for m in graph} - {None} == set(MAY_IMPORT), "a part missing from MAY_IMPORT"
    assert not upward_imports(graph), "\n".join(upward_imports(graph))


def test_every_module_belongs_to_a_part():
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py"], loose


def test_only_the_data_module_reads_trainer_datamodule():
    readers = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if re.search(r"trainer\.datamodule|\"datamodule\"", p.read_text())
        and p.relative_to(PACKAGE).parts[0] != "data"
    ]
    assert not readers, readers


@pytest.mark.parametrize(
    "source, found",
    [
        ({"a.py": "from pkg import b\n", "b.py": "def f():\n    from pkg.a import x\n"}, True),
        ({"a.py": "from pkg import b\n", "b.py": "import os\n"}, False),
        ({"a.py": "from .b import y\n", "b.py": "from . import a\n"}, True),
    ],
)
def test_the_cycle_check_sees_cycles_in_functions_and_relative_imports(tmp_path, source, found):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, text in source.items():
        (package / name).write_text(text)
    assert bool(cycles(import_graph(package))) is found


def test_the_layer_check_sees_an_upward_import(tmp_path):
    package = tmp_path / "pkg"
    for sub in ("model", "train"):
        (package / sub).mkdir(parents=True)
        (package / sub / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "model" / "m.py").write_text("def f():\n    from pkg.train.t import x\n")
    (package / "train" / "t.py").write_text("x = 1\n")
    assert upward_imports(import_graph(package)) == [
        "pkg.model.m imports pkg.train.t (model may import: common)"
    ]


def test_the_architecture_map_names_every_module():
    """docs/architecture.md's map is the folders: each module under its folder, nothing stale."""
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    block = text[text.index("```\n") + 4 : text.index("```", text.index("```\n") + 4)]
    mapped, folder = set(), None
    for line in block.splitlines():
        if re.match(r"[a-z]+/ ", line):
            folder = line.split("/")[0]
        elif match := re.match(r"  ([a-z_]+\.py) ", line):
            mapped.add(f"{folder}/{match.group(1)}")
    modules = {
        str(p.relative_to(PACKAGE)) for p in PACKAGE.glob("*/*.py") if p.name != "__init__.py"
    }
    assert mapped == modules, (
        f"not in the map: {sorted(modules - mapped)}; in the map, not in the package: "
        f"{sorted(mapped - modules)}"
    )
