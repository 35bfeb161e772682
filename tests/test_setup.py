"""``python -m acoustics.setup``: what this computer has and lacks, with the command that installs each part."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from acoustics import setup
from conftest import ROOT


def run_setup(env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "acoustics.setup"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, **(env or {})))


def test_here_everything_needed_is_present():
    done = run_setup()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Everything the five stages need is here. Next: python set_up_sql.py" in done.stdout
    for part in ("Python", "tensorflow-cpu", "keras", "av", "portalocker", "PortAudio", "libsndfile", "FFmpeg"):
        assert any(line.startswith("  ok") and part in line for line in done.stdout.splitlines()), part


def test_a_missing_espeak_ng_is_optional_and_named_with_its_command(tmp_path):
    if shutil.which("apt-get") is None:
        pytest.skip("the Debian command is checked where apt-get is")
    (tmp_path / "apt-get").symlink_to(shutil.which("apt-get"))  # PATH holds apt-get, not espeak-ng
    done = run_setup({"PATH": str(tmp_path)})
    assert done.returncode == 0, done.stdout + done.stderr
    line = next(line for line in done.stdout.splitlines() if "espeak-ng" in line)
    assert line.startswith("  optional") and "install with: sudo apt-get install espeak-ng" in line


@pytest.mark.parametrize("part, system, words", [
    ("espeak-ng", "macos", "brew install espeak-ng"),
    ("espeak-ng", "windows", "github.com/espeak-ng/espeak-ng/releases"),
    ("portaudio", "macos", "brew install portaudio, then python"),
    ("portaudio", "windows", "-m pip install -r requirements.txt"),
    ("portaudio", "debian", "sudo apt-get install portaudio19-dev libportaudio2"),
    ("python", "windows", "winget install Python.Python.3.11"),
])
def test_each_system_gets_its_own_command(part, system, words):
    assert words in setup.install_command(part, system)


@pytest.mark.parametrize("platform_name, present, absent", [
    ("linux", {"tensorflow-cpu", "portalocker", "av"}, {"tensorflow", "pywin32"}),
    ("darwin", {"tensorflow", "portalocker", "av"}, {"tensorflow-cpu", "pywin32"}),
    ("win32", {"tensorflow", "pywin32", "portalocker"}, {"tensorflow-cpu"}),
])
def test_requirements_that_apply_on_each_system(platform_name, present, absent):
    names = {name for name, _ in setup.requirements((ROOT / "requirements.txt").read_text(), platform_name)}
    assert present <= names and not absent & names


def test_missing_and_old_packages_are_needed_parts_with_the_pip_command():
    missing, old, recent = setup.package_checks("no-such-package-here>=1.0\nnumpy>=999\nnumpy>=1.0\n")
    assert not missing.present and missing.needed and "not installed" in missing.line()
    assert "-m pip install -r requirements.txt" in missing.line()
    assert not old.present and "older than 999" in old.line()
    assert recent.present and recent.line().startswith("  ok")
