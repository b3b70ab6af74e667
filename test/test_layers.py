"""The package's layering: no bljust module imports a module of a higher layer, and no modules
import each other in a cycle.

Every import statement counts, wherever it is: at the top of a file, inside a function, under
``if TYPE_CHECKING:``, absolute or relative. A package's ``__init__`` counts as the package
(``from bljust.models import ENCODERS`` imports ``bljust.models``); ``from P import name``
imports the module ``P.name`` where there is one, else ``P``.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = "bljust"
SOURCE = Path(__file__).resolve().parents[1] / ROOT

# Module or package -> layer, low to high: a module may import its own layer and the ones below.
# The most specific entry wins (bljust.models.asr_model is 3, the other bljust.models.* are 2).
# A new package must get an entry here: an unplaced module fails test_every_module_is_placed.
LAYERS = {
    # 1: foundations, no models
    "bljust.config": 1,
    "bljust.fileio": 1,
    "bljust.errors": 1,
    "bljust.distributed": 1,
    "bljust.text": 1,
    "bljust.features": 1,
    "bljust.data": 1,
    "bljust.score": 1,
    "bljust.lm": 1,
    # 2: model components: encoders (with masking), supervised heads, unsupervised heads and their losses
    "bljust.models": 2,
    # 3: the assembled model, and pre-trained weights into it
    "bljust.models.asr_model": 3,
    "bljust.pretrained": 3,
    # 4: training
    "bljust.train": 4,
    # 5: decoding
    "bljust.decode": 5,
    # 6: the command-line programs
    "bljust.bin": 6,
}
ROOT_LAYER = 7  # bljust/__init__.py itself: the public API (bljust.Speech2Text), above every layer


@dataclass(frozen=True)
class Import:
    importer: str
    line: int
    imported: str  # a module or package of bljust, or a bljust name that is neither (exists False)
    exists: bool


@dataclass(frozen=True)
class Violation:
    key: str  # what is wrong, without line numbers
    message: str


def module_sources(source: Path = SOURCE, root: str = ROOT) -> dict[str, tuple[str, bool]]:
    """Every module under ``source`` -> (its text, whether it is a package's __init__)."""
    modules = {}
    for path in sorted(source.rglob("*.py")):
        parts = path.relative_to(source).with_suffix("").parts
        package = parts[-1] == "__init__"
        name = ".".join((root, *(parts[:-1] if package else parts)))
        modules[name] = (path.read_text(encoding="utf-8"), package)
    return modules


def imports(modules: dict[str, tuple[str, bool]], root: str = ROOT) -> list[Import]:
    """Every import of a ``root`` module by a module of ``modules``, found anywhere in its syntax tree."""
    found = []
    for name, (text, package) in modules.items():
        here = name if package else name.rpartition(".")[0]  # what a relative import is relative to
        for node in ast.walk(ast.parse(text, filename=name)):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                # from P import m: the module P.m where there is one, else (a name defined in) P
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            for target in dict.fromkeys(targets):
                if (target == root or target.startswith(root + ".")) and target != name:
                    found.append(Import(name, node.lineno, target, target in modules))
    return found


def layer_of(module: str, layers: dict[str, int] = LAYERS, root: str = ROOT) -> int | None:
    """The layer of the most specific entry covering ``module``; None when there is none."""
    if module == root:
        return ROOT_LAYER
    covering = [key for key in layers if module == key or module.startswith(key + ".")]
    return layers[max(covering, key=len)] if covering else None


def cycles(edges: list[Import]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.importer, set()).add(e.imported)
        graph.setdefault(e.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def violations(modules: dict[str, tuple[str, bool]], layers: dict[str, int] = LAYERS,
               root: str = ROOT) -> list[Violation]:
    """Unplaced modules, imports of modules that do not exist, upward imports and cycles."""
    out = []
    for name in modules:
        if layer_of(name, layers, root) is None:
            out.append(Violation(f"unplaced: {name}", f"{name} is in no layer: give it (or its package) an "
                                 "entry in LAYERS"))
    found = imports(modules, root)
    for e in found:
        if not e.exists:
            out.append(Violation(f"no such module: {e.importer} imports {e.imported}",
                                 f"{e.importer}:{e.line} imports {e.imported}, which is no module of {root}"))
            continue
        mine, theirs = layer_of(e.importer, layers, root), layer_of(e.imported, layers, root)
        if mine is not None and theirs is not None and theirs > mine:
            out.append(Violation(f"upward: {e.importer} imports {e.imported}",
                                 f"{e.importer}:{e.line} (layer {mine}) imports {e.imported} (layer {theirs})"))
    for component in cycles([e for e in found if e.exists]):
        lines = [f"{e.importer}:{e.line} -> {e.imported}" for e in found
                 if e.importer in component and e.imported in component]
        out.append(Violation(f"cycle: {', '.join(component)}",
                             f"import cycle among {', '.join(component)}: " + "; ".join(lines)))
    return out


def _report(found: list[Violation]) -> str:
    return "\n".join(v.message for v in found)


# --- the package -------------------------------------------------------------------------------

def test_every_module_is_placed():
    unplaced = [v for v in violations(module_sources()) if v.key.startswith("unplaced")]
    assert not unplaced, "modules without a layer:\n" + _report(unplaced)


def test_every_layer_entry_is_a_module():
    modules = module_sources()
    stale = [key for key in LAYERS if key not in modules]
    assert not stale, f"LAYERS entries naming no module or package of bljust: {', '.join(stale)}"


def test_no_upward_imports_nor_missing_modules():
    bad = [v for v in violations(module_sources()) if v.key.startswith(("upward", "no such module"))]
    assert not bad, "imports against the layering (table: LAYERS in test/test_layers.py):\n" + _report(bad)


def test_no_import_cycles():
    bad = [v for v in violations(module_sources()) if v.key.startswith("cycle")]
    assert not bad, _report(bad)


# --- the checker, on made-up packages ----------------------------------------------------------

TOY_LAYERS = {"pkg.low": 1, "pkg.high": 2, "pkg.high.top": 3}


def toy(**files: str) -> dict[str, tuple[str, bool]]:
    """files: module name with "__" for "." (and a trailing "__init" for a package) -> text."""
    out = {}
    for key, text in files.items():
        parts = key.split("__")
        package = parts[-1] == "init"
        out[".".join(parts[:-1] if package else parts)] = (text, package)
    return out


def toy_keys(modules) -> set[str]:
    return {v.key for v in violations(modules, TOY_LAYERS, "pkg")}


def test_a_module_missing_from_the_table_is_an_error():
    assert toy_keys(toy(pkg__init="", pkg__low="", pkg__new__init="", pkg__new__thing="")) == {
        "unplaced: pkg.new", "unplaced: pkg.new.thing"}


def test_upward_imports_are_found_wherever_they_are():
    modules = toy(
        pkg__init="",
        pkg__low__init="",
        pkg__low__a="from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.high import X\n",
        pkg__low__b="def f():\n    from ..high import top\n",  # relative, inside a function
        pkg__low__c="import pkg.high.top as t\nfrom . import a\n",  # a: same layer
        pkg__high__init="from pkg.high.top import Y\n",  # a package __init__ counts as its package
        pkg__low__d="",
        pkg__high__top="from pkg.low import d\nfrom pkg import low\n",  # downward: fine
    )
    assert toy_keys(modules) == {
        "upward: pkg.low.a imports pkg.high", "upward: pkg.low.b imports pkg.high.top",
        "upward: pkg.low.c imports pkg.high.top", "upward: pkg.high imports pkg.high.top"}
    upward = [v.message for v in violations(modules, TOY_LAYERS, "pkg") if v.key.startswith("upward")]
    assert "pkg.low.a:3 (layer 1) imports pkg.high (layer 2)" in upward


def test_cycles_and_missing_modules_are_found():
    modules = toy(
        pkg__init="",
        pkg__low__init="",
        pkg__low__a="from pkg.low.b import X\nfrom pkg.low.gone import Z\n",
        pkg__low__b="def f():\n    from pkg.low.c import Y\n",
        pkg__low__c="from .a import X\n",
    )
    assert toy_keys(modules) == {"cycle: pkg.low.a, pkg.low.b, pkg.low.c",
                                 "no such module: pkg.low.a imports pkg.low.gone"}
