"""The layers of README's "Layout": imports only point down, and no module imports itself back."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import layerflow

SOURCE = Path(layerflow.__file__).parent

# What each package may import from layerflow besides itself (leaves: errors, backend, history,
# plots, summary, datasets). Checked on every import statement, also those inside functions.
LEAVES = {
    "layerflow.errors",
    "layerflow.backend",
    "layerflow.history",
    "layerflow.plots",
    "layerflow.summary",
    "layerflow.datasets",
    "layerflow.http_token",
    "layerflow.tested_versions",
}
ALLOWED = {
    "layerflow.flags": set(),
    "layerflow.runs": {"layerflow.flags"},
    "layerflow.cloud": {
        "layerflow.runs",
        "layerflow.flags",
        "layerflow.deploy",
        "layerflow.fastfit",
    },  # deploy: the server Ray Serve replicates; fastfit: data-parallel fit in Ray Train workers
    "layerflow.tuning": {"layerflow.runs", "layerflow.cloud", "layerflow.flags"},
    "layerflow.data": set(),
    "layerflow.features": {"layerflow.data"},
    "layerflow.estimators": {"layerflow.features", "layerflow.data", "layerflow.runs"},
    "layerflow.fastfit": set(),
    "layerflow.ui": {"layerflow.runs"},
    "layerflow.deploy": {"layerflow.runs", "layerflow.features"},
}
# The public API the command line may use: the top-level package and each package's __init__.
PUBLIC = {
    "layerflow",
    "layerflow.errors",
    "layerflow.flags",
    "layerflow.runs",
    "layerflow.tuning",
    "layerflow.cloud",
    "layerflow.deploy",
    "layerflow.data",
    "layerflow.features",
    "layerflow.datasets",
    "layerflow.estimators",
    "layerflow.ui",
}
SERVER_FORBIDDEN = (
    "layerflow.runs",
    "layerflow.tuning",
    "layerflow.cloud",
    "layerflow.estimators",
    "keras",
    "torch",
    "jax",
    "layerflow.backend",
    "layerflow.data",
    "layerflow.features",
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(tree: ast.Module) -> set[ast.AST]:
    """The import statements under ``if TYPE_CHECKING:``: read by type checkers, never run."""
    skipped: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            for statement in node.body:
                skipped.update(n for n in ast.walk(statement) if isinstance(n, (ast.Import, ast.ImportFrom)))
    return skipped


def _imports(path: Path, runtime_only: bool = False) -> list[tuple[int, str]]:
    """Every import statement of a module, at the top and inside functions (``runtime_only``: less the
    ``if TYPE_CHECKING:`` ones), as (line, imported module)."""
    tree = ast.parse(path.read_text())
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    skipped = _type_checking_only(tree) if runtime_only else set()
    nodes = [node for node in ast.walk(tree) if node not in skipped]
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # "from layerflow.runs import files" names a module: count it as imported too (but not
            # "from layerflow.runs import training_run", the function its __init__ exports).
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                if _is_module(candidate) and not _exported_object(target, alias.name):
                    found.append((node.lineno, candidate))
    return found


def _exported_object(package: str, name: str) -> bool:
    """Whether ``package/__init__.py`` binds ``name`` to something other than its submodule."""
    init = SOURCE.parent / Path(*package.split(".")) / "__init__.py"
    if not init.is_file():
        return False
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module != package:
            if any((alias.asname or alias.name) == name for alias in node.names):
                return True
    return False


def _is_module(name: str) -> bool:
    relative = Path(*name.split("."))
    return (SOURCE.parent / relative).with_suffix(".py").is_file() or (
        SOURCE.parent / relative / "__init__.py"
    ).is_file()


def _package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def _sources():
    return sorted(SOURCE.rglob("*.py"))


def test_packages_import_only_the_layers_below_them():
    wrong = []
    for path in _sources():
        module = _module_name(path)
        package = _package_of(module)
        if package not in ALLOWED:
            continue
        allowed = ALLOWED[package] | LEAVES | {package}
        for line, target in _imports(path):
            if target.startswith("layerflow") and target != "layerflow" and _package_of(target) not in allowed:
                wrong.append(f"{module}:{line} imports {target} ({package} may import {sorted(ALLOWED[package])})")
            if target == "layerflow" and package != "layerflow":
                wrong.append(f"{module}:{line} imports the top-level layerflow package (a cycle through __init__)")
    assert not wrong, "\n".join(wrong)


def test_the_command_line_uses_public_apis_only():
    wrong = []
    for path in sorted((SOURCE / "cli").rglob("*.py")):
        module = _module_name(path)
        for line, target in _imports(path):
            if not target.startswith("layerflow") or target.startswith("layerflow.cli"):
                continue
            if target not in PUBLIC:
                wrong.append(f"{module}:{line} imports {target}: the CLI calls public APIs only")
    assert not wrong, "\n".join(wrong)


def test_runs_meet_keras_in_one_module():
    for path in sorted((SOURCE / "runs").rglob("*.py")):
        for line, target in _imports(path):
            if target.split(".")[0] == "keras" or target in ("layerflow.backend",):
                assert path.name == "keras_autolog.py", f"{path.name}:{line} imports {target}"


# What a serving install (`pip install 'layerflow[serve]'`) runs: `layerflow serve` / lf.serve, the model server,
# and lf.predict on a bundle folder. Every import in them is followed, also those inside functions (a lazy
# `import keras` there would fail only when that line runs, on a machine without the training stack).
SERVING_ROOTS = ("layerflow.deploy.serving", "layerflow.deploy.server", "layerflow.deploy.predict")
# Imports inside functions of the serving modules that only a training install reaches, each with why.
# (module, imported name) -> reason. Empty today: nothing on the serving path imports the training stack.
LAZY_TRAINING_IMPORTS: dict[tuple[str, str], str] = {}


def _serving_path_violations(extra: dict[str, list[tuple[int, str]]] | None = None) -> list[str]:
    """Every forbidden import reachable from the serving roots (``extra`` adds imports to a module, as if written)."""
    from layerflow.backend import TRAINING_PACKAGES

    third_party = set(TRAINING_PACKAGES) | {"jax"}
    seen, queue, wrong = set(), list(SERVING_ROOTS), []
    while queue:
        module = queue.pop()
        if module in seen:
            continue
        seen.add(module)
        relative = Path(*module.split("."))
        path = (SOURCE.parent / relative).with_suffix(".py")
        if not path.is_file():
            path = SOURCE.parent / relative / "__init__.py"
        for line, target in [*_imports(path), *(extra or {}).get(module, [])]:
            if (module, target) in LAZY_TRAINING_IMPORTS:
                continue
            if target.split(".")[0] in third_party or (
                target.startswith("layerflow.") and _package_of(target) in SERVER_FORBIDDEN
            ):
                wrong.append(f"{module}:{line} imports {target}")
            elif target.startswith("layerflow.deploy") or target in ("layerflow.errors", "layerflow.http_token"):
                queue.append(target)
    return wrong


def test_the_model_server_needs_no_training_stack():
    assert not _serving_path_violations(), "\n".join(_serving_path_violations())
    assert all(reason.strip() for reason in LAZY_TRAINING_IMPORTS.values()), "each exception says why"


@pytest.mark.parametrize(
    "module, target",
    [
        ("layerflow.deploy.server", "keras"),  # a lazy import inside a server function
        ("layerflow.deploy.repository", "pandas"),  # reached from the server, not a root itself
        ("layerflow.deploy.serving", "layerflow.features.spec"),
    ],
)
def test_a_lazy_training_import_on_the_serving_path_is_caught(module, target):
    assert _serving_path_violations({module: [(999, target)]}) == [f"{module}:999 imports {target}"]


def test_the_serving_path_check_follows_imports_inside_functions(tmp_path, monkeypatch):
    # The check reads the files: a lazy `import keras` written into a function of a copy of the
    # server's source is reported (the server's real imports of uvicorn and onnxruntime are lazy too).
    import shutil

    copy = tmp_path / "layerflow"
    shutil.copytree(
        SOURCE,
        copy,
        ignore=lambda folder, names: [n for n in names if not n.endswith(".py") and not (Path(folder) / n).is_dir()],
    )
    server = copy / "deploy" / "server.py"
    text = server.read_text()
    anchor = "    import uvicorn\n"
    assert anchor in text
    server.write_text(text.replace(anchor, anchor + "    import keras  # noqa: F401\n", 1))
    monkeypatch.setattr(sys.modules[__name__], "SOURCE", copy)
    found = _serving_path_violations()
    assert len(found) == 1 and found[0].startswith("layerflow.deploy.server:") and found[0].endswith("imports keras")


def _import_cycles() -> list[list[str]]:
    """Each cycle of module imports under SOURCE, counting imports inside functions too: a cycle that one
    import written inside a function hides from Python at import time is still a cycle of the design."""
    graph: dict[str, set[str]] = {}
    for path in _sources():
        module = _module_name(path)
        graph[module] = {
            t
            for _, t in _imports(path, runtime_only=True)
            if t.startswith("layerflow") and t != module and _is_module(t)
        }
    # A package's __init__ re-exporting its own modules is not a cycle; a module importing a
    # module that (through any chain) imports it back is.
    for module in graph:
        graph[module] = {t for t in graph[module] if not (module.startswith(t + ".") and t in graph)}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return cycles


def test_no_import_cycles_between_modules():
    cycles = _import_cycles()
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def _tiny_package(root: Path, files: dict[str, str]) -> Path:
    package = root / "layerflow"
    for name, text in {"__init__.py": "", **files}.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    return package


def test_the_cycle_check_finds_a_cycle_hidden_inside_a_function(tmp_path, monkeypatch):
    # pkg.a imports pkg.b at the top; pkg.b imports pkg.a back only inside a function, so Python
    # imports both without complaint: the check still reports the cycle.
    package = _tiny_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from layerflow.pkg.b import helper\n\nVALUE = 1\n",
            "pkg/b.py": "def helper():\n    from layerflow.pkg.a import VALUE\n\n    return VALUE\n",
        },
    )
    monkeypatch.setattr(sys.modules[__name__], "SOURCE", package)
    assert _import_cycles() == [["layerflow.pkg.a", "layerflow.pkg.b", "layerflow.pkg.a"]]


def test_the_cycle_check_passes_a_type_checking_import_and_a_one_way_lazy_import(tmp_path, monkeypatch):
    # An import under `if TYPE_CHECKING:` never runs; a lazy import that does not lead back is no cycle.
    package = _tiny_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from layerflow.pkg.b import helper\n\nVALUE = 1\n",
            "pkg/b.py": (
                "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from layerflow.pkg.a import VALUE\n\n"
                "def helper():\n    from layerflow.pkg.c import OTHER\n\n    return OTHER\n"
            ),
            "pkg/c.py": "OTHER = 2\n",
        },
    )
    monkeypatch.setattr(sys.modules[__name__], "SOURCE", package)
    assert _import_cycles() == []


def test_features_reads_datasets_through_their_public_interface_only():
    # The private attributes lf.data's classes set on self (``self._arrow = ...``) are read by lf.data
    # alone; features uses the named interface (``Dataset.arrow_batches()``, ``known_length``).
    def nodes(package: str):
        return [
            (path, node)
            for path in sorted((SOURCE / package).rglob("*.py"))
            for node in ast.walk(ast.parse(path.read_text()))
        ]

    private = {
        node.attr
        for _, node in nodes("data")
        if isinstance(node, ast.Attribute)
        and isinstance(node.ctx, ast.Store)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    }
    assert {"_arrow", "_length"} <= private
    crossing = [
        f"{path.name}:{node.lineno} reads .{node.attr}"
        for path, node in nodes("features")
        if isinstance(node, ast.Attribute)
        and node.attr in private
        and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
    ]
    assert not crossing, "\n".join(crossing)


def test_the_run_store_is_the_one_writer_of_run_json():
    writers = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and "RUN_FILE" in ast.unparse(node)
                and any(word in ast.unparse(node.func) for word in ("write_json", "write_text", "write_bytes", "open"))
            ):
                writers.append(_module_name(path))
    assert set(writers) == {"layerflow.runs.store"}, writers


def test_a_command_group_is_one_module_listed_once():
    import typer

    from layerflow.cli import COMMAND_GROUPS, app

    modules = {p.stem for p in (SOURCE / "cli").glob("*.py")} - {"__init__", "__main__", "common"}
    assert modules == set(COMMAND_GROUPS)
    commands = typer.main.get_command(app).commands
    assert {"run", "runs", "show", "compare", "rerun", "tune", "cloud", "export", "serve", "predict", "info"} <= set(
        commands
    )
    assert {"clean", "purge", "copy"} <= set(commands["runs"].commands)


def test_estimators_meet_runs_in_one_module_and_deploy_where_exporting_a_run():
    crossings = {}
    for package in ("estimators", "deploy"):
        for path in sorted((SOURCE / package).rglob("*.py")):
            if any(target.startswith("layerflow.runs") for _, target in _imports(path)):
                crossings.setdefault(package, []).append(path.name)
    assert crossings == {"estimators": ["tracking.py"], "deploy": ["from_run.py"]}
