"""The recordings people have: phone memos (m4a/AAC), voice notes (Opus), video calls (mp4, webm), MP3s.

Real speech (an EmoDB actor, else espeak-ng) written in eight formats (``tests/formats.py``) is read by the one
audio path, found in folders, classified by stage 5 and stored by stage 3 like a WAV.
"""

from __future__ import annotations

import csv
import sqlite3

import av
import numpy as np
import pytest
import soundfile

import formats
from acoustics import audio, corpus, mixing
from acoustics.errors import BadAudioError
from conftest import EMODB, one_line, run_stage, speak

RATE = 16000


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> np.ndarray:
    """About 3 s of one real voice at 16 kHz: an EmoDB actor where the corpus is here, else espeak-ng."""
    clips = sorted((EMODB / "wav").glob("03a05*.wav")) if (EMODB / "labels.csv").exists() else []
    path = clips[0] if clips else speak("Guten Morgen, wie geht es Ihnen heute", tmp_path_factory.mktemp("voice") / "v.wav")
    return audio.load_audio(path, RATE)[0]


@pytest.fixture(scope="module")
def every_format(speech, tmp_path_factory) -> dict:
    return formats.write_all(speech, RATE, tmp_path_factory.mktemp("formats"), "voice")


@pytest.mark.parametrize("name", list(formats.FORMATS))
def test_each_format_reads_as_the_same_speech(every_format, speech, name):
    signal, info = audio.load_audio(every_format[name], RATE)
    assert info.decoder == ("ffmpeg" if name in ("m4a/aac", "mp4", "webm") else "libsndfile")
    assert 0 <= signal.size - speech.size < 0.025 * RATE  # AAC pads its last frame; nothing is added in front
    assert abs(audio.level_dbfs(signal) - audio.level_dbfs(speech)) < 1.0
    # the same waveform in the same place: the samples an encoder puts in front (AAC's 1024, Opus's pre-skip)
    # are marked by the container and dropped in decoding, so the model's windows fall where the WAV's do
    lag = int(np.argmax(np.correlate(signal[:RATE], speech[:RATE // 2], mode="valid")))
    assert lag == 0
    assert np.corrcoef(signal[:speech.size], speech)[0, 1] > 0.9


def test_every_suffix_is_found_in_folders(every_format, tmp_path):
    found = corpus.audio_files(next(iter(every_format.values())).parent)
    assert sorted(found) == sorted(every_format.values())
    assert {".m4a", ".mp4", ".webm", ".opus", ".mp3", ".mkv", ".aac", ".wma"} <= audio.AUDIO_SUFFIXES


def test_stage5_gives_one_verdict_per_format_and_the_same_one(every_format, speech, tmp_path):
    folder = next(iter(every_format.values())).parent
    silent_video = folder / "no sound.mp4"
    with av.open(str(silent_video), "w", format="mp4") as output:
        picture = output.add_stream("mpeg4", rate=10)
        picture.width, picture.height, picture.pix_fmt = 64, 48, "yuv420p"
        for _ in range(10):
            output.mux(picture.encode(av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")))
        output.mux(picture.encode(None))
    # Some microphones and files sit off zero (a DC offset): it is taken out as a file is read.
    offset = tmp_path / "offset.wav"
    soundfile.write(offset, np.clip(speech - 0.12, -1, 1), RATE, subtype="PCM_16")
    table = tmp_path / "verdicts.csv"
    try:
        done = run_stage("implement_model.py", folder, offset, "--csv", table, timeout=300)
    finally:
        silent_video.unlink()
    assert "Traceback" not in done.stderr, done.stderr
    with open(table, newline="", encoding="utf-8") as handle:
        rows = {row["path"]: row for row in csv.DictReader(handle)}
    assert len(rows) == len(every_format) + 2
    assert abs(float(rows[str(offset)]["p_male"]) - float(rows[str(every_format["wav"])]["p_male"])) < 0.02
    p_male = [float(rows[str(path)]["p_male"]) for path in every_format.values()]
    assert len({rows[str(path)]["label"] for path in every_format.values()}) == 1
    assert max(p_male) - min(p_male) <= 0.05, dict(zip(every_format, p_male))
    assert rows[str(silent_video)]["label"] == "" and "no sound track" in rows[str(silent_video)]["note"]
    assert f"Classified {len(every_format) + 1} of {len(every_format) + 2} files" in done.stdout


def test_stage3_stores_phone_and_messenger_formats_from_a_manifest(every_format, tmp_path):
    data = tmp_path / "data"
    assert run_stage("set_up_sql.py", "--db", data / "features.db").returncode == 0
    audio.write_wav(data / "noise.wav", mixing.synthetic_room_noise(5.0, RATE, np.random.default_rng(1)), RATE)
    manifest = tmp_path / "labels.csv"
    picked = [every_format[name] for name in ("mp3", "opus", "m4a/aac", "webm")]
    manifest.write_text("path,sex,speaker\n" + "".join(f"{path},male,s{number}\n" for number, path in enumerate(picked)))
    done = run_stage("speech_prep.py", "--db", data / "features.db", "--noise", data / "noise.wav", "--svd", data,
                     "--manifest", manifest, "--picture", data / "prep.png", timeout=300)
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(data / "features.db") as connection:
        assert connection.execute("SELECT count(*) FROM recordings").fetchone()[0] == 4


def test_a_playlist_or_concat_list_is_not_followed(every_format, tmp_path):
    (tmp_path / "voice.wav").write_bytes(every_format["wav"].read_bytes())  # beside the lists, where they name it
    for name, text in (("list.m4a", "ffconcat version 1.0\nfile 'voice.wav'\n"),
                       ("playlist.mp4", "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nvoice.wav\n#EXT-X-ENDLIST\n")):
        (tmp_path / name).write_text(text)
        with pytest.raises(BadAudioError) as caught:
            audio.load_audio(tmp_path / name, RATE)
        one_line(caught.value, tmp_path / name, "not a readable audio file")


def test_decoding_stops_at_the_limit_whatever_the_container_states(every_format):
    info = audio.probe(every_format["webm"])
    with pytest.raises(BadAudioError) as caught:
        list(audio.mono_blocks(info, RATE, max_seconds=1.0))
    one_line(caught.value, every_format["webm"], "above the limit")


@pytest.mark.parametrize("damage", ["truncated", "garbled"])
def test_a_damaged_container_gets_one_line(every_format, tmp_path, damage):
    data = every_format["m4a/aac"].read_bytes()
    path = tmp_path / f"{damage}.m4a"
    path.write_bytes(data[: len(data) // 3] if damage == "truncated" else data[:64] + bytes(len(data) - 64))
    try:
        signal, _ = audio.load_audio(path, RATE)
    except BadAudioError as error:
        one_line(error, path)
    else:  # FFmpeg may decode what survives, as players do
        assert np.isfinite(signal).all() and signal.size < 4 * RATE

