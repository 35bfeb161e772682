"""Every module and stage imports on a system without the POSIX-only modules (Windows), and the locks work.

The import test runs in a fresh interpreter: the third-party packages are imported first (they pick their own
per-platform code), then the POSIX-only modules are made unimportable and every module of ``acoustics`` and
every stage script is imported. A module that imports ``fcntl``, ``termios``, ``resource`` and the like at
import time fails there exactly as it would on Windows.
"""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT

POSIX_ONLY = ("fcntl", "termios", "tty", "pty", "resource", "pwd", "grp", "posix", "syslog", "crypt")
STAGES = ("set_up_sql", "collect_background_noise", "speech_prep", "train_models", "implement_model")

IMPORT_EVERYTHING = f"""
import importlib, pkgutil, sys
import numpy, scipy.signal, scipy.fft, librosa, soundfile, av, pyaudio, pandas, h5py, tqdm, rich.console, rich.live
import matplotlib, matplotlib.pyplot, sklearn.linear_model, sklearn.metrics, portalocker, soxr
import tensorflow, keras
for name in {POSIX_ONLY!r}:
    sys.modules[name] = None  # 'import name' now raises ImportError, as on Windows
import acoustics
names = [module.name for module in pkgutil.iter_modules(acoustics.__path__, "acoustics.")] + {list(STAGES)!r}
for name in names:
    importlib.import_module(name)
print("imported", len(names))
"""


def test_every_module_and_stage_imports_without_posix_only_modules():
    done = subprocess.run([sys.executable, "-c", IMPORT_EVERYTHING], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    count = int(done.stdout.split("imported")[1])
    assert count >= 30 + len(STAGES), done.stdout


def test_requirements_name_a_build_of_each_package_for_every_system():
    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    lines = [line for line in lines if line]
    assert any(line.startswith("tensorflow-cpu") and 'sys_platform == "linux"' in line for line in lines)
    assert any(line.startswith("tensorflow>=") and 'sys_platform != "linux"' in line for line in lines)
    assert any(line.startswith("pywin32") and 'sys_platform == "win32"' in line for line in lines)
    assert any(line.startswith("portalocker") and ";" not in line for line in lines)
    assert any(line.startswith("av") and ";" not in line for line in lines)
