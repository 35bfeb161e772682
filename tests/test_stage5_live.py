"""Stage 5 as the instructor's live instrument: the live view in a terminal, --stream answering the person at
the microphone and not the room, and the numbered recordings of --stream.

Uses the small CNN of tests/test_stage5.py (trained once for this module) and the virtual microphone.
"""

from __future__ import annotations

import fcntl
import os
import re
import signal
import struct
import subprocess
import termios
import threading
import time

import numpy as np
import pytest
import soundfile
from conftest import PYTHON, ROOT
from test_stage5 import RATE, SCRIPT, Running, assert_clean, p_male, spoken_signal, stage5  # noqa: F401 - stage5 is a fixture

from acoustics import audio, democorpus, mixing
from acoustics.settings import Paths, Settings
from acoustics.verdict import Verdict


def at_level(signal: np.ndarray, dbfs: float) -> np.ndarray:
    """``signal`` scaled so that its speech (silence trimmed) has an RMS level of ``dbfs``."""
    return (signal * 10 ** ((dbfs - audio.level_dbfs(audio.trim_silence(signal, 30))) / 20)).astype(np.float32)


def model_arguments(stage5) -> list:
    return ["--model", stage5["model"], "--db", stage5["db"]]


# --stream: the person at the microphone, not the room ------------------------------------------------
@pytest.fixture(scope="module")
def babble(tmp_path_factory) -> np.ndarray:
    """8 s of six-talker babble (espeak-ng voices of other languages) at -30 dBFS."""
    folder = tmp_path_factory.mktemp("babble")
    talkers = [audio.load_audio(path, RATE)[0] for path in democorpus.make_babble_voices(folder)]
    return mixing.babble_noise(talkers, 8.0, RATE, np.random.default_rng(11), level_dbfs_target=-30.0)


def test_stream_ignores_babble_and_answers_the_speaker_and_saves_each(stage5, virtual_microphone, spoken_clips, babble,
                                                                       tmp_path):
    """--stream through the microphone: a man, room babble, a woman; two verdicts (none for the babble),
    each saved, and Ctrl-C ends the run with how many utterances it heard."""
    silence = np.zeros(RATE, np.float32)
    male = at_level(spoken_signal(spoken_clips["male"], after=0), -20)
    female = at_level(spoken_signal(spoken_clips["female"], before=0), -20)
    data = tmp_path / "data"
    (data / "recordings").mkdir(parents=True)
    (data / "recordings" / "stream-0007.wav").write_bytes(b"an earlier session's")
    with virtual_microphone.pipe(np.concatenate([male, silence, babble, silence, female, silence])) as feed:
        running = Running("--stream", *model_arguments(stage5),
                          env=dict(stage5["env"], **virtual_microphone.env, ACOUSTICS_DATA=str(data)))
        running.wait_for("^Listening")
        feed.start()
        running.wait_for(r"utterance \d+ \(", count=2, timeout=90)
        time.sleep(1.0)  # nothing more may come
        running.process.send_signal(signal.SIGINT)
        code, out, err = running.finish(timeout=30)
    assert_clean(code, out, err)
    verdicts = [line for line in out.splitlines() if re.search(r"utterance \d+ \(", line)]
    assert len(verdicts) == 2, out  # the babble between them got none
    assert "utterance 1 (" in verdicts[0] and "): male voice" in verdicts[0], out
    assert "utterance 2 (" in verdicts[1] and "): female voice" in verdicts[1], out
    assert p_male(verdicts[0]) > p_male(verdicts[1])
    assert "ignored" not in out  # plain lines: nothing for what the gate ignored
    assert out.rstrip().endswith("Stopped listening after 2 utterances.")
    for number, line in zip((8, 9), verdicts):
        wav, png = data / "recordings" / f"stream-{number:04d}.wav", data / "pictures" / f"stream-{number:04d}.png"
        assert line.endswith(f"(saved as {wav}, picture {png})"), line
        assert soundfile.info(wav).samplerate == RATE and png.stat().st_size > 10_000
    assert (data / "recordings" / "stream-0007.wav").read_bytes() == b"an earlier session's"


def test_stream_recordings_number_on_after_earlier_sessions(tmp_path):
    from acoustics import listening

    paths = Paths(data_dir=tmp_path)
    paths.pictures.mkdir(parents=True)
    (paths.pictures / "stream-0041.png").write_bytes(b"")
    warnings = []
    recordings = listening.StreamRecordings(paths, on_warning=warnings.append)
    result = Verdict("male", 0.9, 1.0, 0.8)
    metadata = {"settings": Settings()}
    first = recordings.save(np.zeros(RATE, np.float32), result, metadata, "Utterance 1")
    second = recordings.save(np.zeros(RATE, np.float32), result, metadata, "Utterance 2")
    recordings.close()
    assert [path.name for path in first + second] == ["stream-0042.wav", "stream-0042.png", "stream-0043.wav",
                                                      "stream-0043.png"]
    assert all(path.exists() for path in first + second) and warnings == []


# The live view in a terminal --------------------------------------------------------------------------
class Terminal:
    """implement_model.py with its stdout on a pseudo-terminal of 30 x 110; everything it draws is kept."""

    def __init__(self, *arguments, env: dict) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 110, 0, 0))
        self.process = subprocess.Popen([PYTHON, str(ROOT / SCRIPT), *map(str, arguments)], cwd=ROOT, stdout=slave,
                                        stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                        env=dict(os.environ, TERM="xterm-256color", COLUMNS="110", LINES="30", **env))
        os.close(slave)
        self._master = master
        self.screen = bytearray()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self._master, 4096)
            except OSError:  # EIO: the process closed the terminal
                break
            if not data:
                break
            self.screen += data

    def text(self) -> str:
        """What was drawn, without the escape sequences (colours, cursor moves)."""
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", self.screen.decode("utf-8", "replace"))

    def wait_for(self, pattern: str, timeout: float = 60) -> int:
        """The offset in the output where ``pattern`` first appears (AssertionError after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text())
            if found:
                return found.start()
            if self.process.poll() is not None and not self.reader.is_alive():
                break
            time.sleep(0.02)
        self.process.kill()
        raise AssertionError(f"no {pattern!r} on the terminal: {self.text()[-3000:]!r} {self.process.stderr.read()}")

    def finish(self, timeout: float = 60) -> int:
        try:
            self.process.wait(timeout=timeout)
        finally:
            self.process.kill()
        self.reader.join(timeout=10)
        os.close(self._master)
        return self.process.returncode


def test_live_view_shows_the_meter_and_state_then_the_verdict_with_its_bar(stage5, virtual_microphone, spoken_clips,
                                                                            tmp_path):
    clip = tmp_path / "male.wav"
    soundfile.write(clip, at_level(spoken_signal(spoken_clips["male"], before=0.3, after=1.5), -20), RATE,
                    subtype="PCM_16")
    terminal = Terminal(*model_arguments(stage5), "--no-save", env=dict(stage5["env"], **virtual_microphone.env))
    terminal.wait_for("Speak now: ")
    player = virtual_microphone.play(clip)  # in real time: the meter has seconds to move
    try:
        hearing = terminal.wait_for("hearing speech", timeout=30)
        decided = terminal.wait_for(r"P\(male\) [01]\.\d\d", timeout=60)
        assert terminal.finish() == 0, terminal.text()
    finally:
        player.wait(timeout=30)
    screen = terminal.text()
    assert hearing < decided and "waiting for speech" in screen[:hearing]
    meters = re.findall(r"level (█*)░*\s+(-\d+) dBFS", screen[:decided])
    assert any(len(bar) >= 10 for bar, _ in meters), screen[:decided][-2000:]  # it moved with the voice
    assert re.search(r"Verdict: male voice \(probability [0-9.]+; [a-z ]+\)\.", screen)  # the plain line too
    assert re.search(r"female 0 █+░* 1 male   P\(male\) (0\.[5-9]\d|1\.00)", screen), screen[-2000:]
    assert re.search(r"\d\.\d s of speech used", screen)
    assert b"\x1b[" in terminal.screen and "Traceback" not in screen
