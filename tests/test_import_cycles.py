"""No import cycles inside the package, counting every kind of import.

Every module under ``src/tapecast`` is parsed with :mod:`ast` (nothing is imported), and every
import at any depth becomes an edge of a module graph:

- ``import tapecast.a.b`` and ``from tapecast.a.b import x`` at module level, inside functions
  (lazy imports) and under ``if TYPE_CHECKING:`` (a type-only import is still a dependency: it
  ties the two modules' designs together, and a refactor can turn it into a runtime one);
- relative imports (``from . import x``, ``from ..core import errors``), resolved against the
  importing module's package;
- ``importlib.import_module("tapecast.a.b")`` (and ``import_module(".b", "tapecast.a")``) with
  literal string arguments. A name computed at run time (``data/detect.py``'s reader table) is
  not seen.

Names are resolved to the most specific module that exists: ``from tapecast.a import b`` is an
edge to ``tapecast.a.b`` when ``a/b.py`` or ``a/b/__init__.py`` exists, else to ``tapecast.a``
(the package's ``__init__``, which re-exports ``b``).

Packages. A package is the module of its ``__init__.py``. The parent packages that Python
initializes on the way to a submodule (``import tapecast.a.b`` runs ``tapecast/a/__init__.py``
first) are *not* edges: every submodule would otherwise depend on its own package's
``__init__``, and every package that re-exports its submodules would be a cycle. An *explicit*
import of a package is an edge to its ``__init__``: a submodule that imports a name from its own
package (``from tapecast.models import X`` inside ``tapecast/models/...``), whose ``__init__``
imports that submodule, is a real cycle (it works only in some import orders).

Each cycle is a strongly connected component of the graph (Tarjan's algorithm, iterative). The
test fails when a component with more than one module appears that is not in
:data:`KNOWN_CYCLES`, and also when a known cycle is gone (or has changed), so that the allowlist
only ever shrinks.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

PACKAGE = "tapecast"
SRC = Path(__file__).resolve().parents[1] / "src"

# Each entry is one strongly connected component, listed by its modules. Remove an entry in the
# change that breaks its cycle (the test fails until you do). None is known: issue 11 removed the
# cycles this test found when it was written (data/store.py <-> data/summary.py, models/base.py
# <-> models/baselines/, the demo <-> its evaluation module, and the diffusion circle through the
# registry, whose protocols now live in diffusion/protocols.py).
KNOWN_CYCLES: tuple[frozenset[str], ...] = ()


def module_files(src: Path = SRC, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file of every module of ``package`` under ``src``."""
    out: dict[str, Path] = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_package(name: str, files: Mapping[str, Path]) -> bool:
    return name in files and files[name].name == "__init__.py"


def _resolve_relative(module: str, level: int, target: str | None,
                      files: Mapping[str, Path]) -> str:
    """Absolute name of ``from <level dots><target> import ...`` inside ``module``."""
    package = module if _is_package(module, files) else module.rpartition(".")[0]
    parts = package.split(".")
    base = parts[: len(parts) - (level - 1)] if level > 1 else parts
    return ".".join([*base, target] if target else base)


def _module_or_parent(name: str, files: Mapping[str, Path]) -> str | None:
    """``name`` when it is a module of ours, else its nearest ancestor that is; None outside."""
    while name:
        if name in files:
            return name
        name = name.rpartition(".")[0]
    return None


def _import_module_target(node: ast.Call, module: str,
                          files: Mapping[str, Path]) -> str | None:
    """Module named by ``importlib.import_module("...")`` / ``import_module(".x", "pkg")``."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name != "import_module" or not node.args:
        return None
    literal = [a.value if isinstance(a, ast.Constant) and isinstance(a.value, str) else None
               for a in node.args[:2]]
    target = literal[0]
    if target is None:
        return None
    if target.startswith("."):
        anchor = literal[1] if len(literal) > 1 else None
        if anchor is None:
            return None
        level = len(target) - len(target.lstrip("."))
        rest = target.lstrip(".")
        parts = anchor.split(".")
        base = parts[: len(parts) - (level - 1)] if level > 1 else parts
        target = ".".join([*base, rest] if rest else base)
    return target


def imports_of(module: str, files: Mapping[str, Path]) -> set[str]:
    """The modules of ours that ``module`` imports, at any depth (see the module docstring)."""
    tree = ast.parse(files[module].read_text(encoding="utf-8"), filename=str(files[module]))
    found: set[str | None] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(_module_or_parent(alias.name, files) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = (_resolve_relative(module, node.level, node.module, files) if node.level
                    else node.module or "")
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in files else _module_or_parent(base, files))
        elif isinstance(node, ast.Call):
            target = _import_module_target(node, module, files)
            if target is not None:
                found.add(_module_or_parent(target, files))
    return {name for name in found if name is not None and name != module}


def import_graph(files: Mapping[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules of ours it imports."""
    return {module: imports_of(module, files) for module in files}


def strongly_connected(graph: Mapping[str, set[str]]) -> Iterator[frozenset[str]]:
    """Strongly connected components of ``graph`` (Tarjan 1972), without recursion."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                yield frozenset(component)


def import_cycles(src: Path = SRC, package: str = PACKAGE) -> list[frozenset[str]]:
    """Every import cycle of ``package``: the components with more than one module."""
    graph = import_graph(module_files(src, package))
    return sorted((c for c in strongly_connected(graph) if len(c) > 1), key=sorted)


def _show(cycle: frozenset[str]) -> str:
    return "{" + ", ".join(sorted(cycle)) + "}"


def test_import_cycles_when_package_scanned_then_only_known_cycles() -> None:
    cycles = set(import_cycles())
    new = [_show(c) for c in cycles - set(KNOWN_CYCLES)]
    gone = [_show(c) for c in set(KNOWN_CYCLES) - cycles]
    assert not new, f"new import cycle(s): {new}"
    assert not gone, f"known cycle(s) broken or changed: {gone}; update KNOWN_CYCLES"


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_import_cycles_when_lazy_type_checking_and_importlib_imports_then_all_found(
        tmp_path: Path) -> None:
    _write(tmp_path, "pkg/__init__.py", "")
    _write(tmp_path, "pkg/a.py", "def f():\n    from pkg.b import g\n")
    _write(tmp_path, "pkg/b.py", "from typing import TYPE_CHECKING\n"
                                 "if TYPE_CHECKING:\n    from pkg import a\n")
    _write(tmp_path, "pkg/c.py", "import importlib\n"
                                 "def f():\n    importlib.import_module('pkg.sub.d')\n")
    _write(tmp_path, "pkg/sub/__init__.py", "")
    _write(tmp_path, "pkg/sub/d.py", "from .. import c\n")
    _write(tmp_path, "pkg/e.py", "import pkg.a\n")
    assert import_cycles(tmp_path, "pkg") == [frozenset({"pkg.a", "pkg.b"}),
                                              frozenset({"pkg.c", "pkg.sub.d"})]


def test_import_cycles_when_submodule_imports_its_reexporting_package_then_cycle(
        tmp_path: Path) -> None:
    _write(tmp_path, "pkg/__init__.py", "")
    _write(tmp_path, "pkg/models/__init__.py", "from pkg.models.base import Base\n")
    _write(tmp_path, "pkg/models/base.py", "X = 1\n")
    _write(tmp_path, "pkg/models/impl.py", "from pkg.models import Base\n")
    _write(tmp_path, "pkg/models/loop.py", "from pkg.models import impl\n"
                                           "from pkg.models.base import X\n")
    assert import_cycles(tmp_path, "pkg") == []  # parents initialized on the way are not edges
    _write(tmp_path, "pkg/models/base.py", "from pkg.models import X\n")
    assert import_cycles(tmp_path, "pkg") == [frozenset({"pkg.models", "pkg.models.base"})]
