"""What this computer has and lacks for the workshop, with the command that installs each missing part here.

    python -m acoustics.setup

Checks Python, every package of ``requirements.txt`` that applies to this system, the libraries behind them
(PortAudio for the microphone, libsndfile and FFmpeg for audio files), espeak-ng (speaks the demo corpus) and
a microphone. Exits 1 when something the five stages need is missing, 0 otherwise. Uses the standard library
alone until the packages are there, so it runs in a fresh virtual environment, on Linux, macOS and Windows.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "requirements.txt"
MINIMUM_PYTHON = (3, 11)
#: Where the Windows installer of espeak-ng puts it (it does not add itself to PATH).
WINDOWS_ESPEAK = Path(os.environ.get("ProgramFiles", r"C:\Program Files")) / "eSpeak NG" / "espeak-ng.exe"
ESPEAK_RELEASES = "https://github.com/espeak-ng/espeak-ng/releases"


def system() -> str:
    """"windows", "macos", "debian" (Linux with apt-get) or "linux"."""
    if sys.platform == "win32":
        return "windows"
    if sys.platform == "darwin":
        return "macos"
    return "debian" if shutil.which("apt-get") else "linux"


def pip_command() -> str:
    """The command that installs the Python packages into the Python that runs this."""
    in_virtual_environment = sys.prefix != sys.base_prefix
    python = "python" if in_virtual_environment or system() == "windows" else "python3"
    return f"{python} -m pip install -r requirements.txt"


#: part -> system -> the command (or the step) that installs it.
INSTALL = {
    "python": {"debian": "sudo apt-get install python3 python3-venv python3-dev",
               "macos": "brew install python@3.11",
               "windows": "winget install Python.Python.3.11 (or the installer from python.org)",
               "linux": "your package manager's python3 (3.11 or newer)"},
    "portaudio": {"debian": "sudo apt-get install portaudio19-dev libportaudio2, then {pip}",
                  "macos": "brew install portaudio, then {pip}",
                  "windows": "{pip} (PyAudio's wheels for Windows hold PortAudio)",
                  "linux": "your package manager's PortAudio development files, then {pip}"},
    "libsndfile": {"debian": "sudo apt-get install libsndfile1, then {pip}",
                   "macos": "{pip} (soundfile's wheels hold libsndfile)",
                   "windows": "{pip} (soundfile's wheels hold libsndfile)",
                   "linux": "{pip}"},
    "espeak-ng": {"debian": "sudo apt-get install espeak-ng",
                  "macos": "brew install espeak-ng",
                  "windows": f"the espeak-ng .msi installer from {ESPEAK_RELEASES} (it goes to {WINDOWS_ESPEAK.parent})",
                  "linux": "your package manager's espeak-ng"},
    "packages": {name: "{pip}" for name in ("debian", "macos", "windows", "linux")},
}


def install_command(part: str, on: Optional[str] = None) -> str:
    """How to install ``part`` (a key of :data:`INSTALL`) on system ``on`` (this one): "install with: COMMAND"."""
    return "install with: " + INSTALL[part][on or system()].format(pip=pip_command())


@dataclass(frozen=True)
class Check:
    """One part: whether it is here, what was found, and the command that installs it."""

    name: str
    present: bool
    found: str
    fix: str
    needed: bool = True

    def line(self) -> str:
        state = "ok      " if self.present else "MISSING " if self.needed else "optional"
        return f"  {state} {self.name}: {self.found}" + ("" if self.present else f"; {self.fix}")


def espeak_program() -> Optional[str]:
    """The espeak-ng program: on PATH, or where the Windows installer put it; None if neither."""
    found = shutil.which("espeak-ng")
    if found is None and sys.platform == "win32" and WINDOWS_ESPEAK.exists():
        found = str(WINDOWS_ESPEAK)
    return found


def requirements(text: str, platform_name: str = sys.platform) -> list:
    """``[(distribution, minimum version or "")]`` of the requirement lines that apply on ``platform_name``
    (``sys_platform`` markers with == and != are the ones requirements.txt uses)."""
    wanted = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement, _, marker = line.partition(";")
        condition = re.fullmatch(r'\s*sys_platform\s*(==|!=)\s*"([^"]+)"\s*', marker) if marker else None
        if condition and (platform_name == condition.group(2)) != (condition.group(1) == "=="):
            continue
        name = re.match(r"[A-Za-z0-9_.\-]+", requirement.strip())
        minimum = re.search(r">=\s*([0-9][0-9.]*)", requirement)
        if name:
            wanted.append((name.group(0), minimum.group(1) if minimum else ""))
    return wanted


def _version_tuple(text: str) -> tuple:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def package_checks(text: Optional[str] = None) -> list:
    """One :class:`Check` per package of ``text`` (requirements.txt) that applies here."""
    checks = []
    for name, minimum in requirements(REQUIREMENTS.read_text(encoding="utf-8") if text is None else text):
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            checks.append(Check(name, False, "not installed", install_command("packages")))
            continue
        recent = not minimum or _version_tuple(version) >= _version_tuple(minimum)
        checks.append(Check(name, recent, version if recent else f"{version}, older than {minimum}", install_command("packages")))
    return checks


def _importable(module: str) -> tuple:
    """(True, "") if ``module`` imports; else (False, the error's first line)."""
    try:
        importlib.import_module(module)
        return True, ""
    except Exception as error:  # an ImportError, or an OSError of a missing shared library
        return False, (str(error).splitlines() or [type(error).__name__])[0]


def library_checks() -> list:
    """PortAudio (through PyAudio), libsndfile (through soundfile) and FFmpeg (through PyAV)."""
    checks = []
    for name, module, part, what in (("PortAudio", "pyaudio", "portaudio", "the microphone"),
                                     ("libsndfile", "soundfile", "libsndfile", "WAV, FLAC, Ogg, MP3 files"),
                                     ("FFmpeg", "av", "packages", "m4a, mp4, webm files")):
        works, error = _importable(module)
        checks.append(Check(f"{name} ({what})", works, f"through {module}" if works else error, install_command(part)))
    return checks


def microphone_check() -> Check:
    """Whether PortAudio has a default input device (optional: files work without one)."""
    fix = "plug one in, or allow this terminal to use it (macOS: System Settings, Privacy, Microphone); files work without one"
    try:
        from .microphone import default_input_device, open_pyaudio

        with open_pyaudio() as pa:
            info = default_input_device(pa, alternatives="files")
        return Check("microphone", True, str(info["name"]), fix, needed=False)
    except Exception:  # NoInputDeviceError, or PyAudio missing (its own line above says how to install it)
        return Check("microphone", False, "no input device", fix, needed=False)


def checks() -> list:
    """Every :class:`Check`, Python first."""
    version = ".".join(map(str, sys.version_info[:3]))
    found = [Check("Python", sys.version_info[:2] >= MINIMUM_PYTHON,
                   version if sys.version_info[:2] >= MINIMUM_PYTHON else f"{version}, older than 3.11",
                   install_command("python"))]
    found += package_checks() + library_checks()
    program = espeak_program()
    found.append(Check("espeak-ng (speaks the demo corpus; without it the demo uses the real voices in ../shared/data)",
                       program is not None, program or "not found", install_command("espeak-ng"), needed=False))
    found.append(microphone_check())
    return found


def main() -> int:
    print(f"Checking what the workshop needs on this computer ({platform.system()} {platform.machine()}, "
          f"Python at {sys.executable}):")
    found = checks()
    for check in found:
        print(check.line())
    missing = [check for check in found if check.needed and not check.present]
    if missing:
        print(f"{len(missing)} needed part(s) missing; run the install commands above, then "
              "'python -m acoustics.setup' again.")
        return 1
    print("Everything the five stages need is here. Next: python set_up_sql.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
