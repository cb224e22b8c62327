"""The layout keeps itself: the core never imports Ray or MLflow (DESIGN.md: the one rule that keeps
the house simple), no module imports another that imports it back, and the tree is lint-clean."""

import ast
import subprocess
import sys

from helpers import ROOT

PACKAGES = ("srgan", "pipelines")


def imports(path) -> set[str]:
    """Every module name a file imports, at any depth (function-level imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}  # `from pipelines import shards`
    return names


def project_modules() -> dict[str, set[str]]:
    """{module: the project modules it imports}, for every module of srgan/ and pipelines/."""
    paths = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
             for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    return {m: {n for n in imports(p) if n in paths and n != m} for m, p in paths.items()}


def test_core_imports_neither_ray_nor_mlflow():
    offenders = [f"{m}: {n}" for m, p in ((m, ROOT / (m.replace('.', '/') + '.py')) for m in project_modules())
                 if m.startswith("srgan") and p.is_file()
                 for n in imports(p) if n.split(".")[0] in {"ray", "mlflow"}]
    assert not offenders, offenders
    assert sum(m.startswith("srgan.") for m in project_modules()) >= 12  # the scan saw the core


def test_no_import_cycles():
    graph, cycles = project_modules(), []

    def visit(module: str, path: list[str]) -> None:
        for dep in graph[module]:
            if dep in path:
                cycles.append(" -> ".join([*path[path.index(dep):], dep]))
            elif dep not in done:
                visit(dep, [*path, dep])
        done.add(module)

    done: set[str] = set()
    for module in graph:
        if module not in done:
            visit(module, [module])
    assert not cycles, cycles
    assert "pipelines.commands.submit" in graph and "pipelines.cli" not in graph["pipelines.commands.submit"]


def test_core_modules_are_not_named_like_pipelines_ones():
    core = {p.stem for p in (ROOT / "srgan").glob("*.py")} - {"__init__"}
    orchestration = {p.stem for p in (ROOT / "pipelines").rglob("*.py")} - {"__init__"}
    assert not core & orchestration


def test_lint_is_clean():
    """`ruff check` with the rules in pyproject.toml: unused names, import order, bug-prone patterns."""
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(ROOT)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
