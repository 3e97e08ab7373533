"""The package's import graph: no import cycles, and no module importing from a floor above its own.

Every module of ``ngdjax`` and ``experiments`` is parsed with :mod:`ast` (nothing is imported);
every import statement counts, those inside functions, ``try`` blocks and ``if TYPE_CHECKING``
included, since a deferred import still couples the two modules. ``import a.b`` and
``from a.b import c`` name module ``a.b``, or ``a.b.c`` when that is a module; relative imports
are resolved against the importing module's package. Implicit imports of parent packages
(``ngdjax/render/__init__.py`` runs before ``ngdjax.render.backend``) are not edges: a package's
``__init__`` re-exporting its own submodules would otherwise be a cycle with each of them.
"""

from __future__ import annotations

import ast
import collections
import dataclasses
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARSED = ("ngdjax", "experiments")  # the packages whose files are read
TRACKED = ("ngdjax", "experiments", "benchmarks")  # imports of these (and only these) are edges

# The floors, lowest first. A module may import its own floor and lower ones, never a higher one.
# An entry is a module's dotted name, or "pkg.*" for a package and everything under it; a module
# takes the floor of its exact entry, else of its longest "pkg.*" entry, else DEFAULT_FLOOR.
DEFAULT_FLOOR = "unplaced"
FLOORS = [
    # Files, errors and configuration files: no ngdjax dependencies beyond each other.
    ("foundation", ["ngdjax.errors", "ngdjax.io", "ngdjax.config", "ngdjax.nonfinite"]),
    # Meshes, operators, Poisson, fields and losses: pure maths on arrays.
    ("primitives", ["ngdjax.mesh", "ngdjax.operators", "ngdjax.poisson", "ngdjax.procedural", "ngdjax.remesh",
                    "ngdjax.hashgrid", "ngdjax.fields", "ngdjax.camera", "ngdjax.ssim", "ngdjax.metrics",
                    "ngdjax.losses", "ngdjax.pose_code", "ngdjax.gradcheck", "ngdjax.smooth_modes", "ngdjax.mesh_edit"]),
    # Rendering, bodies, garment templates, sequences and their evaluation.
    ("models and data", ["ngdjax.render.*", "ngdjax.body.*", "ngdjax.garment", "ngdjax.data.*", "ngdjax.evaluation",
                         "ngdjax.visibility", "ngdjax.derived_template", "ngdjax.mesh_views"]),
    # The two stages' maths and configuration (no loops, no files written).
    ("stage maths", ["ngdjax.fit_config", "ngdjax.geometry", "ngdjax.appearance", "ngdjax.loop"]),
    # What a fit writes, and where: the run directory's layout, outputs and checkpoints.
    ("stage outputs", ["ngdjax.outputs", "ngdjax.checkpoint"]),
    # The stages' optimisation loops.
    ("stage loops", ["ngdjax.geometry_fit", "ngdjax.appearance_fit"]),
    # Modules listed nowhere above or below: place them.
    (DEFAULT_FLOOR, []),
    # The run assembly: a whole fit from a config, and the run directory's ownership.
    ("run", ["ngdjax.pipeline", "ngdjax.run_dir"]),
    # Suites and datasets: many runs generated, fitted and scored, their report, their scheduler.
    ("suites", ["ngdjax.suite", "ngdjax.suite_report", "ngdjax.fit_many"]),
    # The package itself (ngdjax/__init__.py): the public names, re-exported from every floor.
    # No ngdjax module imports from it ("from ngdjax import InputError" inside the library).
    ("public API", ["ngdjax"]),
    # Entry points: nothing in ngdjax imports them.
    ("entry points", ["experiments.*", "benchmarks.*"]),
]

@dataclasses.dataclass
class ImportGraph:
    modules: dict[str, str]  # dotted name -> file path
    edges: dict[tuple[str, str], list[str]]  # (importer, imported) -> ["path:line", ...]

    def successors(self) -> dict[str, set[str]]:
        out = collections.defaultdict(set)
        for a, b in self.edges:
            out[a].add(b)
        return out


def module_name(root: str, path: str) -> str:
    parts = os.path.relpath(path, root)[: -len(".py")].split(os.sep)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(name: str, modules: dict[str, str]) -> str:
    """The module ``name`` denotes: itself, else its longest prefix that is a module (an
    attribute's owner, or a module that no longer exists: still an edge to that package)."""
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def build_graph(root: str, packages=PARSED, tracked=TRACKED) -> ImportGraph:
    modules = {}
    for package in packages:
        for folder, dirs, files in os.walk(os.path.join(root, package)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for file in sorted(files):
                if file.endswith(".py"):
                    path = os.path.join(folder, file)
                    modules[module_name(root, path)] = path
    edges = collections.defaultdict(list)
    for importer, path in modules.items():
        is_package = os.path.basename(path) == "__init__.py"
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = importer.split(".")
                    base = base[: len(base) - node.level + (1 if is_package else 0)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module
                # "from pkg import sub" imports the submodule pkg.sub when there is one.
                names = [f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target for a in node.names]
            else:
                continue
            for name in names:
                if name.split(".")[0] not in tracked:
                    continue
                imported = resolve(name, modules)
                if imported != importer:
                    where = f"{os.path.relpath(path, root)}:{node.lineno}"
                    if where not in edges[(importer, imported)]:
                        edges[(importer, imported)].append(where)
    return ImportGraph(modules, dict(edges))


def floor_of(module: str, floors=FLOORS, default=DEFAULT_FLOOR) -> tuple[int, str]:
    """(rank, name) of the floor ``module`` lives on."""
    exact, prefix = None, (-1, None)
    for rank, (name, entries) in enumerate(floors):
        for entry in entries:
            if entry == module:
                exact = (rank, name)
            elif entry.endswith(".*") and (module == entry[:-2] or module.startswith(entry[:-1])):
                if len(entry) > prefix[0]:
                    prefix = (len(entry), (rank, name))
    if exact:
        return exact
    if prefix[1]:
        return prefix[1]
    return next((rank, name) for rank, (name, _) in enumerate(floors) if name == default)


def upward_imports(graph: ImportGraph, floors=FLOORS, default=DEFAULT_FLOOR) -> list[str]:
    """Every import of a module on a higher floor, as readable lines."""
    found = []
    for (a, b), where in sorted(graph.edges.items()):
        (rank_a, floor_a), (rank_b, floor_b) = floor_of(a, floors, default), floor_of(b, floors, default)
        if rank_b > rank_a:
            found.append(((a, b), f"{a} ({floor_a}) imports {b} ({floor_b}) at {', '.join(where)}"))
    return found


def cycles(graph: ImportGraph, within: str = "ngdjax", ignore=frozenset()) -> list[list[str]]:
    """One shortest cycle per strongly connected component of more than one module among the
    modules under ``within``, ignoring the edges in ``ignore``: [m0, m1, ..., m0]."""
    succ = {a: sorted(b for b in bs if (a, b) not in ignore and b.split(".")[0] == within)
            for a, bs in graph.successors().items() if a.split(".")[0] == within}
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def strongconnect(v):  # Tarjan's algorithm (the graph has tens of modules: recursion is fine)
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in succ.get(v, []):
            if w not in index:
                strongconnect(w)
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
            components.append(set(component))

    for v in sorted(succ):
        if v not in index:
            strongconnect(v)
    found = []
    for component in components:
        if len(component) < 2:
            continue
        start = min(component)
        parent, queue = {start: None}, collections.deque([start])  # BFS back to start inside the component
        while queue:
            v = queue.popleft()
            for w in succ.get(v, []):
                if w == start:
                    path = [v]
                    while parent[path[-1]] is not None:
                        path.append(parent[path[-1]])
                    found.append(path[::-1] + [start])
                    queue.clear()
                    break
                if w in component and w not in parent:
                    parent[w] = v
                    queue.append(w)
    return sorted(found)


def describe_cycle(graph: ImportGraph, cycle: list[str]) -> str:
    return " -> ".join(cycle) + "  (" + "; ".join(
        f"{a} -> {b} at {', '.join(graph.edges[(a, b)])}" for a, b in zip(cycle, cycle[1:])) + ")"


@pytest.fixture(scope="module")
def graph():
    return build_graph(ROOT)


def test_the_graph_is_read(graph):
    """The parse sees the package (a broken walk would make the other tests pass vacuously)."""
    assert sum(m.startswith("ngdjax.") for m in graph.modules) > 30
    assert sum(m.startswith("experiments.") for m in graph.modules) > 5
    assert ("ngdjax.body.model", "ngdjax.body.anny") in graph.edges  # "from ngdjax.body import anny, smpl"
    assert ("ngdjax.body.smpl", "ngdjax.errors") in graph.edges
    assert len(graph.edges) > 100


@pytest.mark.parametrize("package", PARSED)
def test_no_import_cycles(graph, package):
    found = cycles(graph, package)
    assert not found, f"import cycles among {package} modules:\n" + "\n".join(describe_cycle(graph, c) for c in found)


def test_no_module_imports_a_higher_floor(graph):
    found = [line for _, line in upward_imports(graph)]
    assert not found, "imports from a lower floor to a higher one (see FLOORS):\n" + "\n".join(found)


def _write(root, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_checks_find_planted_cycles_and_upward_imports(tmp_path):
    """The machinery on a small package: relative, deferred and "from pkg import module" imports
    are edges, a planted cycle is reported, and so is an upward import."""
    _write(tmp_path, {
        "ngdjax/__init__.py": "",
        "ngdjax/low.py": "def f():\n    from ngdjax.high import g\n",  # deferred, upward, closes a cycle
        "ngdjax/sub/__init__.py": "from . import leaf\n",
        "ngdjax/sub/leaf.py": "from ..low import f\nimport numpy\nimport ngdjax.low as low\n",
        "ngdjax/high.py": "from ngdjax.sub import leaf\nfrom ngdjax.sub.leaf import f\nimport experiments.tool\n",
        "experiments/__init__.py": "",
        "experiments/tool.py": "from ngdjax import high\n",
    })
    graph = build_graph(str(tmp_path))
    assert set(graph.edges) == {
        ("ngdjax.low", "ngdjax.high"), ("ngdjax.sub", "ngdjax.sub.leaf"), ("ngdjax.sub.leaf", "ngdjax.low"),
        ("ngdjax.high", "ngdjax.sub.leaf"), ("ngdjax.high", "experiments.tool"), ("experiments.tool", "ngdjax.high"),
    }
    assert graph.edges[("ngdjax.low", "ngdjax.high")] == [os.path.join("ngdjax", "low.py") + ":2"]
    assert cycles(graph) == [["ngdjax.high", "ngdjax.sub.leaf", "ngdjax.low", "ngdjax.high"]]
    assert cycles(graph, ignore={("ngdjax.low", "ngdjax.high")}) == []
    floors = [("low", ["ngdjax.low", "ngdjax.sub.*"]), ("default", []), ("top", ["experiments.*"])]
    assert floor_of("ngdjax.sub", floors, "default") == (0, "low")
    assert floor_of("ngdjax.high", floors, "default") == (1, "default")
    upward = [edge for edge, _ in upward_imports(graph, floors, "default")]
    assert upward == [("ngdjax.high", "experiments.tool"), ("ngdjax.low", "ngdjax.high")]


def test_every_floor_entry_is_on_one_floor():
    """A module listed twice would silently take the later floor."""
    entries = [entry for _, floor in FLOORS for entry in floor]
    assert len(entries) == len(set(entries)), [e for e, n in collections.Counter(entries).items() if n > 1]
    assert sum(name == DEFAULT_FLOOR for name, _ in FLOORS) == 1
