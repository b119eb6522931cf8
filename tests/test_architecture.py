"""The package keeps the shape issue 12 gave it, and these tests fail when the tree drifts.

No module over ``MAX_MODULE_LINES`` lines; no import cycle between the package's modules;
``wire/`` imports nothing outside itself and the standard library; every module and
package has a docstring; one module alone reads the headers that tell a browser from a
player (``web/clients.py``); no test module imports ``tests.conftest`` or a ``tests.test_*``
module (shared helpers live in modules named for them). The checks read the source with ``ast`` (nothing is
imported), so each also runs on a throwaway tree under ``tmp_path`` that breaks it, which
shows that it can fail.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import mjpeg_proxy

PACKAGE_DIR = Path(mjpeg_proxy.__file__).parent
PACKAGE = "mjpeg_proxy"
MAX_MODULE_LINES = 400
SELF_CONTAINED = f"{PACKAGE}.wire"
CLIENT_CLASSIFIER = f"{PACKAGE}.web.clients"
CLIENT_HEADERS = frozenset({"accept", "user-agent", "sec-fetch-dest", "sec-fetch-mode", "sec-fetch-site"})
"""Request headers that say what kind of client asks; only ``CLIENT_CLASSIFIER`` reads them."""

# What fails on main before issue 12's branches merge, each with who fixes it: the lead
# removes these marks after the merge (strict: a mark on a check that passes fails).


@dataclass(frozen=True)
class Module:
    """One module of a package tree: its dotted name and its file."""

    name: str
    path: Path

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"

    def tree(self) -> ast.Module:
        return ast.parse(self.path.read_text(encoding="utf-8"), str(self.path))


def package_modules(package_dir: Path, package: str = PACKAGE) -> dict[str, Module]:
    """Every ``.py`` file under ``package_dir`` by dotted name (a package by its ``__init__``)."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        name = ".".join([package, *parts])
        modules[name] = Module(name, path)
    return modules


def imported_names(module: Module) -> set[str]:
    """The dotted names ``module`` imports anywhere in its source.

    Imports inside functions and ``if TYPE_CHECKING:`` blocks count (they are cycles
    waiting for a refactoring); relative imports are resolved against the module's
    package. ``from a import b`` yields ``a.b``; ``resolve`` decides whether that is a
    module or a name in ``a``.
    """
    names = set()
    for node in ast.walk(module.tree()):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute_base(module, node)
            names.update(f"{base}.{alias.name}" if alias.name != "*" else base for alias in node.names)
    return names


def _absolute_base(module: Module, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    package = module.name.split(".")
    if not module.is_package:
        package.pop()
    if node.level > 1:
        package = package[: -(node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def resolve(name: str, modules: dict[str, Module]) -> str | None:
    """The module of ``modules`` that ``name`` (an import's dotted name) is, or is in; None if outside."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph(modules: dict[str, Module]) -> dict[str, set[str]]:
    """Which of ``modules`` each of them imports (not counting itself).

    An import of ``a.b.c`` is an edge to ``a.b.c`` alone, not to the packages ``a`` and
    ``a.b`` whose ``__init__`` Python runs first: a package that imports its own modules
    (``sources/`` registering each source) is no cycle.
    """
    graph = {}
    for name, module in modules.items():
        targets = {resolve(imported, modules) for imported in imported_names(module)}
        graph[name] = {target for target in targets if target is not None and target != name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One import cycle, as ``[a, b, ..., a]``, in each group of modules that import each other.

    The groups are the graph's strongly connected components of more than one module
    (Tarjan's algorithm); a cycle through each is then found by a breadth-first search.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_cycle_through(component, graph) for component in sorted(components)]


def _cycle_through(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """The shortest path from ``component[0]`` back to itself inside ``component``."""
    start, members = component[0], set(component)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node] & members):
                if target == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if target not in came_from:
                    came_from[target] = node
                    following.append(target)
        frontier = following
    raise AssertionError(f"no cycle through {component}")


def line_count(module: Module) -> int:
    return len(module.path.read_text(encoding="utf-8").splitlines())


def outside_imports(module: Module, modules: dict[str, Module], allowed_prefix: str) -> set[str]:
    """What ``module`` imports that is neither under ``allowed_prefix`` nor the standard library."""
    outside = set()
    for name in imported_names(module):
        inside = resolve(name, modules)
        if inside is not None and (inside == allowed_prefix or inside.startswith(allowed_prefix + ".")):
            continue
        if inside is None and name.partition(".")[0] in sys.stdlib_module_names:
            continue
        outside.add(inside or name)
    return outside


def missing_docstrings(package_dir: Path, package: str = PACKAGE) -> list[str]:
    """Modules without a docstring, and folders of modules that are no package (no ``__init__.py``)."""
    missing = [
        str(module.path.relative_to(package_dir.parent))
        for module in package_modules(package_dir, package).values()
        if not (ast.get_docstring(module.tree()) or "").strip()
    ]
    folders = {path.parent for path in package_dir.rglob("*.py")}
    missing += [
        f"{folder.relative_to(package_dir.parent)}/ (no __init__.py)"
        for folder in sorted(folders)
        if not (folder / "__init__.py").exists()
    ]
    return missing


def client_header_reads(module: Module) -> list[str]:
    """Where ``module`` reads a request header of ``CLIENT_HEADERS``: ``line: code``.

    A read is ``<x>.headers.get("Accept")`` (or ``getall``, ``getone``),
    ``<x>.headers["User-Agent"]`` or ``"Sec-Fetch-Dest" in <x>.headers``, or the same on a
    name ``headers``; writing such a header (a request the proxy sends upstream) is not a
    read.
    """
    reads: list[tuple[int, str]] = []
    for node in ast.walk(module.tree()):
        key: ast.expr | None = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            if node.func.attr in ("get", "getall", "getone") and _is_headers(node.func.value):
                key = node.args[0]
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _is_headers(node.value):
            key = node.slice
        elif isinstance(node, ast.Compare) and any(_is_headers(c) for c in node.comparators):
            key = node.left
        if isinstance(key, ast.Constant) and isinstance(key.value, str) and key.value.lower() in CLIENT_HEADERS:
            reads.append((node.lineno, ast.unparse(node)))
    return [f"{line}: {code}" for line, code in sorted(reads)]


def _is_headers(node: ast.expr) -> bool:
    """Whether ``node`` is ``headers`` or ``<x>.headers``."""
    return (isinstance(node, ast.Name) and node.id == "headers") or (
        isinstance(node, ast.Attribute) and node.attr == "headers"
    )


def imports_of_test_modules(tests_dir: Path, package: str = "tests") -> list[str]:
    """``module: name`` for each import, by a module under ``tests_dir``, of ``conftest`` or a ``test_*`` module."""
    found = []
    for name, module in package_modules(tests_dir, package).items():
        for imported in sorted(imported_names(module)):
            parts = imported.split(".")
            if parts[0] == package and len(parts) > 1 and (parts[1] == "conftest" or parts[1].startswith("test_")):
                found.append(f"{name}: {imported}")
    return found


# The package as it is.

MODULES = package_modules(PACKAGE_DIR)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_is_at_most_max_module_lines_long(name):
    module = MODULES[name]
    lines = line_count(module)
    assert lines <= MAX_MODULE_LINES, f"{module.path.relative_to(PACKAGE_DIR.parent)}: {lines} lines"


def test_no_import_cycle_between_the_packages_modules():
    cycles = import_cycles(import_graph(MODULES))
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in cycles)


WIRE_MODULES = sorted(name for name in MODULES if name == SELF_CONTAINED or name.startswith(SELF_CONTAINED + "."))


@pytest.mark.parametrize("name", WIRE_MODULES)
def test_wire_imports_only_itself_and_the_standard_library(name):
    assert outside_imports(MODULES[name], MODULES, SELF_CONTAINED) == set()


def test_every_module_and_package_has_a_docstring():
    assert missing_docstrings(PACKAGE_DIR) == []


def test_only_the_client_classifier_reads_the_headers_that_tell_browsers_from_players():
    readers = {name: reads for name, module in MODULES.items() if (reads := client_header_reads(module))}
    assert set(readers) <= {CLIENT_CLASSIFIER}, readers
    assert CLIENT_CLASSIFIER in readers  # the check sees the reads it is meant to see


def test_no_test_module_imports_conftest_or_another_test_module():
    assert imports_of_test_modules(Path(__file__).parent) == []


# Each check on a throwaway tree that breaks it: proof that it can fail.


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (relative path -> text) under ``root``; return the package folder ``root/pkg``."""
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "pkg"


GOOD_TREE = {
    "pkg/__init__.py": '"""The package."""\n',
    "pkg/wire/__init__.py": '"""Bytes in and out."""\n',
    "pkg/wire/codec.py": '"""A codec."""\nimport struct\nfrom . import errors\nfrom .errors import WireError\n',
    "pkg/wire/errors.py": '"""Errors."""\nfrom __future__ import annotations\nimport collections.abc\n',
    "pkg/web/__init__.py": '"""The web."""\n',
    "pkg/web/app.py": '"""The app."""\nfrom pkg.wire import codec\nfrom ..web import kinds\nimport aiohttp\n',
    "pkg/web/kinds.py": '"""Client kinds."""\ndef kind(request):\n    return request.headers.get("Accept")\n',
}


def test_the_checks_pass_a_tree_that_keeps_the_rules(tmp_path):
    package_dir = write_tree(tmp_path, GOOD_TREE)
    modules = package_modules(package_dir, "pkg")
    assert max(line_count(module) for module in modules.values()) <= MAX_MODULE_LINES
    graph = import_graph(modules)
    assert graph["pkg.web.app"] == {"pkg.wire.codec", "pkg.web.kinds"}
    assert graph["pkg.wire.codec"] == {"pkg.wire.errors"}
    assert import_cycles(graph) == []
    assert outside_imports(modules["pkg.wire.codec"], modules, "pkg.wire") == set()
    assert outside_imports(modules["pkg.web.app"], modules, "pkg.wire") == {"pkg.web.kinds", "aiohttp"}
    assert missing_docstrings(package_dir, "pkg") == []
    assert client_header_reads(modules["pkg.web.kinds"]) == ["3: request.headers.get('Accept')"]
    assert client_header_reads(modules["pkg.web.app"]) == []


def test_a_module_over_the_limit_is_found(tmp_path):
    package_dir = write_tree(tmp_path, {"pkg/__init__.py": '"""P."""\n', "pkg/big.py": "x = 1\n" * 401})
    modules = package_modules(package_dir, "pkg")
    assert [name for name, module in modules.items() if line_count(module) > MAX_MODULE_LINES] == ["pkg.big"]


@pytest.mark.parametrize(
    "a_imports_b",
    [
        "import pkg.b",
        "from pkg import b",
        "from . import b",
        "from .b import thing",
        "def later():\n    from pkg.b import thing",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import Thing",
    ],
)
def test_an_import_cycle_is_found_however_the_import_is_written(tmp_path, a_imports_b):
    package_dir = write_tree(
        tmp_path,
        {
            "pkg/__init__.py": '"""P."""\n',
            "pkg/a.py": f'"""A."""\n{a_imports_b}\n',
            "pkg/b.py": '"""B."""\nfrom pkg.sub import c\n',
            "pkg/sub/__init__.py": '"""Sub."""\n',
            "pkg/sub/c.py": '"""C."""\nfrom .. import a\n',
        },
    )
    cycles = import_cycles(import_graph(package_modules(package_dir, "pkg")))
    assert cycles == [["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"]]


def test_an_import_out_of_wire_is_found(tmp_path):
    package_dir = write_tree(
        tmp_path,
        {
            "pkg/__init__.py": '"""P."""\n',
            "pkg/errors.py": '"""The app\'s errors."""\n',
            "pkg/wire/__init__.py": '"""W."""\n',
            "pkg/wire/jpeg.py": '"""J."""\nimport io\nfrom ..errors import BadFrame\n',
            "pkg/wire/reader.py": '"""R."""\ndef read():\n    import aiohttp\n',
        },
    )
    modules = package_modules(package_dir, "pkg")
    assert outside_imports(modules["pkg.wire.jpeg"], modules, "pkg.wire") == {"pkg.errors"}
    assert outside_imports(modules["pkg.wire.reader"], modules, "pkg.wire") == {"aiohttp"}


def test_a_module_or_package_without_a_docstring_is_found(tmp_path):
    package_dir = write_tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/quiet.py": "# a comment is no docstring\nx = 1\n",
            "pkg/blank.py": '""" """\n',
            "pkg/loose/mod.py": '"""In a folder without __init__.py."""\n',
        },
    )
    assert missing_docstrings(package_dir, "pkg") == [
        "pkg/__init__.py",
        "pkg/blank.py",
        "pkg/quiet.py",
        "pkg/loose/ (no __init__.py)",
    ]


def test_a_second_place_that_reads_client_headers_is_found(tmp_path):
    package_dir = write_tree(
        tmp_path,
        {
            "pkg/__init__.py": '"""P."""\n',
            "pkg/stream.py": (
                '"""S."""\n'
                "def is_browser(request):\n"
                '    if "sec-fetch-dest" in request.headers:\n'
                "        return True\n"
                '    return request.headers["User-Agent"].startswith("Mozilla/")\n'
                "def is_image(headers):\n"
                '    return headers.getall("Accept", ())[0].startswith("image/")\n'
                "def upstream_headers():\n"
                '    return {"User-Agent": "mjpeg-proxy", "Accept": "*/*"}\n'
            ),
        },
    )
    modules = package_modules(package_dir, "pkg")
    assert client_header_reads(modules["pkg.stream"]) == [
        "3: 'sec-fetch-dest' in request.headers",
        "5: request.headers['User-Agent']",
        "7: headers.getall('Accept', ())",
    ]


def test_an_import_of_conftest_or_a_test_module_is_found(tmp_path):
    write_tree(
        tmp_path,
        {
            "tests/__init__.py": "",
            "tests/helpers.py": "from tests.fake_camera import FakeSnapshotCamera\n",
            "tests/test_fine.py": "from tests.helpers import Proxy\nimport tests.fake_een\n",
            "tests/test_a.py": "from tests.conftest import Proxy\n",
            "tests/test_b.py": "def later():\n    from .test_a import helper\n",
            "tests/test_c.py": "import tests.test_a\nfrom tests import test_b\n",
        },
    )
    assert imports_of_test_modules(tmp_path / "tests") == [
        "tests.test_a: tests.conftest.Proxy",
        "tests.test_b: tests.test_a.helper",
        "tests.test_c: tests.test_a",
        "tests.test_c: tests.test_b",
    ]
