"""The package layout of model_core (docs/ARCHITECTURE.md, "Packages and what they may import"), read from every
import statement with ast, at the top of a module or inside a function: each package imports only the packages its
row of ALLOWED names, no modules import each other round a circle, and model_core never imports bpy."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "model_core"
ALLOWED = {  # package -> the packages it may import (model_core/__init__.py, the version, is open to all)
    "motion": set(),
    "data": {"motion"},
    "vocabulary": {"data"},
    "contract": {"data"},
    "official": set(),
    "models": {"contract", "motion", "official"},
    "decoding": {"contract", "models", "motion"},
    "runtime": {"decoding", "models", "official", "vocabulary"},
    "serving": {"contract", "decoding", "runtime"},
    "eval": {"contract", "data", "decoding", "models", "motion"},
    "train": {"data", "decoding", "models", "motion", "vocabulary"},
    "cli": {"contract", "data", "decoding", "eval", "models", "motion", "official", "runtime", "serving", "train",
            "vocabulary"},
}
CHECKED_AS = {"model_core.official.importer": "cli"}  # the import-official command, kept with the checkpoints' code


def _name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _module(dotted: str) -> str:
    """The model_core module (or package) a dotted name lies in; another top-level name as it is."""
    while dotted not in MODULES and "." in dotted:
        dotted = dotted.rpartition(".")[0]
    return dotted


def imports(name: str) -> list[tuple[str, int]]:
    """(imported module, line) for every import statement of module ``name``, function-level ones included;
    a model_core module by its dotted name, anything else by its top-level name ("numpy", "bpy")."""
    path = MODULES[name]
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: up level - 1 packages from this module's own
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            found += [(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base, node.lineno)
                      for alias in node.names]
    return [(_module(target) if target.startswith("model_core") else target.split(".")[0], line)
            for target, line in found]


def package_of(name: str) -> str | None:
    """The package a model_core module belongs to (None: model_core/__init__.py itself)."""
    return CHECKED_AS.get(name) or (name.split(".")[1] if "." in name else None)


def test_model_core_holds_packages_only_and_the_table_names_each_once_without_a_circle():
    assert sorted(path.name for path in PACKAGE.glob("*.py")) == ["__init__.py"]
    packages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert packages == set(ALLOWED), "add a new package to ALLOWED and to docs/ARCHITECTURE.md"
    assert all(set(ALLOWED[p]) <= packages - {p} for p in ALLOWED)
    graphlib.TopologicalSorter(ALLOWED).prepare()  # CycleError if two packages may import each other
    assert set(CHECKED_AS) <= set(MODULES)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_the_packages_it_may(package):
    wrong = [f"{name}:{line} imports {target}"
             for name in MODULES if package_of(name) == package
             for target, line in imports(name)
             if target in MODULES and package_of(target) not in ({package, None} | ALLOWED[package])]
    assert not wrong, f"{package} may import {sorted(ALLOWED[package]) or 'no other package'}: " + "; ".join(wrong)


def test_no_import_circle_between_modules():
    graph = {name: {t for t, _ in imports(name) if t in MODULES and t != name} for name in MODULES}
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as e:
        pytest.fail(f"modules import each other round a circle: {' -> '.join(e.args[1])}")


def test_model_core_never_imports_bpy():
    found = [f"{name}:{line}" for name in MODULES for target, line in imports(name) if target == "bpy"]
    assert not found, f"model_core imports bpy (it runs outside Blender too): {', '.join(found)}"


def test_imports_are_read_relative_and_inside_functions():
    assert "model_core.contract.limits" in {target for target, _ in imports("model_core.contract.request")}
    worker = {target for target, _ in imports("model_core.serving.worker")}
    assert {"model_core.decoding.compose", "model_core"} <= worker  # run_plan, __version__: imported in functions
    assert "model_core.decoding.loop" in {target for target, _ in imports("model_core.decoding.generate")}
