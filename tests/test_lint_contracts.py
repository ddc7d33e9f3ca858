"""The import contracts of ``.importlinter`` (run by ``make lint``): kept by the tree, broken by a violation.

The violations are shown on a throwaway tree: the real contract file, small
packages with the real names, and one offending import each.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

# A tree that keeps every contract: the wire layer used by the simulator, the
# core using its own modules, and the command package composing everything.
CLEAN_TREE = {
    "switch/__init__.py": "",
    "switch/wire/__init__.py": "",
    "switch/wire/codec.py": "",
    "switch/store.py": "",
    "switch/link.py": "import switch.wire.codec\nimport switch.store\n",
    "http_front/__init__.py": "",
    "http_front/app.py": "import aiohttp\nimport switch.store\n",
    "acquirer_sim/__init__.py": "",
    "acquirer_sim/cli.py": "import switch.wire.codec\n",
    "bench/__init__.py": "",
    "bench/cli.py": "import switch.link\nimport http_front.app\n",
    "bench/reconcile.py": "",
    "schemas/__init__.py": "",
    "isoswitch/__init__.py": "",
    "isoswitch/cli.py": "import switch.link\nimport http_front.app\nimport acquirer_sim.cli\nimport bench.cli\n",
}

VIOLATIONS = {
    "the core imports the front": ("switch/link.py", "import http_front.app\n", "switch.link -> http_front.app"),
    "the core imports an HTTP library": ("switch/link.py", "import aiohttp\n", "switch.link -> aiohttp"),
    "the core imports the simulator": ("switch/store.py", "import acquirer_sim.cli\n", "switch.store -> acquirer_sim"),
    "the simulator imports the core beyond the wire layer": (
        "acquirer_sim/cli.py",
        "import switch.store\n",
        "acquirer_sim.cli -> switch.store",
    ),
    "the wire layer imports the rest of the core": (
        "switch/wire/codec.py",
        "import switch.store\n",
        "switch.wire.codec -> switch.store",
    ),
    "the front imports the bench": ("http_front/app.py", "import bench.cli\n", "http_front.app -> bench.cli"),
    "the front imports the simulator": (
        "http_front/app.py",
        "import acquirer_sim.cli\n",
        "http_front.app -> acquirer_sim",
    ),
    "the core imports the command package": ("switch/link.py", "import isoswitch.cli\n", "switch.link -> isoswitch"),
}


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=100, check=False
    )


def make_tree(root: Path, files: dict[str, str]) -> None:
    (root / ".importlinter").write_text((ROOT / ".importlinter").read_text())
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_real_tree_keeps_every_import_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout
    assert " 0 broken" in result.stdout


def test_a_tree_without_violations_passes(tmp_path: Path) -> None:
    make_tree(tmp_path, CLEAN_TREE)
    result = lint_imports(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("case", sorted(VIOLATIONS))
def test_lint_imports_fails_when(case: str, tmp_path: Path) -> None:
    name, extra, shown = VIOLATIONS[case]
    make_tree(tmp_path, {**CLEAN_TREE, name: CLEAN_TREE[name] + extra})
    result = lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    assert "BROKEN" in result.stdout
    assert shown in result.stdout
