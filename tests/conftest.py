"""Fixtures shared by the tests: real audio made with espeak-ng, the EmoDB corpus, scratch folders.

Modules append their own fixtures below the marked sections; keep this file the one conftest.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
EMODB = SHARED / "data" / "emodb"
RAVDESS = SHARED / "data" / "ravdess"
LIBRISPEECH = SHARED / "data" / "librispeech"
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


def restamp(path):
    """Stamp a model file's checksum after a test changed its attributes, as if it had been saved so: the
    checks behind the checksum (a damaged or foreign metadata) are tested with it."""
    from acoustics.modelfile import stamp_digest

    stamp_digest(path)
    return path


def one_line(error, *words) -> str:
    """The message of ``error``, asserted to be the one line a person reads: no line break, no stray
    spaces, and each of ``words`` (a file name, the fix) in it."""
    message = str(error)
    assert message and "\n" not in message and "\r" not in message and message.strip() == message, message
    for word in words:
        assert str(word) in message, message
    return message


def assert_one_line_failure(done: subprocess.CompletedProcess, *words, status: int = 1) -> str:
    """A stage run that failed with ``status`` and said why in one line on stderr holding each of
    ``words``, with no traceback and no ALSA noise; that line."""
    assert done.returncode == status, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "ALSA lib" not in done.stderr, done.stderr
    return one_line(done.stderr.strip(), *words)


def run_stage(script: str, *arguments, cwd: Path = ROOT, timeout: float = 600, env=None) -> subprocess.CompletedProcess:
    """Run a stage script as a person does: ``python script args`` from the repository root."""
    environment = dict(os.environ, **(env or {}))
    return subprocess.run(
        [PYTHON, str(ROOT / script), *map(str, arguments)],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env=environment,
    )


def shared_corpus(folder: Path, name: str) -> Path:
    """``folder`` if it holds the corpus (its labels.csv); else the test is skipped, saying where it was looked for."""
    if not (folder / "labels.csv").exists():
        pytest.skip(f"{name} is not beside the repository ({folder}); it exists in CI and in ../shared")
    return folder


# --- child processes: Ctrl-C and deadlines ------------------------------------------------------
#: Runs ``argv[2:]`` with SIGINT set to ``argv[1]`` (SIG_DFL or SIG_IGN) by exec'ing it.
_SIGINT_TRAMPOLINE = ("import os, signal, sys; signal.signal(signal.SIGINT, getattr(signal, sys.argv[1])); "
                      "os.execvp(sys.argv[2], sys.argv[2:])")


def with_sigint(command, disposition: str = "SIG_DFL") -> list:
    """``command`` started with SIGINT at ``disposition``: "SIG_DFL" (Ctrl-C stops it) or "SIG_IGN".

    A child inherits an ignored SIGINT from a test run that ignores it (``make test &``, nohup, a CI
    runner), and Python then never raises KeyboardInterrupt: tests that send SIGINT start their child
    through this. A one-line exec trampoline, because ``preexec_fn`` is unsafe in a process with threads.
    """
    return [PYTHON, "-c", _SIGINT_TRAMPOLINE, disposition, *map(str, command)]


class OutputLines:
    """A child's stdout read in a thread, so that every wait for a line has a deadline."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self.lines: list = []
        self._queue: "queue.Queue" = queue.Queue()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put("")  # end of output

    def readline(self, timeout: float) -> str:
        """The next line ("" at the end of the output); AssertionError after ``timeout`` seconds."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output line within {timeout:g} s from {self.process.args!r}; "
                                 f"so far: {''.join(self.lines)!r}") from None

    def text(self, timeout: float = 10) -> str:
        """All of the output once the child closed it (waits at most ``timeout`` seconds)."""
        self._thread.join(timeout=timeout)
        return "".join(self.lines)


def stop_child(process: subprocess.Popen, timeout: float = 30) -> int:
    """Wait at most ``timeout`` seconds for ``process``; kill it if it is still running; its exit status."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        raise AssertionError(f"{process.args!r} did not exit within {timeout:g} s; killed it") from None


@pytest.fixture(scope="session")
def emodb_dir() -> Path:
    return shared_corpus(EMODB, "EmoDB")


@pytest.fixture(scope="session")
def ravdess_dir() -> Path:
    return shared_corpus(RAVDESS, "RAVDESS")


@pytest.fixture(scope="session")
def librispeech_dir() -> Path:
    return shared_corpus(LIBRISPEECH, "LibriSpeech")


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
#
# ``virtual_microphone`` (session): a private PulseAudio daemon whose default source the test feeds
# (tests/virtual_microphone.py says how: play, pipe, dead_pipe). The test process is not switched to
# it: use the ``microphone_env`` fixture in-process, or pass ``virtual_microphone.env`` (PULSE_SERVER,
# PULSE_RUNTIME_PATH) to a subprocess (run_stage(env=...)).
# ``no_microphone_env``: environment variables under which no input device exists.
from virtual_microphone import VirtualMicrophone, has_sound_card, installed as pulseaudio_installed  # noqa: E402


@pytest.fixture(scope="session")
def virtual_microphone(tmp_path_factory):
    if not pulseaudio_installed():
        pytest.skip("PulseAudio is not installed (run 'make test': apt packages pulseaudio, pulseaudio-utils, "
                    "libasound2-plugins)")
    pytest.importorskip("pyaudio", reason="PyAudio is not installed (run 'make install')")
    try:
        microphone = VirtualMicrophone.start(tmp_path_factory.mktemp("pulse"))
    except RuntimeError as error:
        pytest.fail(str(error))
    try:
        yield microphone
    finally:
        microphone.close()


@pytest.fixture
def microphone_env(virtual_microphone, monkeypatch):
    """The virtual microphone as this test process's default input device (for this test only)."""
    for name, value in virtual_microphone.env.items():
        monkeypatch.setenv(name, value)
    return virtual_microphone


@pytest.fixture
def no_microphone_env(tmp_path) -> dict:
    """Environment variables under which PortAudio finds no input device: no reachable sound server."""
    if has_sound_card():
        pytest.skip("this machine has a sound card, so a machine without a microphone cannot be arranged")
    client_config = tmp_path / "pulse-client.conf"
    client_config.write_text("autospawn = no\n")
    return {"PULSE_SERVER": f"unix:{tmp_path}/no-such-socket", "PULSE_CLIENTCONFIG": str(client_config),
            "PULSE_RUNTIME_PATH": str(tmp_path / "no-pulse")}


# --- model fixtures below ----------------------------------------------------------------------
MODEL_SENTENCES = ("Guten Morgen, wie geht es Ihnen", "Das Wetter ist heute schön", "Ich lese gern ein gutes Buch")
#: Synthetic speakers for the model tests: (voice, pitch, speed); male pitch <= 50, female >= 55.
MODEL_SPEAKERS = {
    "male": [("de+m1", 35, 150), ("de+m2", 45, 170), ("de+m3", 30, 140), ("de+m4", 50, 160),
             ("de+m5", 40, 180), ("de+m6", 25, 150), ("de+m7", 45, 145), ("de+m1", 20, 175)],
    "female": [("de+f1", 60, 160), ("de+f2", 70, 150), ("de+f3", 65, 175), ("de+f4", 75, 140),
               ("de+f5", 55, 165), ("de+f1", 80, 150), ("de+f2", 62, 180), ("de+f3", 72, 145)],
}
#: The model tests' settings: the defaults with two noisy variants instead of four (faster).
MODEL_SNRS = (10.0, 0.0)


@pytest.fixture(scope="session")
def model_clips(tmp_path_factory) -> list:
    """Real espeak-ng clips: 8 synthetic speakers per sex x 3 sentences, as dicts (speaker, sex, path)."""
    from concurrent.futures import ThreadPoolExecutor

    folder = tmp_path_factory.mktemp("model_clips")
    jobs = []
    for sex, voices in MODEL_SPEAKERS.items():
        for number, (voice, pitch, speed) in enumerate(voices, start=1):
            for sentence_number, sentence in enumerate(MODEL_SENTENCES, start=1):
                path = folder / f"{sex}{number}_{sentence_number}.wav"
                jobs.append(({"speaker": f"{sex}{number}", "sex": sex, "path": path}, sentence, voice, pitch, speed))
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda job: speak(job[1], job[0]["path"], voice=job[2], pitch=job[3], speed=job[4]), jobs))
    return [job[0] for job in jobs]


def build_feature_database(path: Path, clips: list, settings=None, *, n_mfcc_stored=None) -> Path:
    """A real feature database at ``path`` from ``clips``: clean + noise at the settings' SNRs.

    ``n_mfcc_stored`` keeps only that many coefficients of each matrix (to fake inconsistent features).
    """
    import hashlib

    from acoustics import audio, features, mixing
    from acoustics.database import FeatureDatabase
    from acoustics.dbfile import create_database
    from acoustics.settings import Settings

    settings = settings or Settings(snrs_db=MODEL_SNRS)
    create_database(path, settings)
    rng = np.random.default_rng(settings.seed)
    noise = mixing.synthetic_room_noise(10.0, settings.sample_rate, rng)
    items = []
    with FeatureDatabase(path) as database:
        noise_id = database.add_noise(name="room", kind="synthetic", sha256="room-noise-for-tests",
                                      duration_seconds=10.0, level_dbfs=audio.level_dbfs(noise))
        for clip in clips:
            signal, info = audio.load_audio(clip["path"], settings.sample_rate)
            speech = audio.trim_silence(signal, settings.trim_top_db)
            variants = [("clean", None, None, features.mfcc(speech, settings))]
            for snr in settings.snrs_db:
                mixed = mixing.mix_at_snr(speech, noise, snr, rng)
                variants.append((f"snr{snr:g}", noise_id, snr, features.mfcc(mixed, settings)))
            if n_mfcc_stored:
                variants = [(name, noise, snr, matrix[:, :n_mfcc_stored]) for name, noise, snr, matrix in variants]
            items.append({
                "speaker": clip["speaker"], "sex": clip["sex"], "source": "espeak-test", "synthetic": True,
                "path": str(clip["path"]), "sha256": hashlib.sha256(Path(clip["path"]).read_bytes()).hexdigest(),
                "duration_seconds": info.duration_seconds, "speech_seconds": speech.size / settings.sample_rate,
                "original_sample_rate": info.sample_rate, "original_channels": info.channels, "variants": variants,
            })
        database.add_recordings(items)
    return path


@pytest.fixture(scope="session")
def model_database(model_clips, tmp_path_factory) -> Path:
    """A feature database of all ``model_clips`` (48 recordings x 3 variants). Copy it before writing."""
    return build_feature_database(tmp_path_factory.mktemp("model_db") / "features.db", model_clips)


@pytest.fixture
def model_database_copy(model_database, tmp_path) -> Path:
    """A private copy of ``model_database`` that a test may change (split, runs)."""
    copy = tmp_path / "features.db"
    shutil.copyfile(model_database, copy)
    return copy
