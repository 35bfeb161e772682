"""Segments of recordings (acoustics/segments.py and implement_model.py --segments).

The espeak-ng conversation uses a small CNN trained as tests/test_stage5.py trains its own, on the model
test database but for 10 epochs (~20 s): its turns of under 2 s without a pause between them are hardly
longer than a 1.6 s window, and after 6 epochs the model was too unsure to split them. Memory, chunking
and refusals use a cheap stub model, since they test the streaming and segmentation alone.
"""

from __future__ import annotations

import csv
import re
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import run_stage, speak

from acoustics import audio, noisefloor, segments
from acoustics.errors import BadAudioError
from acoustics.recipe import Recipe
from acoustics.settings import Settings
from acoustics.training import Normalisation

SCRIPT = "implement_model.py"
RATE = 16000
#: (voice, pitch, sentence) of the conversation: man, pause, woman, man, woman.
TURNS = [("de+m3", 40, "Guten Morgen, wie geht es Ihnen heute"), ("de+f2", 60, "Danke, mir geht es sehr gut"),
         ("de+m1", 35, "Das Wetter ist heute wirklich schön"), ("de+f4", 70, "Ich lese gern ein gutes Buch")]
PAUSE_SECONDS = 1.0


class StubModel:
    """Stands in for a Keras model: P(male) of each window from its first normalised coefficient."""

    def predict_on_batch(self, windows):
        return 1 / (1 + np.exp(-np.asarray(windows)[:, :, 0].mean(axis=1, keepdims=True)))


def stub_metadata() -> dict:
    settings = Settings()
    return {"settings": settings, "normalisation": Normalisation(np.full(40, -200.0), np.full(40, 50.0)),
            "recipe": Recipe(), "temperature": 1.0}


@pytest.fixture(scope="module")
def segment_model(model_database, tmp_path_factory) -> Path:
    """A CNN trained on the model test database as test_stage5's stage5 fixture trains it, for 10 epochs."""
    from test_stage5 import train_plain_cnn

    folder = tmp_path_factory.mktemp("segments")
    database = folder / "features.db"
    database.write_bytes(model_database.read_bytes())
    train_plain_cnn(database, folder / "best.h5", epochs=10)
    return folder / "best.h5"


@pytest.fixture(scope="module")
def conversation(tmp_path_factory) -> tuple:
    """``(path, truth)``: the espeak-ng turns (trimmed) with the pause after the first, quiet room
    noise throughout; truth lists (label, start, stop) of each turn in seconds."""
    folder = tmp_path_factory.mktemp("conversation")
    pieces, truth, time = [np.zeros(int(0.5 * RATE), np.float32)], [], 0.5
    for number, (voice, pitch, sentence) in enumerate(TURNS):
        clip, _ = audio.load_audio(speak(sentence, folder / f"turn{number}.wav", voice=voice, pitch=pitch), RATE)
        clip = audio.trim_silence(clip, 30)
        truth.append(("male" if "+m" in voice else "female", time, time + clip.size / RATE))
        pieces.append(clip)
        time += clip.size / RATE
        if number == 0:
            pieces.append(np.zeros(int(PAUSE_SECONDS * RATE), np.float32))
            time += PAUSE_SECONDS
    pieces.append(np.zeros(int(0.5 * RATE), np.float32))
    signal = np.concatenate(pieces)
    signal = signal + np.random.default_rng(0).standard_normal(signal.size).astype(np.float32) * 10 ** (-65 / 20)
    path = folder / "conversation.wav"
    soundfile.write(path, signal, RATE, subtype="PCM_16")
    return path, truth


def speech_segments(segmentation) -> list:
    return [segment for segment in segmentation.segments if segment.label != "no_speech"]


def test_man_pause_woman_man_woman(segment_model, conversation):
    from acoustics import models

    model, metadata = models.load_model(segment_model)
    path, truth = conversation
    result = segments.segment_file(model, metadata, path)
    found = speech_segments(result)
    assert [segment.label for segment in found] == ["male", "female", "male", "female"], result.segments
    for segment, (label, start, stop) in zip(found, truth):
        assert segment.start == pytest.approx(start, abs=0.3) and segment.stop == pytest.approx(stop, abs=0.3), (segment, start, stop)
        assert (segment.p_male > 0.5) == (label == "male")
    pause = [segment for segment in result.segments if segment.label == "no_speech" and segment.start > 1.0]
    assert pause and pause[0].seconds == pytest.approx(PAUSE_SECONDS, abs=0.3)
    assert result.segments[0].start == 0 and result.segments[-1].stop == pytest.approx(result.duration)
    assert all(a.stop == b.start for a, b in zip(result.segments, result.segments[1:]))


def test_the_script_prints_writes_rows_and_a_picture(segment_model, conversation, tmp_path):
    path, _ = conversation
    (tmp_path / "text.wav").write_text("not audio")
    out_csv = tmp_path / "segments.csv"
    done = run_stage(SCRIPT, "--segments", path, tmp_path / "text.wav", "--csv", out_csv, "--model", segment_model,
                     "--db", tmp_path / "none.db", env={"ACOUSTICS_DATA": str(tmp_path / "data")}, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stdout + done.stderr  # text.wav: no segments
    assert "Segmented 1 of 2 files" in done.stdout and "1 file got no segments" in done.stdout
    assert re.search(rf"^{re.escape(str(path))}: \d+ segments in [0-9.]+ s: [0-9.]+ s male, [0-9.]+ s female", done.stdout, re.M)
    assert re.search(r"^ +\d+\.\d{3} +\d+\.\d{3}  male +p_male 0\.\d\d$", done.stdout, re.M), done.stdout
    bad = [line for line in done.stdout.splitlines() if "text.wav" in line]
    assert len(bad) == 1 and "no segments: not a readable audio file" in bad[0], bad
    with open(out_csv, newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames == ["path", "label", "start", "stop", "p_male"]
    assert {row["label"] for row in rows} == {"male", "female", "no_speech"}
    for row in rows:
        assert row["path"] == str(path) and re.fullmatch(r"\d+\.\d{3}", row["start"]) and re.fullmatch(r"\d+\.\d{3}", row["stop"])
        assert (row["p_male"] == "") == (row["label"] == "no_speech")
        assert row["p_male"] == "" or re.fullmatch(r"0\.\d{3}|1\.000", row["p_male"])
    assert f"Wrote {len(rows)} rows to {out_csv}." in done.stdout
    assert (tmp_path / "segments-conversation.png").stat().st_size > 10_000
    assert "Segmented 1 of 2 files" in done.stdout


def test_silence_is_one_no_speech_segment(tmp_path):
    path = tmp_path / "silence.wav"
    soundfile.write(path, np.random.default_rng(1).standard_normal(3 * RATE) * 1e-3, RATE, subtype="PCM_16")
    for signal_path in (path,):
        result = segments.segment_file(StubModel(), stub_metadata(), signal_path)
        assert [(s.label, s.start, s.stop, s.p_male) for s in result.segments] == [("no_speech", 0.0, 3.0, None)]
    zeros = segments.segment_signal(StubModel(), stub_metadata(), np.zeros(RATE // 10, np.float32))
    assert [(s.label, s.start, s.stop) for s in zeros.segments] == [("no_speech", 0.0, 0.1)]


@pytest.mark.parametrize("kind", ["missing", "text", "empty"])
def test_a_bad_file_is_a_clear_error(kind, tmp_path):
    path = tmp_path / "bad.wav"
    if kind == "text":
        path.write_text("hello")
    elif kind == "empty":
        path.write_bytes(b"")
    with pytest.raises(BadAudioError, match=re.escape(str(path))):
        segments.segment_file(StubModel(), stub_metadata(), path)


def test_segments_needs_files():
    done = run_stage(SCRIPT, "--segments", timeout=60)
    assert done.returncode == 1 and "--segments needs files" in done.stderr, done.stderr


def looped_file(path: Path, clips: list, minutes: float, rate: int) -> Path:
    """A long file written block by block: the clips and 0.4 s pauses, looped, with quiet noise."""
    rng = np.random.default_rng(2)
    pause = np.zeros(int(0.4 * rate), np.float32)
    with soundfile.SoundFile(path, "w", rate, 1, subtype="PCM_16") as handle:
        written = 0
        while written < minutes * 60 * rate:
            for clip in clips:
                block = np.concatenate([clip, pause])
                handle.write(block + rng.standard_normal(block.size).astype(np.float32) * 1e-3)
                written += block.size
    return path


@pytest.fixture(scope="module")
def voices(tmp_path_factory) -> list:
    folder = tmp_path_factory.mktemp("voices")
    return [audio.load_audio(speak(sentence, folder / f"{number}.wav", voice=voice, pitch=pitch), RATE)[0]
            for number, (voice, pitch, sentence) in enumerate(TURNS)]


def peak_memory(function) -> tuple:
    """``(result, peak bytes)`` of ``function()`` as tracemalloc counts them (numpy's arrays included)."""
    tracemalloc.start()
    try:
        result = function()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_long_file_streams_in_bounded_memory_and_agrees_with_one_piece(voices, tmp_path):
    metadata = stub_metadata()
    short = looped_file(tmp_path / "short.wav", voices, 2, RATE)
    long = looped_file(tmp_path / "long.wav", voices, 20, RATE)
    segments.segment_file(StubModel(), metadata, short)  # the first run also compiles and caches (librosa, numba)
    _, short_peak = peak_memory(lambda: segments.segment_file(StubModel(), metadata, short))
    streamed, long_peak = peak_memory(lambda: segments.segment_file(StubModel(), metadata, long))
    signal_bytes = soundfile.info(str(long)).frames * 4
    assert long_peak < short_peak + 3e6 and long_peak < signal_bytes / 3, (short_peak, long_peak, signal_bytes)
    signal = audio.DCBlocker(RATE)(soundfile.read(long, dtype="float32")[0])  # as every file is read
    whole = segments.segment_signal(StubModel(), metadata, signal, chunk_seconds=7.3)
    assert len(streamed.segments) == len(whole.segments) > 500
    for a, b in zip(streamed.segments, whole.segments):
        assert (a.label, a.start, a.stop) == (b.label, b.start, b.stop)
        assert a.p_male == pytest.approx(b.p_male, abs=1e-4) if a.p_male is not None else b.p_male is None


def test_resampled_blocks_agree_with_the_whole_file(voices, tmp_path):
    path = tmp_path / "44k.wav"
    signal = np.concatenate(voices + voices)
    soundfile.write(path, audio.resample(signal, RATE, 44100), 44100, subtype="FLOAT")
    streamed = np.concatenate(list(segments.read_blocks(path, RATE, block_seconds=0.7)))
    whole, _ = audio.load_audio(path, RATE)
    assert abs(streamed.size - whole.size) <= 2
    count = min(streamed.size, whole.size)
    assert np.max(np.abs(streamed[:count] - whole[:count])) < 1e-3


def test_a_segment_report_words_counts_and_writes_each_file(tmp_path):
    from acoustics.segmentreport import SegmentReport

    result = segments.Segmentation([segments.Segment("no_speech", 0.0, 0.5), segments.Segment("male", 0.5, 2.25, 0.8123)],
                                   2.25, 0.01, np.zeros(225, np.float32), np.full(225, np.nan))
    report = SegmentReport(tmp_path)
    assert report.add(tmp_path / "a.wav", result) == [
        f"{tmp_path / 'a.wav'}: 2 segments in 2.2 s: 1.8 s male, 0.0 s female, 0.5 s without speech",
        "      0.000     0.500  no_speech", "      0.500     2.250  male       p_male 0.81"]
    report.pictures.append(tmp_path / "segments-a.png")  # as if saved: the next file named "a" numbers on
    assert report.picture_path(tmp_path / "other" / "a.flac") == tmp_path / "segments-a-2.png"
    report.write_csv(tmp_path / "segments.csv")
    assert (tmp_path / "segments.csv").read_text().splitlines() == [
        "path,label,start,stop,p_male", f"{tmp_path / 'a.wav'},no_speech,0.000,0.500,", f"{tmp_path / 'a.wav'},male,0.500,2.250,0.812"]
    assert report.totals_line(2) == ("Segmented 1 of 2 files: 1.8 s male, 0.0 s female, 0.5 s without speech; "
                                     "1 file got no segments (its line says why).")
    assert report.totals_line(1).endswith("0.5 s without speech.")
    (tmp_path / "file").write_text("")
    warning = SegmentReport(tmp_path / "file").save_timeline(tmp_path / "b.wav", result)
    assert warning.startswith(f"Warning: could not save the picture {tmp_path / 'file' / 'segments-b.png'} (")


def noise_floor_by_definition(levels: np.ndarray, block: int, reach: int) -> np.ndarray:
    """The dB above the noise floor of every frame, computed on the whole array as NoiseFloor's docstring says."""
    levels = levels.astype(np.float32)
    seconds = -(-levels.shape[0] // block)
    floor_levels = np.maximum(levels, noisefloor.LOWEST_FLOOR_DB)
    percentiles = np.array([np.percentile(floor_levels[s * block:(s + 1) * block], noisefloor.NOISE_FLOOR_PERCENTILE, axis=0)
                            for s in range(seconds)])
    floors = np.array([np.median(percentiles[max(0, s - reach):s + reach + 1], axis=0) for s in range(seconds)])
    return np.maximum(levels - floors[np.arange(levels.shape[0]) // block], 0).mean(axis=1)


@pytest.mark.parametrize("block", [1, 37, 100, 2999, 20000])
def test_the_noise_floor_streams_the_same_values_however_the_levels_arrive(block):
    rng = np.random.default_rng(3)
    frames = 12345  # two minutes and a short last second of 10 ms frames
    quiet = rng.normal(-55, 3, (frames, noisefloor.BANDS))
    speaking = rng.random((frames, 1)) < 0.3
    levels = (quiet + 30 * speaking + np.linspace(0, 15, frames)[:, None]).astype(np.float16)  # the noise grows
    levels[:700] = -120  # digital silence first: its floor is LOWEST_FLOOR_DB, not -120
    floor = noisefloor.NoiseFloor(100)
    parts = [floor.feed(levels[start:start + block]) for start in range(0, frames, block)] + [floor.finish()]
    above = np.concatenate(parts)
    assert above.dtype == np.float32 and above.shape == (frames,)
    np.testing.assert_allclose(above, noise_floor_by_definition(levels, 100, int(noisefloor.NOISE_FLOOR_SECONDS)), atol=1e-4)
    assert np.all(above[:700] == 0)
    assert np.median(above[700:][speaking[700:, 0]]) > 25 > 5 > np.median(above[700:][~speaking[700:, 0]])
    assert max(part.size for part in parts) <= max(block, 100) + 100 * int(noisefloor.NOISE_FLOOR_SECONDS) + 100


def test_a_timeline_picture_draws_each_turn_or_at_most_a_bounded_number_of_spans():
    from acoustics.plots import drawn_spans

    few = [segments.Segment("no_speech", 0.0, 1.0), segments.Segment("male", 1.0, 2.5, 0.9),
           segments.Segment("female", 2.5, 3.0, 0.2)]
    assert drawn_spans(few, 3.0) == {"no_speech": [(0.0, 1.0)], "male": [(1.0, 1.5)], "female": [(2.5, 0.5)]}
    rng = np.random.default_rng(0)
    bounds = np.concatenate([[0.0], np.cumsum(rng.uniform(0.3, 2.7, 20000))])  # about 8 hours of turns and pauses
    labels = [("male", "female")[rng.integers(2)] if index % 2 else "no_speech" for index in range(20000)]
    many = [segments.Segment(label, float(start), float(stop)) for label, start, stop in zip(labels, bounds[:-1], bounds[1:])]
    many[5000:9000] = [segments.Segment("female", many[5000].start, many[8999].stop)]  # over an hour of one voice
    spans = drawn_spans(many, many[-1].stop, most=1000)
    drawn = [(start, width, label) for label, items in spans.items() for start, width in items]
    assert len(drawn) <= 1000 and set(spans) == {"male", "female", "no_speech"}
    assert sum(width for _, width, _ in drawn) == pytest.approx(many[-1].stop)  # the timeline is covered, once
    one_voice = (many[5000].start + 30, many[5000].stop - 30)
    assert any(start <= one_voice[0] and start + width >= one_voice[1] and label == "female" for start, width, label in drawn)
