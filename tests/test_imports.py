"""The import rules of the layout, for every package, read from the source (every ``import``, also those inside
functions), and no import cycle anywhere:

- ``edge/`` (the Pi) imports nothing of convert/stream/dashboard/demo, no TensorFlow/Keras/SciPy/PyFlink;
- ``edge/contract/`` (what every process imports) imports only the standard library and itself, except its
  ``mqtt`` module, which also needs paho-mqtt and pydantic;
- ``stream/`` and ``dashboard/`` import, of the project, only the contract and their own modules;
  the dashboard no PyFlink;
- ``convert/`` may reuse ``edge/`` (one decoder), nothing of the server side;
- nothing shipped imports ``demo/`` (it may import everything), and nothing shipped imports the tests or bench.
"""
from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

import pytest

from tests.conftest import missing

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("edge", "stream", "dashboard", "demo", "convert", "bench", "tests")
SHIPPED = ("edge", "stream", "dashboard", "demo", "convert")
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            if pkg == "tests" and "support" not in path.parts and path.name != "__init__.py":
                continue      # the test files themselves may import anything and are imported by nobody
            mods[_module_name(path)] = path
    return mods


def imports_of(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """Every module ``path`` imports (absolute names; project modules resolved to the deepest existing one),
    also inside functions; imports under ``if TYPE_CHECKING:`` are no dependency."""
    found: set[str] = set()
    is_package = path.name == "__init__.py"

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in modules else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return found


def resolve(target: str, modules: dict[str, Path]) -> str:
    """The project module ``target`` names (deepest existing prefix), or its top-level name if not ours."""
    parts = target.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in modules:
            return ".".join(parts[:i])
    return parts[0]


def graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: {resolve(t, modules) for t in imports_of(path, name, modules)} - {name}
            for name, path in modules.items()}


GRAPH = graph()


def _offences(prefix: str, allowed, exclude: tuple[str, ...] = ()) -> list[str]:
    bad = []
    for mod, targets in sorted(GRAPH.items()):
        if not (mod == prefix or mod.startswith(prefix + ".")) or mod.startswith(exclude):
            continue
        bad += [f"{mod} imports {t}" for t in sorted(targets) if not allowed(t)]
    return bad


def _under(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_graph_sees_imports_inside_functions():
    assert "dashboard.homeassistant" in GRAPH["dashboard.cli"]       # imported inside serve()
    assert "pyflink" in GRAPH["stream.job"]                           # imported inside make_environments()


def test_edge_imports_no_server_no_converter_no_tensorflow():
    forbidden = ("convert", "stream", "dashboard", "demo", "bench", "tests", "tensorflow", "keras", "tf_keras",
                 "scipy", "pyflink", "torch", "motmetrics")
    assert _offences("edge", lambda t: not _under(t, *forbidden)) == []


def test_the_contract_is_standard_library_only_except_its_mqtt_client():
    ok = lambda t: t in STDLIB or _under(t, "edge.contract")  # noqa: E731
    assert _offences("edge.contract", ok, exclude=("edge.contract.mqtt",)) == []
    assert _offences("edge.contract.mqtt", lambda t: ok(t) or t in ("paho", "pydantic")) == []
    assert not _under("edge.contract.mqtt", *[t for m in ("edge.contract.schema", "edge.contract.wire",
                                                          "edge.contract.outputs") for t in GRAPH[m]])


@pytest.mark.parametrize("package,third_party", [
    ("stream", {"pyflink", "pydantic", "yaml", "paho", "msgspec"}),   # msgspec: the bridge's fast path
    ("dashboard", {"pydantic", "yaml", "paho"}),
])
def test_server_and_dashboard_import_only_the_contract_and_themselves(package, third_party):
    def ok(t: str) -> bool:
        if t in STDLIB or t in third_party:
            return True
        return _under(t, package, "edge.contract") or t in ("edge",)
    assert _offences(package, ok) == []


def test_convert_reuses_edge_but_nothing_of_the_server_side():
    assert _offences("convert", lambda t: not _under(t, "stream", "dashboard", "demo", "bench", "tests")) == []


def test_nothing_shipped_imports_the_demo_the_tests_or_the_benchmarks():
    offences = [f"{m} imports {t}" for m, ts in GRAPH.items() if _under(m, *SHIPPED) and not _under(m, "demo")
                for t in ts if _under(t, "demo", "tests", "bench")]
    offences += [f"{m} imports {t}" for m, ts in GRAPH.items() if _under(m, "demo")
                 for t in ts if _under(t, "tests", "bench")]
    assert offences == []


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_cycles():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_anywhere():
    assert find_cycles(GRAPH) == []


# --------------------------------------------------------------------------- the extras
def _requires(dist: str, extras: set[str]) -> set[tuple[str, frozenset]]:
    """(name, extras) of what ``dist[extras]`` requires on this interpreter."""
    from packaging.requirements import Requirement
    out = set()
    for text in importlib.metadata.requires(dist) or []:
        req = Requirement(text)
        if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras | {""}):
            out.add((req.name, frozenset(req.extras)))
    return out


def closure(extra: str) -> set[str]:
    """Every distribution ``pip install '.[extra]'`` brings, from the installed packages' metadata."""
    with open(ROOT / "pyproject.toml", "rb") as fh:
        project = tomllib.load(fh)["project"]
    from packaging.requirements import Requirement
    todo = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"][extra]]
    seen: set[str] = set()
    while todo:
        req = todo.pop()
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        if name == "sigmawatch":
            todo += [Requirement(r) for e in req.extras for r in project["optional-dependencies"][e]]
            continue
        if name in seen:
            continue
        seen.add(name)
        try:
            todo += [Requirement(f"{n}[{','.join(ex)}]" if ex else n) for n, ex in _requires(name, set(req.extras))]
        except importlib.metadata.PackageNotFoundError:
            missing(f"{name} is not installed here: the closure of [{extra}] cannot be computed")
    return seen


def test_the_dashboard_extra_brings_no_flink_and_no_tensorflow():
    deps = closure("dashboard")
    assert {"paho-mqtt", "pydantic"} <= deps
    assert not {d for d in deps if d.startswith(("apache-flink", "apache-beam", "tensorflow", "keras"))}, deps


def test_the_edge_extra_brings_no_tensorflow_and_no_flink():
    deps = closure("edge")
    assert not {d for d in deps if d.startswith(("apache-flink", "tensorflow", "keras", "scipy"))}, deps


@pytest.mark.parametrize("package,blocked", [
    ("edge", ("tensorflow", "keras", "scipy", "pyflink", "apache_beam", "convert", "stream", "dashboard", "demo")),
    ("dashboard", ("tensorflow", "keras", "pyflink", "apache_beam", "convert", "stream", "demo")),
    ("stream", ("tensorflow", "keras", "convert", "dashboard", "demo")),
])
def test_every_module_imports_where_what_its_machine_lacks_cannot_be_imported(package, blocked, tmp_path):
    """What a Pi ('.[edge]'), a dashboard host ('.[dashboard]') and a Flink node ('.[stream]') can do: every module
    of the package imports with those packages blocked, third-party imports included."""
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {blocked!r}:\n"
        "            raise ImportError(f'{name} is not installed on this machine')\n"
        "sys.meta_path.insert(0, _Block())\n")
    mods = sorted(m for m in GRAPH if _under(m, package) and not m.endswith("__main__"))
    code = f"import importlib; [importlib.import_module(m) for m in {mods!r}]; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=180,
                         env={"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
