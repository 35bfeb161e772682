"""Fixtures shared by the tests: real audio made with espeak-ng, the EmoDB corpus, scratch folders.

Modules append their own fixtures below the marked sections; keep this file the one conftest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
EMODB = SHARED / "data" / "emodb"
PYTHON = sys.executable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def speak(text: str, path: Path, *, voice: str = "de+m1", pitch: int = 50, speed: int = 160) -> Path:
    """Write ``text`` spoken by espeak-ng to ``path`` (22,050 Hz mono 16-bit WAV)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (run 'make test', which installs it)")
    subprocess.run(
        ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(path), text],
        check=True, capture_output=True,
    )
    return path


def run_stage(script: str, *arguments, cwd: Path = ROOT, timeout: float = 600, env=None) -> subprocess.CompletedProcess:
    """Run a stage script as a person does: ``python script args`` from the repository root."""
    environment = dict(os.environ, **(env or {}))
    return subprocess.run(
        [PYTHON, str(ROOT / script), *map(str, arguments)],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env=environment,
    )


@pytest.fixture(scope="session")
def emodb_dir() -> Path:
    if not (EMODB / "labels.csv").exists():
        pytest.skip(f"EmoDB is not beside the repository ({EMODB}); it exists in CI and in ../shared")
    return EMODB


@pytest.fixture(scope="session")
def spoken_clips(tmp_path_factory) -> dict:
    """Two real espeak-ng clips of the workshop sentence: {"male": path, "female": path}."""
    folder = tmp_path_factory.mktemp("spoken")
    return {
        "male": speak("Guten Morgen, wie geht es Ihnen", folder / "male.wav", voice="de+m3", pitch=40),
        "female": speak("Guten Morgen, wie geht es Ihnen", folder / "female.wav", voice="de+f2", pitch=60),
    }


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


# --- microphone fixtures (PulseAudio virtual source) below -------------------------------------

# --- model fixtures below ----------------------------------------------------------------------
