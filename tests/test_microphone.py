"""acoustics.microphone: capture through a virtual PulseAudio microphone, the utterance logic listening to
it end to end, and the clear error when there is no microphone at all."""

from __future__ import annotations

import os
import signal as posix_signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile

from acoustics import audio, microphone, utterances
from acoustics.errors import BadParameterError, NoInputDeviceError
from acoustics.microphone import Microphone
from conftest import ROOT, OutputLines, stop_child, with_sigint
from virtual_microphone import as_int16

RATE = 16000
ALTERNATIVES = "--wav FILE"


def noise(seconds: float, level_dbfs: float, seed: int = 0) -> np.ndarray:
    """White noise at ``level_dbfs`` RMS."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(round(seconds * RATE))) * 10 ** (level_dbfs / 20)).astype(np.float32)


def mic(**options) -> Microphone:
    return Microphone(RATE, alternatives=ALTERNATIVES, **options)


# Capture through the virtual microphone ---------------------------------------------------------
@pytest.fixture(scope="module")
def spoken(spoken_clips) -> np.ndarray:
    signal, _ = audio.load_audio(spoken_clips["male"], RATE)
    return signal


def test_record_seconds_is_a_bit_exact_copy_of_a_pipe_source(microphone_env, spoken):
    with microphone_env.pipe(spoken) as feed:
        recorded = microphone.record_seconds(spoken.size / RATE + 1.0, RATE, alternatives=ALTERNATIVES,
                                             progress=lambda done, total: feed.start())
    assert recorded.dtype == np.float32 and recorded.ndim == 1
    assert recorded.size == int(round((spoken.size / RATE + 1.0) * RATE))
    # every sample arrives, once, in order: what the DC blocker makes of the clip after the silence before it
    heard = audio.DCBlocker(RATE)(np.concatenate([np.zeros(1, np.float32), as_int16(spoken) / 32768.0]))[1:]
    recorded16, spoken16 = as_int16(recorded), as_int16(spoken)
    offset = int(np.flatnonzero(recorded16)[0]) - int(np.flatnonzero(spoken16)[0])
    np.testing.assert_allclose(recorded[offset: offset + spoken16.size], heard, atol=1e-6)


def test_record_seconds_hears_what_plays_in_real_time(microphone_env, tmp_path):
    """The null sink's monitor, as a person's microphone would be: content and level match the clip."""
    clip = noise(1.5, -20, seed=7)
    soundfile.write(tmp_path / "clip.wav", clip, RATE, subtype="PCM_16")
    player = []

    def progress(done: float, total: float) -> None:
        if not player:  # the microphone is live: play now
            player.append(microphone_env.play(tmp_path / "clip.wav"))

    wall, cpu = time.perf_counter(), time.process_time()
    recorded = microphone.record_seconds(2.5, RATE, alternatives=ALTERNATIVES, progress=progress)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert player[0].wait(timeout=10) == 0, player[0].stderr.read()
    correlation = np.correlate(recorded, clip[2000:10000], "valid")
    peak = int(np.argmax(correlation))
    segment = recorded[peak: peak + 8000]
    assert correlation[peak] / np.sqrt(np.sum(segment.astype(np.float64) ** 2) * np.sum(clip[2000:10000].astype(np.float64) ** 2)) > 0.9
    start = peak - 2000
    assert audio.level_dbfs(recorded[max(start, 0) + 1600: start + 24000]) == pytest.approx(-20, abs=1)
    assert cpu < 0.2 * wall  # blocking reads: the CPU idles while sound arrives


def test_stream_utterances_yields_each_and_closes_the_stream(microphone_env, spoken):
    pause = np.zeros(RATE, np.float32)
    found, errors = [], []

    def listen(feed) -> None:
        try:
            stream = utterances.stream_utterances(mic(), on_start=feed.start)
            for utterance in stream:
                found.append(utterance)
                if len(found) == 2:
                    stream.close()  # what a caller's break does: the stream is closed
        except BaseException as error:  # noqa: BLE001 - reported by the test thread below
            errors.append(error)

    with microphone_env.pipe(np.concatenate([spoken, pause, spoken * 0.5, pause])) as feed:
        listener = threading.Thread(target=listen, args=(feed,), daemon=True)
        listener.start()
        listener.join(timeout=20)
        assert not listener.is_alive(), "stream_utterances did not yield two utterances within 20 s"
    assert errors == []
    assert len(found) == 2
    assert audio.level_dbfs(found[0]) - audio.level_dbfs(found[1]) == pytest.approx(6.0, abs=0.5)
    assert microphone_env.pactl("list", "short", "source-outputs") == ""


def test_ctrl_c_stops_stream_utterances_at_once_and_closes_the_stream(microphone_env):
    script = ("import sys\nfrom acoustics import microphone, utterances\n"
              "try:\n"
              "    for utterance in utterances.stream_utterances(microphone.Microphone(16000, alternatives='--wav FILE'),\n"
              "                                                  on_start=lambda: print('live', flush=True)):\n"
              "        pass\n"
              "except KeyboardInterrupt:\n    print('interrupted', flush=True)\n")
    with microphone_env.pipe(np.zeros(0, np.float32)):  # silence flows in real time
        listener = subprocess.Popen(with_sigint([sys.executable, "-c", script]), cwd=ROOT, stdout=subprocess.PIPE,
                                    text=True, env=dict(os.environ, **microphone_env.env))
        try:
            output = OutputLines(listener)
            assert output.readline(timeout=60).strip() == "live"
            time.sleep(0.3)
            interrupted = time.perf_counter()
            listener.send_signal(posix_signal.SIGINT)
            assert output.readline(timeout=10).strip() == "interrupted"
            assert time.perf_counter() - interrupted < 1.0
            assert stop_child(listener, timeout=10) == 0
        finally:
            if listener.poll() is None:
                listener.kill()
        assert microphone_env.pactl("list", "short", "source-outputs") == ""


def test_ctrl_c_works_in_a_test_run_that_ignores_sigint():
    """``make test &``, nohup or a CI runner start the tests with SIGINT ignored, and children inherit
    that: the Ctrl-C test above must still pass (not hang) in such a run."""
    test = "tests/test_microphone.py::test_ctrl_c_stops_stream_utterances_at_once_and_closes_the_stream"
    done = subprocess.run(with_sigint([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", test],
                                      "SIG_IGN"),
                          cwd=ROOT, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    if "1 skipped" in done.stdout:
        pytest.skip(f"the Ctrl-C test skips here: {done.stdout.strip().splitlines()[-1]}")
    assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout + done.stderr


def test_a_microphone_that_delivers_nothing_is_one_clear_line(microphone_env):
    """Open but never a sample (muted, unplugged behind a sound server): an error, not a wait forever."""
    with microphone_env.dead_pipe():
        started = time.monotonic()
        with pytest.raises(NoInputDeviceError) as raised:
            utterances.record_utterance(mic())
        waited = time.monotonic() - started
    message = str(raised.value)
    assert "delivers no sound (no sound for 4 s)" in message and "plugged in, not muted" in message, message
    assert message.endswith(f"Alternatives: {ALTERNATIVES}.") and "\n" not in message
    assert microphone.START_SECONDS <= waited < microphone.START_SECONDS + 3
    assert microphone_env.pactl("list", "short", "source-outputs") == ""  # the stream was closed


def test_a_microphone_that_stops_mid_stream_is_one_clear_line(microphone_env, spoken):
    errors, found = [], []

    def listen(feed) -> None:
        try:
            found.extend(utterances.stream_utterances(mic(), on_start=feed.start))
        except BaseException as error:  # noqa: BLE001 - reported by the test thread below
            errors.append(error)

    with microphone_env.pipe(np.concatenate([spoken, np.zeros(RATE, np.float32)]), stall_after=True) as feed:
        listener = threading.Thread(target=listen, args=(feed,), daemon=True)
        listener.start()
        listener.join(timeout=30)
        assert not listener.is_alive(), "stream_utterances still waits 30 s after the microphone went quiet"
    assert len(found) == 1  # what was heard before still came out
    assert [type(error) for error in errors] == [NoInputDeviceError]
    assert "stopped delivering sound (no sound for 2 s)" in str(errors[0]), errors[0]
    assert microphone_env.pactl("list", "short", "source-outputs") == ""


# No microphone ----------------------------------------------------------------------------------
@pytest.mark.parametrize("call", [
    lambda: microphone.record_seconds(1.0, RATE, alternatives=ALTERNATIVES),
    lambda: utterances.record_utterance(mic()),
    lambda: next(utterances.stream_utterances(mic())),
], ids=["record_seconds", "record_utterance", "stream_utterances"])
def test_no_input_device_is_one_clear_line(call, no_microphone_env, monkeypatch, capfd):
    for name, value in no_microphone_env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(NoInputDeviceError) as raised:
        call()
    message = str(raised.value)
    assert message.startswith("No microphone found") and ALTERNATIVES in message and "\n" not in message
    assert "ALSA lib" not in capfd.readouterr().err  # PortAudio's start-up noise is hidden


def test_no_input_device_in_a_fresh_process(no_microphone_env):
    script = ("from acoustics import microphone, errors\n"
              "try:\n    microphone.record_seconds(1.0, 16000, alternatives='--wav FILE')\n"
              "except errors.AcousticsError as error:\n    print(error)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, **no_microphone_env))
    assert done.returncode == 0
    assert done.stdout.strip().startswith("No microphone found") and "--wav FILE" in done.stdout
    assert done.stderr == ""


def test_without_portaudio(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyaudio", None)  # what 'import pyaudio' does without libportaudio2
    with pytest.raises(NoInputDeviceError, match="libportaudio2"):
        with microphone.open_pyaudio():
            pass


@pytest.mark.parametrize("call", [
    lambda: microphone.record_seconds(0.0, RATE, alternatives=ALTERNATIVES),
    lambda: microphone.Microphone(16000.0, alternatives=ALTERNATIVES),
    lambda: microphone.Microphone(RATE, alternatives=ALTERNATIVES, chunk_seconds=2.0),
])
def test_bad_arguments_are_refused_before_opening_a_device(call):
    with pytest.raises(BadParameterError):
        call()


def test_stderr_stays_silenced_until_the_last_of_two_threads_leaves():
    """Stage 5 opens the microphone in one thread while another imports Keras, both silencing stderr:
    when the first one leaves, the other must still be silenced, and the real stderr must come back."""
    script = """
import os, threading
from acoustics.quiet import stderr_silenced
entered, left = threading.Event(), threading.Event()
def other():
    with stderr_silenced():
        entered.set()
        left.wait()
        os.write(2, b"still inside the other thread\\n")
with stderr_silenced():
    thread = threading.Thread(target=other)
    thread.start()
    entered.wait()
    os.write(2, b"inside both\\n")
left.set()
thread.join()
os.write(2, b"after both\\n")
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "after both\n"
