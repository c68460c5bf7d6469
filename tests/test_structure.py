"""The product code's shape, read from its source (ast): imports run one way, modules
share only public names, no file outgrows a reader, and setup.py declares exactly what
the code imports. docs/architecture.md explains the layers this test holds.

Layers, bottom to top (a module imports only its own layer or lower ones):
  settings  config/ except config/cli/  the settings schema, loader, tag lists, editing
  drivers   drivers/                    the hardware parts, real and simulated
  terminal  terminal/                   the terminal service: flow, screens, store, API
  agent     agent/                      the sync agent and the reference receiver
  command   config/cli/                 the `pingjia` command; nothing imports it
"""
from __future__ import annotations

import ast
import re
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("config", "drivers", "terminal", "agent")
LAYERS = ("settings", "drivers", "terminal", "agent", "command")
MAX_LINES = 500
# Modules known to be over MAX_LINES and still to split (none at present). An entry goes
# when its split lands; a stale entry fails the test.
TO_SPLIT: set[str] = set()
# Import names of distributions that are not installed here and whose import name is not
# their distribution name (rpi-lgpio is for real boards only).
NOT_INSTALLED_HERE = {"rpi-lgpio": {"RPi"}}


def layer(module: str) -> str:
    top = module.split(".")[0]
    if top == "config":
        return "command" if module == "config.cli" or module.startswith("config.cli.") else "settings"
    return top


class Module:
    def __init__(self, name: str, path: Path):
        self.name, self.path = name, path
        self.source = path.read_text(encoding="utf-8")
        self.tree = ast.parse(self.source, filename=str(path))
        self.is_package = path.name == "__init__.py"


@lru_cache(maxsize=None)
def modules() -> dict[str, Module]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = Module(".".join(parts), path)
    return found


def _absolute(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.name.split(".")
    if not module.is_package:
        base.pop()
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(module: Module):
    """(line, imported module, name or None) for every import, in functions too."""
    known = modules()
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(module, node)
            for alias in node.names:
                if f"{target}.{alias.name}" in known:
                    yield node.lineno, f"{target}.{alias.name}", None
                else:
                    yield node.lineno, target, alias.name


def _own(name: str) -> bool:
    return name.split(".")[0] in PACKAGES


def _owner(name: str) -> str | None:
    """The project module an imported dotted name refers to."""
    known = modules()
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def graph() -> dict[str, set[str]]:
    edges = {}
    for name, module in modules().items():
        edges[name] = {_owner(target) for _, target, _ in imports(module) if _own(target)} - {None, name}
    return edges


def test_no_private_name_crosses_a_module():
    found = []
    for name, module in modules().items():
        aliases = {}  # local name bound to a project module → that module
        for line, target, imported in imports(module):
            if not _own(target):
                continue
            if imported is not None and imported.startswith("_"):
                found.append(f"{module.path.relative_to(ROOT)}:{line} imports {imported} from {target}")
        for node in ast.walk(module.tree):
            if isinstance(node, ast.ImportFrom):
                target = _absolute(module, node)
                for alias in node.names:
                    if f"{target}.{alias.name}" in modules():
                        aliases[alias.asname or alias.name] = f"{target}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if _own(alias.name) and alias.asname:
                        aliases[alias.asname] = alias.name
        for node in ast.walk(module.tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and node.attr.startswith("_")
                    and not node.attr.startswith("__") and aliases[node.value.id] != name):
                found.append(f"{module.path.relative_to(ROOT)}:{node.lineno} uses "
                             f"{aliases[node.value.id]}.{node.attr}")
    assert not found, "private names used across modules:\n" + "\n".join(found)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, stack, on_stack, result, counter = {}, {}, [], set(), [], [0]
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
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
                        result.append(sorted(component))
    return result


def test_no_import_cycle_between_modules():
    # a package's __init__ re-exporting its modules is not a cycle of its modules
    edges = {name: {t for t in targets if not (t == name.rpartition(".")[0]
                                                 and modules()[t].is_package)}
             for name, targets in graph().items()}
    cycles = _cycles(edges)
    assert not cycles, "modules that import each other (directly or around a loop):\n" + \
        "\n".join(" ↔ ".join(c) for c in cycles)


def test_imports_run_down_the_layers():
    found = []
    for name, targets in graph().items():
        for target in targets:
            if LAYERS.index(layer(target)) > LAYERS.index(layer(name)):
                found.append(f"{name} ({layer(name)}) imports {target} ({layer(target)})")
    assert not found, "imports that run up the layers:\n" + "\n".join(sorted(found))


def test_no_module_outgrows_a_reader():
    sizes = {str(m.path.relative_to(ROOT)): m.source.count("\n") for m in modules().values()}
    stale = sorted(p for p in TO_SPLIT if sizes.get(p, 0) <= MAX_LINES)
    assert not stale, f"split already (or gone): drop from TO_SPLIT: {stale}"
    long = [f"{p}: {n} lines" for p, n in sizes.items() if n > MAX_LINES and p not in TO_SPLIT]
    assert not long, f"modules over {MAX_LINES} lines (split them by concern):\n" + "\n".join(long)


def test_no_exec_or_eval():
    found = [f"{m.path.relative_to(ROOT)}:{node.lineno}" for m in modules().values()
             for node in ast.walk(m.tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
             and node.func.id in ("exec", "eval")]
    assert not found, "exec/eval in product code: " + ", ".join(found)


def _requirements() -> dict[str, str]:
    """Distribution name → the extra that declares it ('' for install_requires)."""
    setup = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    call = next(n for n in ast.walk(setup) if isinstance(n, ast.Call)
                and getattr(n.func, "id", "") == "setup")
    found = {}
    for keyword in call.keywords:
        if keyword.arg == "install_requires":
            for item in ast.literal_eval(keyword.value):
                found[_dist(item)] = ""
        elif keyword.arg == "extras_require":
            for extra, items in ast.literal_eval(keyword.value).items():
                for item in items:
                    found.setdefault(_dist(item), extra)
    return found


def _dist(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def _provided() -> dict[str, set[str]]:
    """Distribution name → the top-level import names it provides."""
    provided = {}
    for top, dists in metadata.packages_distributions().items():
        for dist in dists:
            provided.setdefault(dist.lower().replace("_", "-"), set()).add(top)
    for dist, tops in NOT_INSTALLED_HERE.items():
        provided.setdefault(dist, set()).update(tops)
    for dist in _requirements():  # not installed on this Python (tomli on 3.11)
        provided.setdefault(dist, {dist.replace("-", "_")})
    return provided


def _third_party_imports() -> dict[str, list[str]]:
    found = {}
    for module in modules().values():
        for line, target, _ in imports(module):
            top = target.split(".")[0]
            if top and not _own(top) and top not in sys.stdlib_module_names:
                found.setdefault(top, []).append(f"{module.path.relative_to(ROOT)}:{line}")
    return found


def test_setup_py_declares_exactly_what_the_code_imports():
    required, provided = _requirements(), _provided()
    product = {d: e for d, e in required.items() if e in ("", "sim", "pi")}
    imported = _third_party_imports()
    declared_names = {top for dist in product for top in provided.get(dist, ())}
    undeclared = {top: where[:3] for top, where in imported.items() if top not in declared_names}
    assert not undeclared, f"imported but not declared in setup.py: {undeclared}"
    unused = [d for d in product if not provided.get(d, set()) & set(imported)]
    assert not unused, f"declared in setup.py but never imported by the product code: {unused}"


def _classes(module: Module) -> dict[str, ast.ClassDef]:
    return {n.name: n for n in module.tree.body if isinstance(n, ast.ClassDef)}


def _private_methods(node: ast.ClassDef) -> set[str]:
    return {n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.name.startswith("_") and not n.name.startswith("__")}


def test_no_subclass_overrides_a_private_method_of_another_module():
    """A subclass in another module builds on public hooks, not on private methods."""
    found = []
    for module in modules().values():
        imported = {}  # local name → (module, class name)
        for node in ast.walk(module.tree):
            if isinstance(node, ast.ImportFrom):
                target = _absolute(module, node)
                if target in modules():
                    for alias in node.names:
                        imported[alias.asname or alias.name] = (target, alias.name)
        for cls in _classes(module).values():
            for base in cls.bases:
                if isinstance(base, ast.Name) and base.id in imported:
                    source, name = imported[base.id]
                    parent = _classes(modules()[source]).get(name)
                    if parent is not None:
                        for method in sorted(_private_methods(cls) & _private_methods(parent)):
                            found.append(f"{module.path.relative_to(ROOT)}: {cls.name}.{method} "
                                         f"overrides {source}.{name}.{method}")
    assert not found, "private methods overridden across modules:\n" + "\n".join(found)
