"""The package's structure, read from its source with ``ast``: no import cycles, and every
stage's code list (``STAGE_CODE``) covers the package modules its command imports.

Imports count wherever they are written, at module level or inside a function: the
package imports heavy modules inside functions, and such an import is as much a
dependency as one at the top. ``from deepsnow.x import y`` is an import of the module
``deepsnow.x.y`` when that module exists, else of ``deepsnow.x``; relative imports are
resolved against the importing module's package.
"""

from __future__ import annotations

import argparse
import ast
import functools
from pathlib import Path

import deepsnow
from deepsnow.stages import INFRASTRUCTURE, STAGE_CODE

PACKAGE_DIR = Path(deepsnow.__file__).resolve().parent


# --------------------------------------------------------------------------- the import graph


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> source file, for every ``.py`` under the package folder ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module a (possibly relative) ``from ... import`` names."""
    if not node.level:
        return node.module or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def imports_in(nodes, module: str, files: dict[str, Path]) -> set[str]:
    """The package modules that the import statements anywhere in ``nodes`` name."""
    is_package = files[module].name == "__init__.py"
    found = set()
    for node in (n for top in nodes for n in ast.walk(top)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in files}
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package)
            for alias in node.names:
                name = f"{base}.{alias.name}"
                found.add(name if name in files else base)
    return (found & set(files)) - {module}


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the package modules it imports (module level and inside functions)."""
    files = module_files(root, package)
    return {m: imports_in([ast.parse(f.read_text(), str(f))], m, files) for m, f in files.items()}


# --------------------------------------------------------------------------- cycles


def _components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan), each sorted."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

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
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _cycle_through(start: str, graph: dict[str, set[str]], members: set[str]) -> list[str]:
    """A shortest import path from ``start`` back to itself within ``members``."""
    paths, seen = [[start]], {start}
    while paths:
        path = paths.pop(0)
        for w in sorted(graph[path[-1]] & members):
            if w == start:
                return path + [start]
            if w not in seen:
                seen.add(w)
                paths.append(path + [w])
    raise AssertionError(f"{start} is on no cycle of {sorted(members)}")


def import_cycles(graph: dict[str, set[str]]) -> list[str]:
    """One named cycle (``a -> b -> a``) for every group of modules that import each other, with
    the group's other members when the cycle does not pass through them all."""
    cycles = []
    for comp in (c for c in _components(graph) if len(c) > 1):
        cycle = _cycle_through(comp[0], graph, set(comp))
        rest = sorted(set(comp) - set(cycle))
        cycles.append(" -> ".join(cycle) + (f" (in a group with {', '.join(rest)})" if rest else ""))
    return cycles


def test_the_package_has_no_import_cycles():
    cycles = import_cycles(import_graph(PACKAGE_DIR, "deepsnow"))
    assert not cycles, "import cycles in workflow/deepsnow:\n  " + "\n  ".join(cycles)


def _write_package(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_the_cycle_check_finds_a_cycle_through_a_function_level_and_a_relative_import(tmp_path):
    pkg = _write_package(tmp_path / "pkg", {
        "__init__.py": "",
        "a.py": "from pkg.sub import b\n",
        "sub/__init__.py": "",
        "sub/b.py": "from . import c\n",  # relative: pkg.sub.c
        "sub/c.py": "def f():\n    from ..a import thing\n    return thing\n",  # inside a function
        "d.py": "import pkg.a\n",  # imports into the cycle, is not on it
    })
    graph = import_graph(pkg, "pkg")
    assert graph["pkg.sub.b"] == {"pkg.sub.c"} and graph["pkg.sub.c"] == {"pkg.a"}
    assert import_cycles(graph) == ["pkg.a -> pkg.sub.b -> pkg.sub.c -> pkg.a"]
    (pkg / "sub" / "c.py").write_text("def f():\n    return 1\n")
    assert import_cycles(import_graph(pkg, "pkg")) == []


# --------------------------------------------------------------------------- stage code


def stage_entries() -> dict[str, set[tuple[str, str]]]:
    """STAGE_CODE key -> the handlers ``(module, function)`` of the commands that record its hash.

    Read from the CLI's own parser: :func:`deepsnow.commands.stage_command` wires each handler
    into :func:`deepsnow.commands.run_stage` with the key it records (``code``), so this is the
    mapping the sidecars use, not a copy of it.
    """
    from deepsnow.cli import build_parser
    from deepsnow.commands import run_stage

    out: dict[str, set[tuple[str, str]]] = {}

    def walk(parser: argparse.ArgumentParser) -> None:
        func = parser.get_default("func")
        if isinstance(func, functools.partial) and func.func is run_stage:
            handler, _stage, _section, code = func.args
            out.setdefault(code, set()).add((handler.__module__, handler.__name__))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    walk(sub)

    walk(build_parser())
    return out


def _handler_nodes(tree: ast.Module, name: str) -> list[ast.AST]:
    """The handler's function and the module's functions it calls, directly or through each other."""
    functions = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    todo, found = [name], {}
    while todo:
        fn = functions[todo.pop()]
        found[fn.name] = fn
        called = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)}
        todo += sorted((called & set(functions)) - set(found) - set(todo))
    return list(found.values())


def entry_modules(handlers, files: dict[str, Path]) -> set[str]:
    """The package modules a stage's handlers import: inside the handler (and the command
    module's functions it calls) and at the command module's top level.

    The command module itself (``data/commands.py``, ...) is where the closure starts, not part
    of it: its handlers declare and pass on arguments. Where a handler computes part of an
    output (``change``, ``metrics``) its entry lists the whole folder, command module included."""
    found = set()
    for module, name in handlers:
        tree = ast.parse(files[module].read_text(), str(files[module]))
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        found |= imports_in(top + _handler_nodes(tree, name), module, files)
    return found


def _rel(module: str, files: dict[str, Path], root: Path) -> str:
    return files[module].relative_to(root).as_posix()


def _covered(rel: str, listed) -> bool:
    return any(rel == entry or rel.startswith(entry.rstrip("/") + "/") for entry in listed)


def stage_code_gaps(root: Path, package: str, entries: dict, stage_code: dict, infrastructure) -> dict[str, list[str]]:
    """Stage -> the files of its import closure that neither its code list nor ``infrastructure`` covers.

    The closure starts at the stage's entry modules and follows every import, adding the
    ``__init__.py`` of each package a module is in (importing a module runs them). It does
    not go through infrastructure modules: what they import serves them (a config check,
    a provenance record), not the stage's outputs.
    """
    files, graph = module_files(root, package), import_graph(root, package)
    gaps = {}
    for stage, handlers in sorted(entries.items()):
        todo, seen = sorted(entry_modules(handlers, files)), set()
        while todo:
            module = todo.pop()
            if module in seen:
                continue
            seen.add(module)
            parents = [".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)]
            if not _covered(_rel(module, files, root), infrastructure):
                todo += sorted(graph[module] | set(parents))
        missing = sorted(r for m in seen if not _covered(r := _rel(m, files, root), (*stage_code.get(stage, ()), *infrastructure)))
        if missing:
            gaps[stage] = missing
    return gaps


def test_every_stage_code_list_covers_the_modules_its_command_imports():
    entries = stage_entries()
    assert set(entries) == set(STAGE_CODE), "every STAGE_CODE key is recorded by a command, and only those"
    gaps = stage_code_gaps(PACKAGE_DIR, "deepsnow", entries, STAGE_CODE, INFRASTRUCTURE)
    assert not gaps, "STAGE_CODE misses modules its stage imports (deepsnow/stages.py):\n  " + "\n  ".join(
        f"{stage}: {', '.join(files)}" for stage, files in gaps.items()
    )


def test_every_listed_path_exists():
    # the check above compares paths: a listed path that does not exist would cover nothing
    for entry in (*INFRASTRUCTURE, *(p for paths in STAGE_CODE.values() for p in paths)):
        assert (PACKAGE_DIR / entry).exists(), f"deepsnow/stages.py lists {entry!r}, which does not exist"


def test_the_stage_code_check_finds_an_unlisted_module(tmp_path):
    pkg = _write_package(tmp_path / "pkg", {
        "__init__.py": "",
        "infra.py": "from pkg import unlisted_by_infra\n",
        "unlisted_by_infra.py": "",
        "commands.py": (
            "from pkg import infra\n"
            "def _run(args, params):\n    return _helper()\n"
            "def _helper():\n    from pkg.work import stage\n    return stage\n"
            "def _other(args, params):\n    from pkg import elsewhere\n"
        ),
        "elsewhere.py": "",
        "work/__init__.py": "",
        "work/stage.py": "def f():\n    from .. import shared\n",
        "shared.py": "",
    })
    entries = {"run": {("pkg.commands", "_run")}}
    infra = ("infra.py", "commands.py", "__init__.py")
    assert stage_code_gaps(pkg, "pkg", entries, {"run": ("work",)}, infra) == {"run": ["shared.py"]}
    assert stage_code_gaps(pkg, "pkg", entries, {"run": ("work/stage.py", "shared.py")}, infra) == {
        "run": ["work/__init__.py"]
    }
    assert stage_code_gaps(pkg, "pkg", entries, {"run": ("work", "shared.py")}, infra) == {}


# -- function length ----------------------------------------------------------------------------
MAX_FUNCTION_LINES = 80


def long_functions(root: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """``path:line name (N lines)`` of every function or method longer than ``limit`` lines."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_in_the_package_is_over_80_lines():
    """Each function one idea: the house limit, measured from `def` to its last line."""
    assert long_functions(PACKAGE_DIR) == []


def test_the_length_check_finds_a_long_method(tmp_path):
    body = "".join(f"        x{i} = {i}\n" for i in range(80))
    root = _write_package(tmp_path, {"pkg/__init__.py": "", "pkg/m.py": f"class C:\n    def f(self):\n{body}"})
    assert long_functions(root) == ["pkg/m.py:2 f (81 lines)"]
