"""Corpus readers on real folders and manifests, EmoDB's labels, and the spoken demo corpus."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas
import pytest
import soundfile
from conftest import one_line

from acoustics import audio, corpus, democorpus, preparation, speechcheck
from acoustics.corpus import LabelledRecording
from acoustics.errors import AcousticsError, BadAudioError, BadParameterError


def write_clip(path: Path, seconds: float = 0.1, rate: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, np.full(int(seconds * rate), 0.1, np.float32), rate)
    return path


# normalise_sex ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "label, sex",
    [("male", "male"), ("M", "male"), (" Male ", "male"), ("männlich", "male"), ("Mann", "male"),
     ("female", "female"), ("F", "female"), ("w", "female"), ("Weiblich", "female"), ("FRAU", "female"),
     ("divers", None), ("", None), ("x", None), (None, None), (1, None), ("fe male", None)],
)
def test_normalise_sex(label, sex):
    assert corpus.normalise_sex(label) == sex


# SVD export ------------------------------------------------------------------------------------
def test_find_svd_speaker_ids_by_prefix(tmp_path):
    for relative in ["male_speech/1-phrase.wav", "male_speech/1-other.wav", "male_speech/2-phrase.wav",
                     "male_speech/sub/10-a-b.WAV", "female_speech/3-phrase.wav", "female_speech/3-a.flac",
                     "female_speech/44.wav"]:
        write_clip(tmp_path / relative)
    (tmp_path / "male_speech" / "notes.txt").write_text("not audio")
    (tmp_path / "male_speech" / "1-phrase.egg").write_bytes(b"EGG")  # SVD's electroglottograph files

    found = corpus.find_svd(tmp_path)

    table = sorted((recording.path.relative_to(tmp_path).as_posix(), recording.sex, recording.speaker)
                   for recording in found)
    assert table == [
        ("female_speech/3-a.flac", "female", "3"), ("female_speech/3-phrase.wav", "female", "3"),
        ("female_speech/44.wav", "female", "44"), ("male_speech/1-other.wav", "male", "1"),
        ("male_speech/1-phrase.wav", "male", "1"), ("male_speech/2-phrase.wav", "male", "2"),
        ("male_speech/sub/10-a-b.WAV", "male", "10"),
    ]
    assert all(recording.source == "svd" and not recording.synthetic for recording in found)
    assert corpus.has_svd(tmp_path)


@pytest.mark.parametrize("present", [[], ["male_speech"], ["female_speech"]])
def test_find_svd_with_one_or_no_folder(tmp_path, present):
    for folder in present:
        write_clip(tmp_path / folder / "5-x.wav")
    found = corpus.find_svd(tmp_path)
    assert len(found) == len(present)
    assert corpus.has_svd(tmp_path) == bool(present)
    assert corpus.find_svd(tmp_path / "missing") == []


def test_find_svd_does_not_hang_on_a_symlink_loop(tmp_path):
    folder = tmp_path / "male_speech"
    write_clip(folder / "1-phrase.wav")
    os.symlink(folder, folder / "loop")  # male_speech/loop -> male_speech
    os.symlink(tmp_path, folder / "up")  # male_speech/up -> the parent
    os.symlink("self.wav", folder / "self.wav")  # a link to itself
    started = time.perf_counter()
    found = corpus.find_svd(tmp_path)
    assert time.perf_counter() - started < 2
    names = sorted(recording.path.name for recording in found)
    assert names == ["1-phrase.wav", "self.wav"]  # the folder links are not followed
    broken = next(recording for recording in found if recording.path.name == "self.wav")
    with pytest.raises(BadAudioError, match="self.wav"):
        audio.probe(broken.path)


def test_audio_files_are_sorted_and_filtered(tmp_path):
    for name in ["b.wav", "a.WAV", "c.ogg", "d.aiff", "e.aif", "f.flac", "g.mp4", "h.wav.txt", "i", "j.M4A", "k.txt"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "z").mkdir()
    (tmp_path / "z" / "0.wav").write_bytes(b"x")
    names = [path.relative_to(tmp_path).as_posix() for path in corpus.audio_files(tmp_path)]
    assert names == ["a.WAV", "b.wav", "c.ogg", "d.aiff", "e.aif", "f.flac", "g.mp4", "j.M4A", "z/0.wav"]


# Manifests -------------------------------------------------------------------------------------
def write_manifest(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


@pytest.mark.parametrize(
    "header",
    ["path,sex,speaker", "file,gender,speaker_id", "filename,label,speaker_name", " Path , SEX , Speaker ",
     "speaker,path,extra,sex"],
)
def test_read_manifest_column_names(tmp_path, header):
    columns = [column.strip().lower() for column in header.split(",")]
    values = {"path": "a.wav", "file": "a.wav", "filename": "a.wav", "sex": "m", "gender": "m", "label": "m",
              "speaker": "s1", "speaker_id": "s1", "speaker_name": "s1", "extra": "?"}
    manifest = write_manifest(tmp_path / "corpus" / "labels.csv",
                              header + "\n" + ",".join(values[column] for column in columns) + "\n")
    recordings, skipped = corpus.read_manifest(manifest)
    assert skipped == []
    assert recordings == [LabelledRecording(tmp_path / "corpus" / "a.wav", "male", "s1", "corpus", False)]


def test_read_manifest_rows(tmp_path):
    manifest = write_manifest(tmp_path / "set" / "manifest.csv", "\n".join([
        "path,sex,speaker",
        "clips/a.wav,male,anna",              # 2: relative to the manifest's folder
        "/absolute/b.wav,Female,bert",        # 3: absolute stays
        "c.wav,divers,carl",                  # 4: unknown sex
        ",male,dora",                         # 5: empty path
        "e.wav,female,",                      # 6: empty speaker
        "../up/f.wav, w ,007",                # 7: spaces around the label, leading zeros kept
        "g.wav,NA,gus",                       # 8: 'NA' is not read as missing but is no sex either
    ]) + "\n")
    recordings, skipped = corpus.read_manifest(manifest, source="mine", synthetic=True)
    assert [(recording.path, recording.sex, recording.speaker) for recording in recordings] == [
        (tmp_path / "set" / "clips" / "a.wav", "male", "anna"),
        (Path("/absolute/b.wav"), "female", "bert"),
        (tmp_path / "set" / "../up/f.wav", "female", "007"),
    ]
    assert all(recording.source == "mine" and recording.synthetic for recording in recordings)
    reasons = {entry.path: entry.reason for entry in skipped}
    assert set(reasons) == {f"{manifest} line {line}" for line in (4, 5, 6, 8)}
    assert "divers" in reasons[f"{manifest} line 4"] and "male or female" in reasons[f"{manifest} line 4"]
    assert reasons[f"{manifest} line 5"] == "empty path"
    assert reasons[f"{manifest} line 6"] == "empty speaker"
    assert "NA" in reasons[f"{manifest} line 8"]


def test_read_manifest_missing_file_is_caught_when_the_task_is_made(tmp_path):
    """read_manifest does not look at the files (its docstring says it skips missing ones); a missing file is
    refused, with its name, by preparation.make_task."""
    manifest = write_manifest(tmp_path / "manifest.csv", "path,sex,speaker\nnot-there.wav,male,x\n")
    recordings, skipped = corpus.read_manifest(manifest)
    assert len(recordings) == 1 and skipped == []
    with pytest.raises(BadAudioError, match="not-there.wav"):
        preparation.make_task(recordings[0])


@pytest.mark.parametrize(
    "name",
    ["with space.wav", 'quote "double".wav', "it's.wav", "comma, too.wav", "Jürgen Grüße.wav", "录音.wav",
     "semi;colon.wav", "#hash.wav"],
)
def test_read_manifest_unusual_file_names(tmp_path, name):
    clip = write_clip(tmp_path / "corpus" / name)
    table = pandas.DataFrame({"path": [name], "sex": ["female"], "speaker": ["Zoë O'Neil"]})
    manifest = tmp_path / "corpus" / "manifest.csv"
    table.to_csv(manifest, index=False)  # quoted as a spreadsheet would
    recordings, skipped = corpus.read_manifest(manifest)
    assert skipped == []
    assert [(recording.path, recording.speaker) for recording in recordings] == [(clip, "Zoë O'Neil")]
    assert recordings[0].path.exists()


def test_read_manifest_with_a_byte_order_mark(tmp_path):
    """Excel's 'CSV UTF-8' starts the file with a byte order mark."""
    manifest = write_manifest(tmp_path / "m.csv", "path,sex,speaker\na.wav,m,1\n", encoding="utf-8-sig")
    recordings, skipped = corpus.read_manifest(manifest)
    assert [recording.path.name for recording in recordings] == ["a.wav"] and skipped == []


@pytest.mark.parametrize(
    "text, column",
    [("file,speaker\na.wav,1\n", "sex"), ("sex,speaker\nm,1\n", "path"), ("path,gender\na.wav,m\n", "speaker"),
     ("path;sex;speaker\na.wav;m;1\n", "path"), ("x\n", "path")],
    ids=["no-sex", "no-path", "no-speaker", "semicolons", "one-column"],
)
def test_read_manifest_missing_column_names_it(tmp_path, text, column):
    manifest = write_manifest(tmp_path / "m.csv", text)
    with pytest.raises(BadParameterError) as caught:
        corpus.read_manifest(manifest)
    message = str(caught.value)
    assert f"'{column}'" in message and "m.csv" in message and "\n" not in message
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("case", ["missing", "empty", "folder", "binary"])
def test_read_manifest_unreadable(tmp_path, case):
    manifest = tmp_path / "m.csv"
    if case == "empty":
        manifest.write_bytes(b"")
    elif case == "folder":
        manifest.mkdir()
    elif case == "binary":
        manifest.write_bytes(b"\xff\xfe\x00\x01" * 100)
    with pytest.raises(BadParameterError) as caught:
        corpus.read_manifest(manifest)
    assert "m.csv" in str(caught.value) and "\n" not in str(caught.value)


def test_read_manifest_header_only(tmp_path):
    assert corpus.read_manifest(write_manifest(tmp_path / "m.csv", "path,sex,speaker\n")) == ([], [])


def test_read_manifest_source_defaults_to_folder_name(tmp_path):
    manifest = write_manifest(tmp_path / "emodb" / "labels.csv", "path,sex,speaker\na.wav,m,1\n")
    recordings, _ = corpus.read_manifest(manifest)
    assert recordings[0].source == "emodb"


def test_read_manifest_of_emodb(emodb_dir):
    recordings, skipped = corpus.read_manifest(emodb_dir / "labels.csv")
    assert len(recordings) == 535 and skipped == []
    speakers = {recording.speaker: recording.sex for recording in recordings}
    assert len(speakers) == 10
    assert Counter(speakers.values()) == {"male": 5, "female": 5}
    assert all(len(speaker) == 2 and speaker.isdigit() for speaker in speakers)  # '03' keeps its zero
    assert all(recording.path.is_file() for recording in recordings)
    assert {recording.source for recording in recordings} == {"emodb"}
    assert Counter(recording.sex for recording in recordings) == {"male": 233, "female": 302}
    info = audio.probe(recordings[0].path)
    assert info.channels == 1 and info.duration_seconds > 1


# Demo corpus -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_corpus(tmp_path_factory):
    import shutil

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (run 'make test', which installs it)")
    folder = tmp_path_factory.mktemp("demo") / "demo_corpus"
    manifest = democorpus.make_demo_corpus(folder)
    return folder, manifest


def test_demo_corpus_manifest(demo_corpus):
    folder, manifest = demo_corpus
    assert manifest == folder / "manifest.csv"
    recordings, skipped = corpus.read_manifest(manifest, source="demo", synthetic=True)
    assert skipped == []
    speakers = {}
    for recording in recordings:
        assert speakers.setdefault(recording.speaker, recording.sex) == recording.sex
        assert recording.path.is_file() and recording.path.parent.name == recording.sex
    counts = Counter(speakers.values())
    assert counts["male"] >= 16 and counts["female"] >= 16
    per_speaker = Counter(recording.speaker for recording in recordings)
    assert set(per_speaker.values()) == {len(democorpus.DEMO_SENTENCES)}
    assert not list(folder.rglob(".*"))  # no temporary files left


def test_demo_corpus_clips_are_usable_speech(demo_corpus):
    folder, manifest = demo_corpus
    recordings, _ = corpus.read_manifest(manifest)
    for recording in recordings[:: max(1, len(recordings) // 6)]:
        signal, info = audio.load_audio(recording.path, 16000)
        speech = audio.trim_silence(signal, 30.0)
        speechcheck.check_speech(speech, 16000, recording.path)
        assert info.channels == 1


def test_demo_corpus_holdout_has_both_sexes(demo_corpus):
    folder, manifest = demo_corpus
    holdout = sorted((folder / "holdout").glob("*.wav"))
    sexes = Counter(path.name.split("-")[0] for path in holdout)
    assert sexes["male"] >= 1 and sexes["female"] >= 1
    assert len(holdout) == len(democorpus.DEMO_HOLDOUT)
    listed = manifest.read_text(encoding="utf-8")
    assert "holdout" not in listed  # held-out voices are not training data
    training_voices = {(voice, pitch) for voice, pitch, _ in democorpus.DEMO_MALE + democorpus.DEMO_FEMALE}
    assert not {(voice, pitch) for voice, pitch, _, _ in democorpus.DEMO_HOLDOUT} & training_voices
    for path in holdout:
        signal, _ = audio.load_audio(path, 16000)
        speechcheck.check_speech(audio.trim_silence(signal, 30.0), 16000, path)


def file_times(folder: Path) -> dict:
    return {path: path.stat().st_mtime_ns for path in folder.rglob("*") if path.is_file()}


def test_demo_corpus_rerun_reuses_everything(demo_corpus):
    folder, manifest = demo_corpus
    before = file_times(folder)
    started = time.perf_counter()
    assert democorpus.make_demo_corpus(folder) == manifest
    assert time.perf_counter() - started < 1
    assert file_times(folder) == before


def test_demo_corpus_after_an_interruption_only_speaks_what_is_missing(demo_corpus):
    """Without the manifest (written last) the run counts as interrupted: existing clips are kept as they are,
    missing ones are spoken, and the manifest comes back."""
    folder, manifest = demo_corpus
    text = manifest.read_text(encoding="utf-8")
    missing = sorted((folder / "female").glob("*.wav"))[0]
    missing.unlink()
    manifest.unlink()
    before = file_times(folder)
    assert democorpus.make_demo_corpus(folder) == manifest
    after = file_times(folder)
    assert manifest.read_text(encoding="utf-8") == text
    assert missing.is_file()
    assert {path: after[path] for path in before} == before
    assert set(after) - set(before) == {missing, manifest}


def test_without_espeak_ng_the_demo_is_made_of_real_voices(emodb_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no espeak-ng on it
    folder, announced = tmp_path / "demo_corpus", []
    manifest = democorpus.make_demo_corpus(folder, real_voices=emodb_dir / "labels.csv", announce=announced.append)
    assert len(announced) == 1 and "espeak-ng is not installed" in announced[0] and str(emodb_dir) in announced[0]
    assert democorpus.demo_source(folder) == ("emodb", False)
    recordings, skipped = corpus.read_manifest(manifest, source="emodb")
    assert skipped == [] and all(recording.path.is_file() for recording in recordings)
    per_speaker = Counter(recording.speaker for recording in recordings)
    assert len(per_speaker) == 8 and set(per_speaker.values()) == {democorpus.REAL_DEMO_CLIPS}
    holdout = sorted((folder / "holdout").iterdir())
    assert Counter(path.name.split("-")[0] for path in holdout) == {"male": 3, "female": 3}
    held_speakers = {path.name.split("-")[1] for path in holdout}
    assert not held_speakers & set(per_speaker)  # held-out voices are not training data
    assert not list(folder.rglob(".*"))
    assert democorpus.make_demo_corpus(folder, real_voices=emodb_dir / "labels.csv", announce=announced.append) == manifest
    assert len(announced) == 1  # a corpus that exists is not made again, and not announced


def test_without_espeak_ng_or_real_voices_the_demo_says_how_to_get_espeak_ng(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(AcousticsError) as caught:
        democorpus.make_demo_corpus(tmp_path / "demo_corpus", real_voices=tmp_path / "missing" / "labels.csv")
    one_line(caught.value, "espeak-ng is not installed", "install with:", "--manifest FILE")
    assert not (tmp_path / "demo_corpus" / "manifest.csv").exists()


def test_an_espeak_ng_that_fails_is_one_line_and_leaves_no_half_corpus(tmp_path, monkeypatch):
    """espeak-ng that cannot write (a full disk, a broken install) stops the demo corpus with one line: the files
    spoken so far stay, no temporary file or manifest is left, and the next run goes on."""
    programs = tmp_path / "bin"
    programs.mkdir()
    (programs / "espeak-ng").write_text("#!/bin/sh\necho 'Failed to write output file' >&2\nexit 1\n")
    (programs / "espeak-ng").chmod(0o755)
    monkeypatch.setenv("PATH", str(programs))
    folder = tmp_path / "demo_corpus"
    with pytest.raises(AcousticsError) as caught:
        democorpus.make_demo_corpus(folder, announce=lambda sentence: None)
    one_line(caught.value, "espeak-ng could not speak", "Failed to write output file", "espeak-ng --version")
    assert not (folder / "manifest.csv").exists() and not [path for path in folder.rglob("*") if path.is_file()]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le-bom", "utf-16-be-bom", "utf-32"])
def test_read_manifest_reads_utf8_and_marked_utf16(tmp_path, encoding):
    text = "path,sex,speaker\nmüller.wav,m,Zoë\n"
    data = {"utf-16-le-bom": b"\xff\xfe" + text.encode("utf-16-le"),
            "utf-16-be-bom": b"\xfe\xff" + text.encode("utf-16-be")}.get(encoding) or text.encode(encoding)
    manifest = tmp_path / "m.csv"
    manifest.write_bytes(data)
    recordings, skipped = corpus.read_manifest(manifest)
    assert skipped == [] and [(r.path.name, r.speaker) for r in recordings] == [("müller.wav", "Zoë")]


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252"])
def test_read_manifest_in_latin1_says_save_it_as_utf8(tmp_path, encoding):
    manifest = tmp_path / "m.csv"
    manifest.write_bytes("path,sex,speaker\na.wav,m,1\nmüller.wav,m,Zoë\n".encode(encoding))
    with pytest.raises(BadParameterError) as caught:
        corpus.read_manifest(manifest)
    message = str(caught.value)
    assert "m.csv" in message and "UTF-8" in message and "save it as UTF-8" in message and "line 3" in message
    assert "\n" not in message


def test_read_manifest_damaged_utf16_says_save_it_as_utf8(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_bytes(b"\xff\xfe" + "path,sex,speaker\n".encode("utf-16-le") + b"\x00\xd8a")  # lone surrogate, odd length
    with pytest.raises(BadParameterError) as caught:
        corpus.read_manifest(manifest)
    assert "m.csv" in str(caught.value) and "UTF-16" in str(caught.value) and "save it as UTF-8" in str(caught.value)


# SVD zips that cannot be used: one line each, no folder left behind -------------------------------
def _zip(path, entries, *, method=None, encrypted=False):
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries:
            archive.writestr(zipfile.ZipInfo(name), data)
    data = bytearray(path.read_bytes())
    # zipfile writes neither encryption nor foreign methods: patch them into both headers of the first entry
    for signature, flags, compression in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        start = data.find(signature)
        if encrypted:
            data[start + flags] |= 0x1
        if method is not None:
            data[start + compression:start + compression + 2] = method.to_bytes(2, "little")
    path.write_bytes(bytes(data))
    return path


WAV = b"RIFF" + bytes(40)
BAD_ZIPS = {
    "no-audio": (dict(entries=[("export/readme.txt", b"hello"), ("export/", b"")]), "no audio"),
    "empty": (dict(entries=[]), "is empty"),
    "encrypted": (dict(entries=[("export/1-a.wav", WAV)], encrypted=True), "password"),
    "deflate64": (dict(entries=[("export/1-a.wav", WAV)], method=9), "compression"),
    "aes-method-99": (dict(entries=[("export/1-a.wav", WAV)], method=99), "password"),
    "file-and-folder": (dict(entries=[("export/1", b"x"), ("export/1/2-a.wav", WAV)]), "file and a folder"),
    "folder-then-file": (dict(entries=[("export/1/2-a.wav", WAV), ("export/1", b"x")]), "file and a folder"),
    "long-name": (dict(entries=[("export/" + "a" * 300 + ".wav", WAV)]), "255"),
}


@pytest.mark.parametrize("case", list(BAD_ZIPS))
def test_unusable_svd_zip_is_refused_in_one_line_and_leaves_no_folder(tmp_path, case):
    from acoustics.errors import AcousticsError

    options, words = BAD_ZIPS[case]
    _zip(tmp_path / "male_speech.zip", **options)
    with pytest.raises(AcousticsError) as caught:
        corpus.unpack_svd_zips(tmp_path)
    one_line(caught.value, "male_speech.zip", words)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["male_speech.zip"]


def test_an_empty_folder_left_by_an_old_run_does_not_block_a_corrected_zip(tmp_path):
    (tmp_path / "male_speech").mkdir()
    _zip(tmp_path / "male_speech.zip", [("export/1-a.wav", WAV)])
    assert corpus.unpack_svd_zips(tmp_path) == [tmp_path / "male_speech"]
    assert [path.name for path in (tmp_path / "male_speech").iterdir()] == ["1-a.wav"]


RENAME, MOVE = "rename the file (or folder), or give another path", "move the file to a shorter path"


@pytest.mark.parametrize("path, words, fix", [("a" * 300 + ".wav", "304 bytes", RENAME), ("b/" * 2100 + "c.wav", "4095", MOVE),
                                              ("ü" * 200 + ".wav", "404 bytes", RENAME)], ids=["long-name", "long-path", "long-utf8"])
def test_read_manifest_path_too_long_skips_the_row_naming_it(tmp_path, path, words, fix):
    manifest = write_manifest(tmp_path / "m.csv", f"path,sex,speaker\n{path},m,1\nok.wav,f,2\n")
    recordings, skipped = corpus.read_manifest(manifest)
    assert [recording.path.name for recording in recordings] == ["ok.wav"]
    assert [row.path for row in skipped] == [f"{manifest} line 2"]
    one_line(skipped[0].reason, words, fix)
