"""Stage 5 (implement_model.py) run as a person runs it: a real model, espeak-ng speech, the virtual microphone.

One small CNN is trained per module (3 epochs on the model test database, in this process, ~15 s with
Keras' import); it separates the espeak-ng voices of the tests. Each implement_model.py run costs a few seconds
(the model loads in the background while the microphone listens), so the assertions are grouped per run.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile
from conftest import PYTHON, ROOT, run_stage, speak, with_sigint

from acoustics import audio
from acoustics.dbfile import create_database
from acoustics.settings import Settings

SCRIPT = "implement_model.py"
RATE = 16000


def train_plain_cnn(database_path, model_path, epochs: int = 6) -> None:
    """A CNN trained as stage 4 trains it, but on all 40 normalised MFCCs and without babble.

    train_models.py's recipe (babble, the first 20 coefficients) is tuned on real corpora with
    bench/accuracy.py; this plain one reaches 1.0 on this small espeak-ng database's test speakers in 6
    epochs of its cosine schedule (~15 s), so the tests can assert labels. (In 3, with the learning
    rate falling twice as fast, one test called a female voice male at 0.51.)
    """
    from acoustics import batches, models, networks, training
    from acoustics.database import FeatureDatabase

    with FeatureDatabase(database_path) as database:
        settings = database.settings
        index, _, _ = training.prepare_data(database, settings.seed)
        train_rows = index[index["subset"] == "train"]
        normalisation = training.feature_statistics(database, train_rows["feature_id"], settings)
    weights = training.balanced_class_weights(train_rows["label"],
                                              training.window_counts(train_rows["frame_count"], settings.frames))
    train = batches.WindowBatches(database_path, train_rows, settings, normalisation, batch_size=64, shuffle=True,
                                 seed=settings.seed, class_weights=weights)
    validation = batches.WindowBatches(database_path, index[index["subset"] == "validation"], settings, normalisation,
                                      batch_size=256)
    model = networks.build_model("cnn", settings, settings.seed, learning_rate=1e-3)
    models.fit_model(model, train, validation, epochs=epochs, verbose=0)
    # Recorded as having heard real voices, so that stage 5 answers with it as with a best.h5 trained on a
    # corpus (which model answers is tested in test_verdict.py).
    models.save_model(model, model_path, {"model_name": "cnn", "settings": settings, "normalisation": normalisation,
                                          "provenance": {"real_speakers": 12, "synthetic_speakers": 0}})


@pytest.fixture(scope="module")
def stage5(model_database, tmp_path_factory) -> dict:
    """A data folder (ACOUSTICS_DATA) with features.db and models/best.h5 of a freshly trained CNN."""
    data = tmp_path_factory.mktemp("stage5") / "data"
    data.mkdir()
    database = data / "features.db"
    database.write_bytes(model_database.read_bytes())
    train_plain_cnn(database, data / "models" / "best.h5")
    return {"data": data, "db": database, "model": data / "models" / "best.h5", "env": {"ACOUSTICS_DATA": str(data)}}


def spoken_signal(path, before: float = 0.6, after: float = 1.2) -> np.ndarray:
    """A clip at 16 kHz with silence before and after it."""
    clip, _ = audio.load_audio(path, RATE)
    return np.concatenate([np.zeros(int(before * RATE), np.float32), clip, np.zeros(int(after * RATE), np.float32)])


def p_male(line: str) -> float:
    """P(male) from a verdict line ("male voice (probability 0.93; sure)")."""
    found = re.search(r"(female|male) voice \(probability ([0-9.]+)", line)
    assert found, line
    return float(found.group(2)) if found.group(1) == "male" else 1 - float(found.group(2))


class Running:
    """implement_model.py in the background with its stdout read line by line."""

    def __init__(self, *arguments, env: dict) -> None:
        self.process = subprocess.Popen(with_sigint([PYTHON, ROOT / SCRIPT, *arguments]), cwd=ROOT, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        env=dict(os.environ, PYTHONUNBUFFERED="1", **env))
        self.lines: list = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.process.stdout), daemon=True)
        self._reader.start()

    def wait_for(self, pattern: str, timeout: float = 60, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while sum(bool(re.search(pattern, line)) for line in list(self.lines)) < count:
            if self.process.poll() is not None and not self._reader.is_alive() or time.monotonic() > deadline:
                self.process.kill()
                raise AssertionError(f"no {pattern!r} x{count}: {''.join(self.lines)}{self.process.stderr.read()}")
            time.sleep(0.02)

    def finish(self, timeout: float = 90) -> tuple:
        try:
            self.process.wait(timeout=timeout)
        finally:
            self.process.kill()
        self._reader.join(timeout=10)
        return self.process.returncode, "".join(self.lines), self.process.stderr.read()


def listen(stage5, virtual_microphone, signal_in, *arguments) -> tuple:
    """Run the default mode with ``signal_in`` fed through a pipe source once it says "Speak now"."""
    with virtual_microphone.pipe(signal_in) as feed:
        running = Running(*arguments, env=dict(stage5["env"], **virtual_microphone.env))
        running.wait_for("^Speak now")
        feed.start()
        return running.finish()


def assert_clean(code: int, out: str, err: str, expected_code: int = 0) -> None:
    assert code == expected_code, out + err
    assert "Traceback" not in out + err and "ALSA lib" not in err, out + err


def heard_in_process(stage5, signal_in, *arguments, data=None, source_class=None) -> tuple:
    """Stage 5's microphone mode (``--stream`` among ``arguments`` for the stream) in this process, with
    the microphone replaced by ``signal_in`` read from an :class:`acoustics.sources.ArraySource` as fast
    as it goes (the utterance logic, the verdicts and the saving are the script's own): ``(code, stdout)``.
    The PulseAudio end of it is tested by the tests above that run the script."""
    import implement_model
    from acoustics import listening, sources

    previous = os.environ.get("ACOUSTICS_DATA")
    os.environ["ACOUSTICS_DATA"] = str(data or stage5["data"])
    output = io.StringIO()
    try:
        with contextlib.redirect_stdout(output):
            parsed = implement_model.parse_arguments(["--plain", *map(str, arguments)])
            settings, loader = implement_model.start_loading(parsed)
            source = (source_class or sources.ArraySource)(signal_in, RATE, chunk_seconds=listening.CHUNK_SECONDS)
            listen = implement_model.listen_stream if parsed.stream else implement_model.listen_once
            code = listen(parsed, settings, loader, source)
    finally:
        if previous is None:
            os.environ.pop("ACOUSTICS_DATA")
        else:
            os.environ["ACOUSTICS_DATA"] = previous
    return code, output.getvalue()


# The microphone -----------------------------------------------------------------------------------
def test_one_utterance_is_detected_classified_and_saved(stage5, virtual_microphone, spoken_clips):
    spoken = spoken_signal(spoken_clips["male"])
    before = set((stage5["data"] / "recordings").glob("*.wav")) | set((stage5["data"] / "pictures").glob("*.png"))
    code, out, err = listen(stage5, virtual_microphone, spoken)
    assert_clean(code, out, err)
    lines = out.splitlines()
    assert lines[0] == f"Answering: the cnn model ({stage5['model']}), trained on 12 real and 0 synthetic voices."
    assert lines[1] == "Speak now: 'Guten Morgen, wie geht es Ihnen' (listening for up to 6 s)"
    verdict = next(line for line in lines if line.startswith("Verdict: "))
    assert verdict.startswith("Verdict: male voice (probability ") and p_male(verdict) > 0.5
    assert re.search(r"; (a close call|fairly sure|sure)\)\.$", verdict)
    assert any(line.startswith("Loaded the cnn model") for line in lines)
    assert "\x1b[" not in out and "█" not in out and "hearing speech" not in out, out  # stdout is a pipe: plain lines
    recordings = sorted(set((stage5["data"] / "recordings").glob("*.wav")) - before)
    pictures = sorted(set((stage5["data"] / "pictures").glob("verdict-*.png")) - before)
    assert len(recordings) == 1 and len(pictures) == 1 and pictures[0].stat().st_size > 10_000
    assert str(recordings[0]) in out and str(pictures[0]) in out
    recorded, rate = soundfile.read(recordings[0], dtype="float32")
    clip, _ = audio.load_audio(spoken_clips["male"], RATE)
    speech = audio.trim_silence(clip, 30)
    assert rate == RATE and speech.size <= recorded.size <= speech.size + int(0.9 * RATE)  # pre-roll and tail


@pytest.fixture(scope="module")
def comma_sentence(tmp_path_factory) -> dict:
    """"Guten Morgen" + 0.7 s of silence + "wie geht es Ihnen" (espeak-ng, each part trimmed) at 16 kHz."""
    folder = tmp_path_factory.mktemp("comma")
    first, second = (audio.trim_silence(audio.load_audio(speak(text, folder / f"{number}.wav", voice="de+m3", pitch=40),
                                                         RATE)[0], 30)
                     for number, text in enumerate(("Guten Morgen", "wie geht es Ihnen")))
    silence = np.zeros(int(0.7 * RATE), np.float32)
    return {"signal": spoken_signal_of(np.concatenate([first, silence, second])), "first": first}


def spoken_signal_of(clip: np.ndarray, before: float = 0.6, after: float = 1.5) -> np.ndarray:
    return np.concatenate([np.zeros(int(before * RATE), np.float32), clip, np.zeros(int(after * RATE), np.float32)])


def test_a_pause_at_the_comma_does_not_end_the_sentence(stage5, comma_sentence, tmp_path):
    code, out = heard_in_process(stage5, comma_sentence["signal"], "--model", stage5["model"], "--db", stage5["db"],
                                 data=tmp_path / "data")
    assert code == 0, out
    assert out.splitlines()[1] == "Speak now: 'Guten Morgen, wie geht es Ihnen' (listening for up to 6 s)"
    assert sum(line.startswith("Verdict: ") for line in out.splitlines()) == 1, out
    recorded, _ = soundfile.read(next((tmp_path / "data" / "recordings").glob("*.wav")), dtype="float32")
    assert recorded.size > comma_sentence["first"].size + 0.7 * RATE, "the sentence was cut at its comma"


def test_stream_with_a_short_pause_splits_at_the_comma(stage5, comma_sentence, tmp_path):
    code, out = heard_in_process(stage5, comma_sentence["signal"], "--stream", "--pause", 0.5, "--no-save",
                                 data=tmp_path / "data")
    assert code == 0, out
    assert len(re.findall(r"^\[[0-9:]+\] utterance \d+ \(", out, re.M)) == 2, out
    assert out.rstrip().endswith("Stopped listening after 2 utterances."), out


def test_pause_out_of_range_is_refused():
    done = run_stage(SCRIPT, "--pause", "0", timeout=60)
    assert done.returncode == 2 and "--pause must be between 0.1 and 5 seconds" in done.stderr, done.stderr


@pytest.mark.parametrize("kind", ["silence", "steady noise"])
def test_no_speech_is_said_not_guessed(kind, stage5, virtual_microphone, tmp_path):
    env = dict(stage5["env"], **virtual_microphone.env, ACOUSTICS_DATA=str(tmp_path / "data"))
    if kind == "silence":
        with virtual_microphone.pipe(np.zeros(3 * RATE, np.float32)) as feed:
            running = Running("--seconds", 2, "--model", stage5["model"], "--db", stage5["db"], env=env)
            running.wait_for("^Speak now")
            feed.start()
            code, out, err = running.finish(timeout=60)
    else:  # a fan: steady noise is in the room before the microphone opens, and all along
        noise = (np.random.default_rng(3).standard_normal(12 * RATE) * 10 ** (-30 / 20)).astype(np.float32)
        soundfile.write(tmp_path / "fan.wav", noise, RATE, subtype="PCM_16")
        player = virtual_microphone.play(tmp_path / "fan.wav")
        try:
            time.sleep(0.3)
            code, out, err = Running("--seconds", 2, "--model", stage5["model"], "--db", stage5["db"], env=env).finish(60)
        finally:
            player.terminate()
            player.wait(timeout=10)
    assert_clean(code, out, err)
    assert "Speak now" in out and "No speech detected" in out, out
    assert "male voice" not in out
    assert not (tmp_path / "data" / "recordings").exists()


@pytest.mark.parametrize("mode", [[], ["--stream"]], ids=["once", "stream"])
def test_a_microphone_that_delivers_nothing_ends_the_run_with_one_line(mode, stage5, virtual_microphone, tmp_path):
    env = dict(stage5["env"], **virtual_microphone.env, ACOUSTICS_DATA=str(tmp_path / "data"))
    with virtual_microphone.dead_pipe():
        done = run_stage(SCRIPT, *mode, "--model", stage5["model"], "--db", stage5["db"], env=env, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr and "ALSA lib" not in done.stderr, done.stderr
    assert "delivers no sound (no sound for 4 s)" in lines[0] and "plugged in, not muted" in lines[0], lines[0]
    assert "--wav FILE" in lines[0]
    assert "Speak now" not in done.stdout and "Listening" not in done.stdout
    assert not (tmp_path / "data" / "recordings").exists()


def test_a_microphone_that_stops_mid_stream_keeps_what_it_heard(stage5, spoken_clips, tmp_path):
    """The utterance heard before the microphone went quiet gets its verdict; the error then ends the run
    (main prints it as one line, as for a microphone that delivers nothing, tested above)."""
    from acoustics import errors, sources

    class Stalling(sources.ArraySource):
        def read(self):
            chunk = super().read()
            if not chunk.size:
                raise errors.NoInputDeviceError("The microphone stopped delivering sound (no sound for 2 s).")
            return chunk

    with pytest.raises(errors.NoInputDeviceError, match="stopped delivering sound"):
        heard_in_process(stage5, np.concatenate([spoken_signal(spoken_clips["male"]), np.zeros(RATE, np.float32)]),
                         "--stream", data=tmp_path / "data", source_class=Stalling)
    assert len(list((tmp_path / "data" / "recordings").glob("stream-*.wav"))) == 1


def test_play_listens_to_a_recording_in_real_time_without_a_microphone(stage5, no_microphone_env, spoken_clips, tmp_path):
    clip = tmp_path / "said.wav"
    soundfile.write(clip, spoken_signal(spoken_clips["female"], before=0.3), RATE, subtype="PCM_16")
    started = time.monotonic()
    done = run_stage(SCRIPT, "--play", clip, "--no-save", "--model", stage5["model"], "--db", stage5["db"],
                     env=dict(stage5["env"], **no_microphone_env), timeout=90)
    assert_clean(done.returncode, done.stdout, done.stderr)
    lines = done.stdout.splitlines()
    assert f"Playing {clip} (" in lines[1] and lines[1].endswith(" s) as if spoken into the microphone."), lines
    assert lines[2].startswith("Speak now: ") and re.search(r"^Verdict: female voice \(probability ", done.stdout, re.M)
    assert time.monotonic() - started > soundfile.info(clip).duration - 1.0  # in real time, to the end of the pause
    done = run_stage(SCRIPT, "--play", tmp_path / "missing.wav", env=stage5["env"], timeout=60)
    assert done.returncode == 1 and "missing.wav" in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    done = run_stage(SCRIPT, "--play", clip, clip, env=stage5["env"], timeout=60)
    assert done.returncode == 2 and "--play listens to one recording" in done.stderr, done.stderr
    done = run_stage(SCRIPT, "--play", tmp_path / ("a" * 300 + ".wav"), env=stage5["env"], timeout=60)
    assert done.returncode == 1 and done.stderr.startswith("Error: --play ") and "300" not in done.stdout, done.stderr


def test_no_microphone_is_one_line_pointing_to_wav(stage5, no_microphone_env):
    done = run_stage(SCRIPT, env=dict(stage5["env"], **no_microphone_env), timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr and "ALSA lib" not in done.stderr, done.stderr
    assert "No microphone found" in lines[0] and "--wav" in lines[0]
    assert "Speak now" not in done.stdout


def test_an_emodb_clip_as_if_spoken(stage5, emodb_dir, tmp_path):
    clip = emodb_dir / "wav" / "03a01Fa.wav"  # speaker 03, male, happy
    code, out = heard_in_process(stage5, spoken_signal(clip), "--no-save", data=tmp_path / "data")
    assert code == 0, out
    verdict = next(line for line in out.splitlines() if line.startswith("Verdict: "))
    assert re.match(r"Verdict: (male|female) voice \(probability (0\.[5-9]\d|1\.00); ", verdict), verdict
    assert not (tmp_path / "data" / "recordings").exists()


# Files ------------------------------------------------------------------------------------------
def test_wav_folder_with_csv(stage5, spoken_clips, tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    for sex, path in spoken_clips.items():
        (folder / f"{sex}.wav").write_bytes(path.read_bytes())
    soundfile.write(folder / "silence.wav", np.zeros(RATE, np.float32), RATE)
    soundfile.write(folder / "hum.wav", (0.1 * np.sin(2 * np.pi * 100 * np.arange(2 * RATE) / RATE)).astype(np.float32), RATE)
    out_csv = tmp_path / "verdicts.csv"
    done = run_stage(SCRIPT, "--wav", folder, "--csv", out_csv, env=stage5["env"], timeout=120)
    assert_clean(done.returncode, done.stdout, done.stderr, expected_code=1)  # some files got no verdict
    lines = {Path(line.split(": ", 1)[0]).name: line.split(": ", 1)[1] for line in done.stdout.splitlines()
             if line.startswith(str(folder))}
    assert set(lines) == {"male.wav", "female.wav", "silence.wav", "hum.wav"}
    assert lines["male.wav"].startswith("male voice") and lines["female.wav"].startswith("female voice")
    assert "silent" in lines["silence.wav"] and "no speech detected" in lines["hum.wav"]
    assert f"Wrote 4 rows to {out_csv}." in done.stdout
    assert "Classified 2 of 4 files: 1 male, 1 female; 2 files got no verdict (their lines say why)." in done.stdout
    with open(out_csv, newline="") as handle:
        reader = csv.DictReader(handle)
        rows = {Path(row["path"]).name: row for row in reader}
    assert reader.fieldnames[:5] == ["path", "label", "probability", "duration", "speech_seconds"]
    assert rows["male.wav"]["label"] == "male" and rows["female.wav"]["label"] == "female"
    for name in ("male.wav", "female.wav"):
        assert 0.5 <= float(rows[name]["probability"]) <= 1
        duration = soundfile.info(str(folder / name)).duration
        assert float(rows[name]["duration"]) == pytest.approx(duration, abs=0.01)
        assert 0.5 < float(rows[name]["speech_seconds"]) <= duration
    for name in ("silence.wav", "hum.wav"):
        assert rows[name]["label"] == "" and rows[name]["probability"] == "" and float(rows[name]["speech_seconds"]) == 0


def test_files_without_wav_json_and_p_male(stage5, spoken_clips, tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    (folder / "female.wav").write_bytes(spoken_clips["female"].read_bytes())
    soundfile.write(folder / "silence.flac", np.zeros(RATE, np.float32), RATE)
    out_csv = tmp_path / "verdicts.csv"
    done = run_stage(SCRIPT, spoken_clips["male"], folder, "--json", "--csv", out_csv, env=stage5["env"], timeout=120)
    assert_clean(done.returncode, done.stdout, done.stderr, expected_code=1)  # the silence got no verdict
    objects = [json.loads(line) for line in done.stdout.splitlines()]  # nothing but JSON on stdout
    assert [Path(item["path"]).name for item in objects] == ["male.wav", "female.wav", "silence.flac"]
    assert all(list(item) == ["path", "label", "p_male", "probability", "duration", "speech_seconds", "note"]
               for item in objects)
    male, female, silence = objects
    assert male["label"] == "male" and male["p_male"] == male["probability"] > 0.5
    assert female["label"] == "female" and female["p_male"] == pytest.approx(1 - female["probability"], abs=1e-4)
    assert silence["label"] is None and silence["p_male"] is None and "silent" in silence["note"]
    assert "Classified 2 of 3 files" in done.stderr and f"Wrote 3 rows to {out_csv}." in done.stderr
    with open(out_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(row["p_male"]) for row in rows[:2]] == [male["p_male"], female["p_male"]] and rows[2]["p_male"] == ""
    refused = run_stage(SCRIPT, "--json", env=stage5["env"], timeout=60)
    assert refused.returncode == 1 and "--json needs files" in refused.stderr, refused.stderr


def test_many_files_get_the_verdicts_each_gets_alone(stage5, spoken_clips, tmp_path, monkeypatch):
    from acoustics import fileverdicts, models, verdict

    model, metadata = models.load_model(stage5["model"])
    paths = []
    for number, (sex, gain, before) in enumerate([(sex, gain, before) for sex in ("male", "female")
                                                  for gain, before in ((1.0, 0.0), (0.3, 0.5), (0.8, 1.5))]):
        paths.append(tmp_path / f"{number}-{sex}.wav")
        soundfile.write(paths[-1], gain * spoken_signal(spoken_clips[sex], before=before, after=0.3), RATE)
    paths.insert(3, tmp_path / "missing.wav")
    (tmp_path / "text.wav").write_text("not audio")
    paths.append(tmp_path / "text.wav")
    monkeypatch.setattr(fileverdicts, "FILES_PER_PREDICTION", 3)  # batches of several files, the last one short
    batched = list(fileverdicts.file_verdicts(model, metadata, paths))
    assert [path for path, _ in batched] == paths
    for path, result in batched:
        alone = fileverdicts.prepare_file(metadata, path)
        if isinstance(alone, verdict.Prepared):
            alone = verdict.classify_signal(model, metadata, audio.load_audio(path, RATE)[0], path)
            assert result.probability_male == pytest.approx(alone.probability_male, abs=1e-6)
        assert fileverdicts.record_of(path, result) == fileverdicts.record_of(path, alone)
    assert sum(result.label is not None for _, result in batched) == 6


@pytest.mark.parametrize("count, terminal, shown", [(11, True, True), (10, True, False), (100, False, False)])
def test_a_progress_bar_for_many_files_on_a_terminal(count, terminal, shown, monkeypatch):
    import implement_model

    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    with implement_model.progress_bar(count) as bar:
        assert bar.disable is not shown


def test_hostile_files_and_models_get_one_line_each(stage5, tmp_path):
    sys.path.insert(0, str(ROOT / "tests"))
    from hostile import run_hostile_stage5

    count, failures = run_hostile_stage5(tmp_path / "hostile", stage5["model"], stage5["db"])
    assert count >= 20
    assert failures == []


@pytest.mark.parametrize("kind", ["text", "other version", "settings"])
def test_a_bad_model_is_one_line_before_the_microphone_opens(kind, stage5, tmp_path, virtual_microphone):
    model = tmp_path / "model.h5"
    database = stage5["db"]
    if kind == "text":
        model.write_text("hello")
        words = ("not a model made by train_models.py",)
    elif kind == "other version":
        model.write_bytes(stage5["model"].read_bytes())
        with h5py.File(model, "a") as handle:
            handle.attrs["acoustics_version"] = "2.0.0"
        words = ("made by version 2.0.0", "train_models.py")
    else:
        model.write_bytes(stage5["model"].read_bytes())
        database = tmp_path / "other.db"
        create_database(database, Settings(n_mfcc=13))
        words = ("different feature settings", "n_mfcc", "train_models.py")
    done = run_stage(SCRIPT, "--model", model, "--db", database, env=dict(stage5["env"], **virtual_microphone.env),
                     timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert all(word in lines[0] for word in words) and str(model) in lines[0], lines[0]
    assert "Speak now" not in done.stdout and "Loaded" not in done.stdout



# Speech a person hears gets a verdict -------------------------------------------------------------
#: The quietest RAVDESS takes (trimmed speech at -62 to -58 dBFS), refused as silent or speechless before.
QUIET_RAVDESS = ["Actor_09/03-01-04-01-01-01-09.flac", "Actor_09/03-01-02-02-01-01-09.flac",
                 "Actor_09/03-01-06-01-01-01-09.flac", "Actor_20/03-01-02-02-02-01-20.flac"]
#: LibriSpeech clips that start with speech at once (the live detector's calibration heard no floor).
LIBRISPEECH_CLIPS = ["train-clean-100/1363-135842-0000.flac", "train-clean-100/445-123857-0000.flac"]


@pytest.fixture(scope="module")
def loaded(stage5) -> tuple:
    """``(model, metadata)`` of the module's CNN, loaded in this process."""
    from acoustics import models

    return models.load_model(stage5["model"])


def classify(loaded, signal: np.ndarray, name: str = "clip"):
    from acoustics.verdict import classify_signal

    return classify_signal(*loaded, np.asarray(signal, dtype=np.float32), name)


@pytest.mark.parametrize("clip", QUIET_RAVDESS)
def test_quiet_ravdess_takes_get_a_verdict(clip, loaded, ravdess_dir):
    signal, _ = audio.load_audio(ravdess_dir / "flac" / clip, RATE)
    result = classify(loaded, signal)
    assert result.label in ("male", "female"), result.note
    assert result.note.startswith("quiet: ") and result.sentence().endswith(f"[{result.note}]")


@pytest.mark.parametrize("clip", LIBRISPEECH_CLIPS)
def test_speech_from_the_first_sample_gets_a_verdict(clip, loaded, librispeech_dir):
    signal, _ = audio.load_audio(librispeech_dir / "flac" / clip, RATE)
    result = classify(loaded, signal)
    assert result.label in ("male", "female") and result.note == "", result.note


def emodb_variant(clip: np.ndarray, kind: str) -> np.ndarray:
    """An EmoDB clip made poor the way real recordings are: quiet, clipped, or in noise."""
    speech = audio.trim_silence(clip, 30)
    if kind == "-60 dBFS":
        return clip * 10 ** ((-60 - audio.level_dbfs(clip)) / 20)
    if kind == "1 % clipped":
        return np.clip(clip * audio.CLIP_LEVEL / np.quantile(np.abs(speech), 0.99), -1, 1)
    noise = np.random.default_rng(5).standard_normal(clip.size) * 10 ** (audio.level_dbfs(speech) / 20)
    return np.clip(clip + noise, -1, 1)  # white noise as strong as the speech: 0 dB SNR


@pytest.mark.parametrize("kind, note", [("-60 dBFS", "quiet: -"), ("1 % clipped", "clipped 1.0 %"),
                                        ("0 dB SNR white noise", "noisy")])
def test_poor_but_audible_speech_gets_a_verdict_with_a_note(kind, note, loaded, emodb_dir):
    clip, _ = audio.load_audio(emodb_dir / "wav" / "03a01Fa.wav", RATE)  # speaker 03, male
    result = classify(loaded, emodb_variant(clip, kind))
    assert result.label in ("male", "female") and result.probability_male is not None, result.note
    assert note in result.note and result.sentence().endswith(f"[{result.note}]"), result.sentence()


@pytest.mark.parametrize("kind", ["digital silence", "constant value", "440 Hz sine", "white noise"])
def test_no_speech_still_gets_no_verdict(kind, loaded):
    seconds = np.arange(3 * RATE) / RATE
    signal = {
        "digital silence": np.zeros(3 * RATE),
        "constant value": np.full(3 * RATE, 0.3),
        "440 Hz sine": 0.5 * np.sin(2 * np.pi * 440 * seconds),
        "white noise": np.random.default_rng(2).standard_normal(3 * RATE) * 0.1,
    }[kind]
    result = classify(loaded, signal)
    assert result.label is None and result.probability_male is None
    assert ("silent" if kind == "digital silence" else "no speech detected") in result.note


def test_wav_notes_reach_the_printed_line_and_the_csv(stage5, spoken_clips, tmp_path):
    clip, _ = audio.load_audio(spoken_clips["female"], RATE)
    folder = tmp_path / "poor"
    folder.mkdir()
    soundfile.write(folder / "quiet.wav", clip * 10 ** ((-62 - audio.level_dbfs(clip)) / 20), RATE, subtype="PCM_16")
    soundfile.write(folder / "white.wav", np.random.default_rng(1).standard_normal(2 * RATE) * 0.05, RATE, subtype="PCM_16")
    out_csv = tmp_path / "verdicts.csv"
    done = run_stage(SCRIPT, "--wav", folder, "--csv", out_csv, env=stage5["env"], timeout=120)
    assert_clean(done.returncode, done.stdout, done.stderr, expected_code=1)  # some files got no verdict
    lines = {Path(line.split(": ", 1)[0]).name: line.split(": ", 1)[1] for line in done.stdout.splitlines()
             if line.startswith(str(folder))}
    assert re.fullmatch(r"(fe)?male voice \(probability [0-9.]+; [a-z ]+\) \[quiet: -\d+ dBFS\]", lines["quiet.wav"])
    assert lines["white.wav"].startswith("no speech detected")
    with open(out_csv, newline="") as handle:
        rows = {Path(row["path"]).name: row for row in csv.DictReader(handle)}
    assert rows["quiet.wav"]["label"] in ("male", "female") and rows["quiet.wav"]["note"].startswith("quiet: -")
    assert rows["white.wav"]["label"] == "" and rows["white.wav"]["note"].startswith("no speech detected")


# Two models side by side -------------------------------------------------------------------------
def test_compare_shows_both_models_side_by_side_with_the_truth(stage5, spoken_clips, tmp_path):
    folder = tmp_path / "holdout"
    folder.mkdir()
    (folder / "male-voice.wav").write_bytes(spoken_clips["male"].read_bytes())
    (folder / "female-voice.wav").write_bytes(spoken_clips["female"].read_bytes())
    done = run_stage(SCRIPT, folder, "--model", stage5["model"], "--compare", stage5["model"], env=stage5["env"], timeout=180)
    assert_clean(done.returncode, done.stdout, done.stderr)
    lines = done.stdout.splitlines()
    header = next(line for line in lines if line.startswith("file"))
    assert header.count(f"cnn ({stage5['model']})") == 2 and "truth" in header
    assert re.search(r"^male-voice\.wav\s+male\s+male 0\.\d\d, right\s+male 0\.\d\d, right", done.stdout, re.M), done.stdout
    assert re.search(r"^female-voice\.wav\s+female\s+female", done.stdout, re.M), done.stdout
    scores = [line for line in lines if ": right on " in line]
    assert len(scores) == 2 and all("right on 2 of 2 (female 1 of 1, male 1 of 1)" in line for line in scores)


def test_a_labelled_sample_is_balanced_and_spread_over_speakers(emodb_dir):
    from acoustics import compare

    paths, sexes = compare.labelled_sample(emodb_dir / "labels.csv", 20, seed=42)
    assert len(paths) == 20 and sexes.count("female") == sexes.count("male") == 10
    speakers = {Path(path).name[:2] for path in paths}
    assert len(speakers) == 10  # every EmoDB actor, two clips each
    assert compare.labelled_sample(emodb_dir / "labels.csv", 20, seed=42) == (paths, sexes)
    assert len(compare.labelled_sample(emodb_dir / "labels.csv", 0, seed=1)[0]) == 535
