"""Stage 2, collect_background_noise.py, run as a person runs it: synthetic noise, a file, the microphone."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from acoustics import audio, mixing
from acoustics.dbfile import create_database
from acoustics.settings import Settings
from conftest import assert_one_line_failure, run_stage

SCRIPT = "collect_background_noise.py"


@pytest.fixture
def places(tmp_path) -> dict:
    """Output paths in a scratch folder, and a database path that does not exist (default settings)."""
    return {"out": tmp_path / "noise.wav", "picture": tmp_path / "pictures" / "noise.png", "db": tmp_path / "none.db"}


def run(places, *arguments, env=None, timeout=120):
    return run_stage(SCRIPT, "--out", places["out"], "--picture", places["picture"], "--db", places["db"], *arguments,
                     env=env, timeout=timeout)


def test_synthetic(places):
    done = run(places, "--synthetic", "--seconds", "3")
    assert done.returncode == 0, done.stderr
    signal, rate = soundfile.read(places["out"], dtype="float32")
    assert rate == 16000 and signal.ndim == 1 and signal.size == 3 * 16000
    assert audio.level_dbfs(signal) == pytest.approx(-45, abs=0.5)
    assert places["picture"].stat().st_size > 10_000
    assert "-45.0 dBFS" in done.stdout and str(places["out"]) in done.stdout
    assert done.stdout.strip().splitlines()[-1] == f"Next: python speech_prep.py --db {places['db']} --noise {places['out']}"


def test_uses_the_sample_rate_of_an_existing_database(places):
    create_database(places["db"], Settings(sample_rate=8000, fmax=4000.0))
    done = run(places, "--synthetic", "--seconds", "2")
    assert done.returncode == 0, done.stderr
    info = soundfile.info(str(places["out"]))
    assert (info.samplerate, info.channels, info.frames) == (8000, 1, 16000)
    assert f"the settings of {places['db']}" in done.stdout


def test_from_a_48_khz_stereo_file(places, tmp_path):
    time_axis = np.arange(48000 * 2) / 48000  # a hum of two tones, below 8 kHz so resampling keeps its level
    stereo = np.stack([0.1 * np.sin(2 * np.pi * 440 * time_axis), 0.05 * np.sin(2 * np.pi * 1000 * time_axis)], axis=1)
    soundfile.write(tmp_path / "room.wav", stereo.astype(np.float32), 48000, subtype="FLOAT")
    done = run(places, "--from-file", tmp_path / "room.wav")
    assert done.returncode == 0, done.stderr
    signal, rate = soundfile.read(places["out"], dtype="float32")
    assert rate == 16000 and signal.ndim == 1 and abs(signal.size - 32000) <= 1
    expected = audio.level_dbfs(stereo.mean(axis=1))  # the channels are averaged
    assert audio.level_dbfs(signal) == pytest.approx(expected, abs=0.1)
    assert "48000 Hz, 2 channels" in done.stdout


def test_a_bad_file_leaves_the_existing_noise_alone(places, tmp_path):
    audio.write_wav(places["out"], mixing.synthetic_room_noise(1.0, 16000, np.random.default_rng(0)), 16000)
    before = places["out"].read_bytes()
    fake = tmp_path / "notes.wav"
    fake.write_text("this is not audio\n")
    done = run(places, "--from-file", fake)
    assert_one_line_failure(done, str(fake))
    assert places["out"].read_bytes() == before


def test_nearly_silent_noise_does_not_replace_a_good_one(places, tmp_path):
    audio.write_wav(places["out"], mixing.synthetic_room_noise(1.0, 16000, np.random.default_rng(0)), 16000)
    before = places["out"].read_bytes()
    quiet = tmp_path / "quiet.wav"
    soundfile.write(quiet, (np.random.default_rng(1).standard_normal(16000) * 10 ** (-72 / 20)).astype(np.float32), 16000)
    done = run(places, "--from-file", quiet)
    assert_one_line_failure(done, "Kept the existing", "--force")
    assert "WARNING" in done.stdout and "nearly silent" in done.stdout
    assert places["out"].read_bytes() == before
    forced = run(places, "--from-file", quiet, "--force")
    assert forced.returncode == 0 and places["out"].read_bytes() != before


def test_digital_silence_is_never_saved(places, tmp_path):
    zeros = tmp_path / "zeros.wav"
    soundfile.write(zeros, np.zeros(16000, np.float32), 16000)
    done = run(places, "--from-file", zeros)
    assert_one_line_failure(done, "digital silence", "nothing was saved")
    assert not places["out"].exists()


def test_clipped_noise_is_saved_with_a_warning(places, tmp_path):
    loud = tmp_path / "loud.wav"
    soundfile.write(loud, np.clip(np.random.default_rng(2).standard_normal(16000), -1, 1).astype(np.float32), 16000)
    done = run(places, "--from-file", loud)
    assert done.returncode == 0, done.stderr
    assert "WARNING" in done.stdout and "clipped" in done.stdout and places["out"].exists()


def test_no_microphone(places, no_microphone_env):
    audio.write_wav(places["out"], mixing.synthetic_room_noise(1.0, 16000, np.random.default_rng(0)), 16000)
    before = places["out"].read_bytes()
    done = run(places, "--seconds", "1", env=no_microphone_env)
    assert_one_line_failure(done, "No microphone found", "--from-file", "--synthetic")
    assert places["out"].read_bytes() == before


def test_records_the_room_through_the_microphone(places, virtual_microphone, tmp_path):
    """Noise plays into the virtual microphone for the whole run; the saved file has its level."""
    room = (np.random.default_rng(4).standard_normal(15 * 16000) * 10 ** (-30 / 20)).astype(np.float32)
    soundfile.write(tmp_path / "room.wav", room, 16000, subtype="PCM_16")
    player = virtual_microphone.play(tmp_path / "room.wav")
    try:
        done = run(places, "--seconds", "2", env=virtual_microphone.env, timeout=60)
    finally:
        player.terminate()
        player.wait(timeout=10)
    assert done.returncode == 0, done.stderr
    assert "from the microphone" in done.stdout and "default" in done.stdout
    signal, rate = soundfile.read(places["out"], dtype="float32")
    assert rate == 16000 and signal.size == 32000
    assert audio.level_dbfs(signal) == pytest.approx(-30, abs=1)
    assert done.stdout.strip().splitlines()[-1] == f"Next: python speech_prep.py --db {places['db']} --noise {places['out']}"


def test_silence_from_the_microphone_is_refused(places, virtual_microphone):
    """Nothing plays: the microphone delivers digital silence, as a muted one does."""
    done = run(places, "--seconds", "1", env=virtual_microphone.env, timeout=60)
    assert_one_line_failure(done, "digital silence", "--synthetic")
    assert not places["out"].exists()


def test_a_microphone_that_delivers_nothing_is_one_line(places, virtual_microphone):
    """Open but never a sample: the stage ends with the device's line instead of waiting forever."""
    audio.write_wav(places["out"], mixing.synthetic_room_noise(1.0, 16000, np.random.default_rng(0)), 16000)
    before = places["out"].read_bytes()
    with virtual_microphone.dead_pipe():
        done = run(places, "--seconds", "1", env=virtual_microphone.env, timeout=60)
    assert_one_line_failure(done, "delivers no sound", "plugged in, not muted", "--from-file", "--synthetic")
    assert places["out"].read_bytes() == before and not places["picture"].exists()
