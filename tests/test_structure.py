"""The package's imports go one way: no module imports, directly or through others, a module that imports it.

The graph is read from the source (`ast`), module-level imports only; an import inside a function
within the package would hide a cycle from it, so there must be none.
"""

import ast
import pathlib

import keras_introspect

ROOT = pathlib.Path(keras_introspect.__file__).parent


def module_name(path):
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(name):
    """The package's module that `import name` loads last (a submodule if `name` is one)."""
    path = ROOT.parent.joinpath(*name.split("."))
    return name if path.with_suffix(".py").exists() or (path / "__init__.py").exists() else None


def imports_of(tree, top_level_only=True):
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                yield resolve(f"{node.module}.{alias.name}") or node.module


def graph():
    edges = {}
    for path in ROOT.rglob("*.py"):
        tree = ast.parse(path.read_text())
        edges[module_name(path)] = {
            target for name in imports_of(tree) if name.startswith("keras_introspect")
            for target in [resolve(name)] if target and target != "keras_introspect"
        }
    return edges


def cycles(edges):
    """Each import cycle found by depth-first search, as a list of modules."""
    found, state, stack = [], {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                found.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return found


def test_no_import_cycle_in_the_package():
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_data_modules_import_in_one_line():
    edges = graph()
    order = ["files", "pipeline", "sources", "streaming"]
    for i, name in enumerate(order):
        later = {f"keras_introspect.data.{n}" for n in order[i + 1:]}
        assert not edges[f"keras_introspect.data.{name}"] & later, name


def test_no_module_of_the_package_imports_the_package_inside_a_function():
    hidden = []
    for path in ROOT.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for function in ast.walk(tree):
            if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names = [n for n in imports_of(function, top_level_only=False) if n.startswith("keras_introspect")]
                hidden += [f"{module_name(path)}.{function.name}: {n}" for n in names]
    assert hidden == []
