"""The package's shape: no module imports another in a circle, counting imports inside functions
and under TYPE_CHECKING, which hide a circle from Python but not from a reader."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "detprof"


def module_names(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package under ``root``."""
    names = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere in its file (``from a import b`` counts
    ``a``, and ``a.b`` when that is a module)."""
    modules = module_names(root)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                    base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
                targets.add(base)
                targets.update(f"{base}.{alias.name}" for alias in node.names)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_module_imports_another_in_a_circle() -> None:
    graph = import_graph(PACKAGE)
    assert len(graph) > 60 and "detprof.store.db" in graph["detprof.store.transfer"]  # the graph is real
    assert cycles(graph) == []


def test_control_a_circle_through_a_function_level_import_is_found(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.b import helper\n")
    (package / "b.py").write_text("def helper():\n    from pkg.c import other\n    return other\n")
    (package / "c.py").write_text("from . import a\n")
    (package / "d.py").write_text("import pkg.a\n")  # imports into the circle, but is not part of it
    assert cycles(import_graph(package)) == [["pkg.a", "pkg.b", "pkg.c"]]


def sql_outside_the_store(root: Path) -> list[str]:
    """Files outside ``store/`` that touch the database themselves: its connection, or SQL text."""
    found = []
    for path in sorted(root.rglob("*.py")):
        if "store" in path.relative_to(root).parts[:1]:
            continue
        text = path.read_text()
        if ".connection" in text or any(word in text for word in ("SELECT ", "INSERT INTO", "UPDATE ", "DELETE FROM")):
            found.append(path.relative_to(root).as_posix())
    return found


def test_sql_is_written_only_in_the_store(tmp_path: Path) -> None:
    assert sql_outside_the_store(PACKAGE) == []
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "db.py").write_text('SQL = "SELECT 1"\n')  # allowed there
    (tmp_path / "report.py").write_text('kind = store.connection.execute("SELECT kind FROM runs")\n')
    assert sql_outside_the_store(tmp_path) == ["report.py"]  # control


PROCESS_STARTERS = {"run_in_fresh_process", "run_in_new_interpreter"}


def children_started_outside_the_contract(root: Path) -> list[str]:
    """``file:line`` of every import of a low-level process starter outside ``process/``: a child
    is started through detprof.process.child.run_child, which reads how it ended."""
    found = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if relative.parts[:1] == ("process",):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and {alias.name for alias in node.names} & PROCESS_STARTERS:
                found.append(f"{relative.as_posix()}:{node.lineno}")
    return found


def test_every_child_is_started_through_the_one_contract(tmp_path: Path) -> None:
    assert children_started_outside_the_contract(PACKAGE) == []
    (tmp_path / "process").mkdir()
    (tmp_path / "process" / "child.py").write_text("from detprof.process.processes import run_in_fresh_process\n")
    (tmp_path / "probe.py").write_text("def probe():\n"
                                       "    from detprof.process.processes import run_in_new_interpreter\n")
    assert children_started_outside_the_contract(tmp_path) == ["probe.py:2"]  # control


# What a framework comparison would compare against: every spelling --framework takes, and the
# names a backend goes by.
FRAMEWORK_WORDS = {"pytorch", "torch", "tensorflow", "tf", "keras", "PyTorch", "TensorFlow"}
BACKEND_PACKAGES = ("detprof.backends.torch", "detprof.backends.tf")


def framework_branches(root: Path, package: str = "detprof") -> list[str]:
    """``file:line`` of every comparison with a framework's name (``==``, ``!=``, ``in``) and every
    import of a backend's own package, in the modules outside ``<package>/backends/``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if relative.parts[:1] == ("backends",):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                names = {o.value for o in operands if isinstance(o, ast.Constant) and isinstance(o.value, str)}
                names |= {e.value for o in operands if isinstance(o, ast.Tuple | ast.Set | ast.List)
                          for e in o.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
                if names & FRAMEWORK_WORDS:
                    found.append(f"{relative.as_posix()}:{node.lineno}")
            modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            backend = tuple(name.replace(package, "detprof", 1) for name in BACKEND_PACKAGES)
            if any(m == b or m.startswith(b + ".") for m in modules for b in backend):
                found.append(f"{relative.as_posix()}:{node.lineno}")
    return found


def test_nothing_outside_the_backends_branches_on_the_framework(tmp_path: Path) -> None:
    assert framework_branches(PACKAGE) == []
    (tmp_path / "backends").mkdir()
    (tmp_path / "backends" / "tf.py").write_text('IS_TF = name == "tensorflow"\n')  # allowed there
    (tmp_path / "plan.py").write_text('label = " (TensorFlow)" if job.framework == "tensorflow" else ""\n')
    (tmp_path / "spec.py").write_text('ok = value in ("pytorch", "tf")\n')
    (tmp_path / "run.py").write_text("def side():\n    from detprof.backends.tf import run_tf_process\n")
    (tmp_path / "fine.py").write_text("from detprof.backend import backend_for\nx = backend_for(name).label\n")
    assert framework_branches(tmp_path) == ["plan.py:1", "run.py:2", "spec.py:1"]  # control


def terminal_output(root: Path) -> list[str]:
    """``file:line`` of every call that writes to the terminal (print, a console's print, a stream's
    write, typer.echo, a new rich Console) outside ``render/``. Worker scripts run in a child
    process write their result files, never the terminal, and are not exempt."""
    found = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if relative.parts[:1] == ("render",):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            function = node.func
            name = function.id if isinstance(function, ast.Name) else function.attr \
                if isinstance(function, ast.Attribute) else ""
            owner = ast.unparse(function.value) if isinstance(function, ast.Attribute) else ""
            if name in ("print", "echo", "Console", "secho", "confirm", "prompt") or \
                    (name == "write" and owner in ("sys.stdout", "sys.stderr")):
                found.append(f"{relative.as_posix()}:{node.lineno}")
    return found


def test_no_terminal_printing_outside_the_renderers(tmp_path: Path) -> None:
    assert terminal_output(PACKAGE) == []
    (tmp_path / "render").mkdir()
    (tmp_path / "render" / "table.py").write_text("out.print(table)\n")  # allowed there
    (tmp_path / "cli.py").write_text("import sys\nerr.print('x')\nsys.stdout.write('y')\nprint(3)\n"
                                     "typer.confirm('go?')\n")
    (tmp_path / "trace.py").write_text("handle.write(text)\n")  # a file, not the terminal
    assert terminal_output(tmp_path) == ["cli.py:2", "cli.py:3", "cli.py:4", "cli.py:5"]  # control


CLI_MODULE_MAX_LINES = 200


def test_every_cli_module_is_small_and_only_parses_calls_and_emits() -> None:
    modules = sorted((PACKAGE / "cli").glob("*.py"))
    assert len(modules) >= 8
    sizes = {path.name: len(path.read_text().splitlines()) for path in modules}
    assert {name: size for name, size in sizes.items() if size > CLI_MODULE_MAX_LINES} == {}, sizes
    assert not (PACKAGE / "cli.py").exists()
