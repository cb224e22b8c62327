"""The core never imports Ray or MLflow (DESIGN.md: the one rule that keeps the house simple); lint."""

import ast
import subprocess
import sys

from helpers import ROOT


def test_core_imports_neither_ray_nor_mlflow():
    offenders = []
    for path in (ROOT / "srgan").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in {"ray", "mlflow"}]
    assert not offenders, offenders
    assert len(list((ROOT / "srgan").rglob("*.py"))) >= 8  # the scan saw the core


def test_lint_is_clean():
    """`ruff check` with the rules in pyproject.toml: unused names, import order, bug-prone patterns."""
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(ROOT)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
