"""What the benchmarks share: where the project, the corpora and the results lie, and running a stage.

Each bench script is run as ``python bench/NAME.py``, so this folder is on ``sys.path`` and they
``import common``; importing it also puts the project root on ``sys.path`` for ``import acoustics``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
EMODB = DATA / "emodb"
RESULTS = ROOT / "bench" / "results"
CORPORA = ("emodb", "ravdess", "librispeech", "speechocean762")

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def stage(script: str, *arguments, env: dict | None = None, timeout: float = 1800) -> subprocess.CompletedProcess:
    """Run a stage script as a person does (``python SCRIPT args`` from the project root); exit the
    benchmark with the script's last output if it fails."""
    result = subprocess.run([sys.executable, str(ROOT / script), *map(str, arguments)], cwd=ROOT, capture_output=True,
                            text=True, timeout=timeout, env=env)
    if result.returncode != 0:
        sys.exit(f"{script} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result
