"""Memory bounded by what the pipeline needs, not by what a file's header claims: small files that decode
to huge signals, through stages 3 and 5 as child processes whose peak memory is measured."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from acoustics import audio, mixing
from acoustics.errors import BadAudioError
from conftest import PYTHON, ROOT, run_stage

#: Runs ``argv[1:]`` and prints its exit status and the peak resident memory (KiB) of it and its children.
_MEASURE = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "sys.stdout.write(done.stdout); sys.stderr.write(done.stderr); "
            "print('PEAK', done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
LIMIT_MB = 1024


def constant_flac(path: Path, seconds: float, rate: int, channels: int) -> Path:
    """A FLAC of a constant 0.25 for its first half and -0.25 for its second: a few hundred KB on disk,
    ``seconds * rate * channels`` samples, and to the ear silence but for one click at the middle (the
    DC offset is taken out as a file is read)."""
    with soundfile.SoundFile(path, "w", samplerate=rate, channels=channels, format="FLAC", subtype="PCM_16") as handle:
        for second in range(int(seconds)):
            handle.write(np.full((rate, channels), 0.25 if second < seconds / 2 else -0.25, dtype=np.float32))
    return path


def peak(script: str, *arguments, env=None) -> tuple:
    """Run a stage in a child process: (exit status, output, peak resident memory in MB)."""
    import os

    done = subprocess.run([PYTHON, "-c", _MEASURE, PYTHON, str(ROOT / script), *map(str, arguments)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, env=dict(os.environ, **(env or {})))
    status, kib = done.stdout.strip().splitlines()[-1].split()[1:]
    return int(status), done.stdout + done.stderr, int(kib) / 1024


@pytest.fixture(scope="module")
def big_files(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("big")
    return {"384k": constant_flac(folder / "384k-8ch.flac", 120, 384_000, 8),
            "192k": constant_flac(folder / "192k-8ch.flac", 120, 192_000, 8)}


def test_a_header_above_the_limits_is_refused_unread(big_files):
    with pytest.raises(BadAudioError, match="8 channels at 384000 Hz, above the limit") as caught:
        audio.probe(big_files["384k"])
    assert "\n" not in str(caught.value) and "sox" in str(caught.value)


def test_a_192k_8_channel_file_is_decoded_block_by_block(big_files):
    signal, info = audio.load_audio(big_files["192k"], 16000)
    assert info.channels == 8 and info.sample_rate == 192_000
    assert signal.dtype == np.float32 and signal.size == 120 * 16000
    middle = signal.size // 2  # every value arrived at its place: silence, the step of -0.5 at 60 s, silence
    assert np.abs(signal[:middle - 800]).max() < 1e-3 and np.abs(signal[middle + 16000:]).max() < 1e-3
    assert signal[middle - 100:middle + 400].min() < -0.4


def test_out_of_memory_is_not_reported_as_corrupt(tmp_path, monkeypatch):
    path = tmp_path / "clip.wav"
    soundfile.write(path, np.zeros(16000, dtype=np.float32), 16000)

    def no_memory(*arguments, **options):
        raise MemoryError

    monkeypatch.setattr(audio, "_decode", no_memory)
    with pytest.raises(BadAudioError, match="too large to fit in memory") as caught:
        audio.load_audio(path, 16000)
    assert "corrupt" not in str(caught.value)


@pytest.fixture
def workspace(tmp_path) -> dict:
    data = tmp_path / "data"
    assert run_stage("set_up_sql.py", "--db", data / "features.db").returncode == 0
    audio.write_wav(data / "noise.wav", mixing.synthetic_room_noise(5.0, 16000, np.random.default_rng(1)), 16000)
    return {"db": data / "features.db", "noise": data / "noise.wav", "data": data}


def test_stage3_peak_memory_on_huge_decoded_files(workspace, big_files):
    manifest = workspace["data"] / "big" / "labels.csv"
    manifest.parent.mkdir()
    manifest.write_text(f"path,sex,speaker\n{big_files['384k']},male,a\n{big_files['192k']},female,b\n")
    status, output, megabytes = peak("speech_prep.py", "--db", workspace["db"], "--noise", workspace["noise"],
                                     "--svd", workspace["data"], "--manifest", manifest, "--no-picture")
    assert status == 1 and "Traceback" not in output, output[-2000:]
    assert "384000 Hz, above the limit" in output and "only 1" in output and "ms of sound" in output  # the click
    assert megabytes < LIMIT_MB, f"stage 3 peaked at {megabytes:.0f} MB"


def test_stage5_peak_memory_on_huge_decoded_files(tmp_path, big_files):
    status, output, megabytes = peak("implement_model.py", "--model", ROOT / "models" / "reference.h5",
                                     "--db", tmp_path / "none.db", "--wav", big_files["384k"], big_files["192k"],
                                     env={"ACOUSTICS_DATA": str(tmp_path / "data")})
    assert "Traceback" not in output, output[-2000:]
    assert "384000 Hz, above the limit" in output and f"{big_files['192k']}: no verdict: only 1" in output, output[-2000:]
    assert megabytes < LIMIT_MB, f"stage 5 peaked at {megabytes:.0f} MB"
