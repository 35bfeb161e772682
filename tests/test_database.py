"""The SQLite feature database, on real files: creation, refusal of foreign files, transactions, round trips."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess

import numpy as np
import pytest

from acoustics import database
from acoustics.database import FeatureDatabase
from acoustics.dbfile import APPLICATION_ID, SCHEMA_VERSION, create_database
from acoustics.errors import AcousticsError, BadDatabaseError, BadParameterError, SettingsMismatchError
from acoustics.settings import Settings
from conftest import one_line

SETTINGS = Settings()


def matrix(frames: int, seed: int, n_mfcc: int = 40) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 50, (frames, n_mfcc)).astype(np.float32)


def item(number: int, *, speaker=None, sex="male", source="test", path=None, sha256=None, frames=30,
         snrs=(20.0, 10.0), noise_id=None, synthetic=False) -> dict:
    variants = [("clean", None, None, matrix(frames, number * 10))]
    variants += [(f"snr{snr:g}", noise_id, snr, matrix(frames + 1, number * 10 + index + 1))
                 for index, snr in enumerate(snrs)]
    return {
        "speaker": speaker if speaker is not None else f"speaker-{number}", "sex": sex, "source": source,
        "synthetic": synthetic, "path": path if path is not None else f"/corpus/{number}.wav",
        "sha256": sha256 if sha256 is not None else f"{number:064x}", "duration_seconds": 1.5,
        "speech_seconds": 1.25, "original_sample_rate": 22050, "original_channels": 1, "variants": variants,
    }


@pytest.fixture
def db_path(tmp_path):
    path = tmp_path / "features.db"
    assert create_database(path, SETTINGS) == "created"
    return path


def table_count(path, table: str) -> int:
    with sqlite3.connect(path) as connection:
        return connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


# Creation --------------------------------------------------------------------------------------
def test_create_writes_schema_version_application_id_and_settings(db_path):
    connection = sqlite3.connect(db_path)
    try:
        assert connection.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        stored = dict(connection.execute("SELECT key, value FROM settings"))
        names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        connection.close()
    assert Settings.from_json(stored["features"]) == SETTINGS
    assert stored["schema_version"] == str(SCHEMA_VERSION) and stored["created_at"]
    assert {"settings", "speakers", "recordings", "noises", "features", "splits", "runs", "feature_overview"} <= names
    assert not list(db_path.parent.glob(".*creating*"))  # the temporary file was renamed
    with FeatureDatabase(db_path, readonly=True) as feature_database:
        assert feature_database.settings == SETTINGS


def test_create_kept_and_reset(tmp_path):
    path = tmp_path / "deeper" / "folder" / "features.db"
    assert create_database(path, SETTINGS) == "created"
    with FeatureDatabase(path) as feature_database:
        assert feature_database.add_recordings([item(1)]) == 1
    other = Settings(snrs_db=(15.0,), seed=3)
    assert create_database(path, other) == "kept"
    with FeatureDatabase(path) as feature_database:
        assert feature_database.settings == SETTINGS  # kept with its own settings and data
        assert feature_database.counts()["male"]["recordings"] == 1
    assert create_database(path, other, reset=True) == "reset"
    with FeatureDatabase(path) as feature_database:
        assert feature_database.settings == other
        assert feature_database.counts()["male"]["recordings"] == 0
    assert create_database(path, other, reset=True) == "reset"


def test_create_while_another_connection_reads(db_path):
    with FeatureDatabase(db_path, readonly=True) as reader:
        assert create_database(db_path, SETTINGS) == "kept"
        assert reader.counts()["female"]["speakers"] == 0


def test_missing_database_says_how_to_create_it(tmp_path):
    path = tmp_path / "nothing.db"
    for readonly in (False, True):
        with pytest.raises(BadDatabaseError) as caught:
            FeatureDatabase(path, readonly=readonly)
        assert "set_up_sql.py" in one_line(caught.value, path)
    assert not path.exists()


# Foreign and damaged files ---------------------------------------------------------------------
def make_text(path):
    path.write_text("id,name\n1,not a database\n", encoding="utf-8")


def make_empty(path):
    path.write_bytes(b"")


def make_other_application(path):
    connection = sqlite3.connect(path)
    connection.executescript("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);"
                             "INSERT INTO customers (name) VALUES ('Ada');")
    connection.close()


def make_other_application_id(path):
    connection = sqlite3.connect(path)
    connection.executescript("PRAGMA application_id = 1234; PRAGMA user_version = 1; CREATE TABLE settings (key TEXT);")
    connection.close()


def make_random_bytes(path):
    path.write_bytes(np.random.default_rng(0).bytes(8192))


def make_sqlite_header_garbage(path):
    path.write_bytes(b"SQLite format 3\x00" + np.random.default_rng(1).bytes(8192))


FOREIGN = [("text", make_text), ("empty-0-bytes", make_empty), ("other-application", make_other_application),
           ("other-application-id", make_other_application_id), ("random-bytes", make_random_bytes),
           ("sqlite-header-then-garbage", make_sqlite_header_garbage)]


@pytest.mark.parametrize("reset", [False, True])
@pytest.mark.parametrize("case, make", FOREIGN, ids=[case[0] for case in FOREIGN])
def test_foreign_files_are_refused_and_never_touched(tmp_path, case, make, reset):
    path = tmp_path / "features.db"
    make(path)
    before = path.read_bytes()
    with pytest.raises(BadDatabaseError) as caught:
        create_database(path, SETTINGS, reset=reset)
    one_line(caught.value, path)
    for readonly in (False, True):
        with pytest.raises(BadDatabaseError) as caught:
            FeatureDatabase(path, readonly=readonly)
        assert "not a feature database" in one_line(caught.value, path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["features.db"]  # no -wal, -shm or temporary files appeared


@pytest.mark.parametrize("version", [0, 2, 99])
def test_other_schema_version_is_refused(db_path, version):
    connection = sqlite3.connect(db_path)
    connection.execute(f"PRAGMA user_version = {version}")
    connection.close()
    for readonly in (False, True):
        with pytest.raises(BadDatabaseError) as caught:
            FeatureDatabase(db_path, readonly=readonly)
        message = one_line(caught.value, db_path)
        assert f"schema version {version}" in message and "--reset" in message
    with pytest.raises(BadDatabaseError, match="schema version"):
        create_database(db_path, SETTINGS)
    with sqlite3.connect(db_path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == version  # untouched


@pytest.mark.parametrize("version", [0, 99])
def test_other_schema_version_can_be_reset_as_the_message_says(db_path, version):
    with sqlite3.connect(db_path) as connection:
        connection.execute(f"PRAGMA user_version = {version}")
    assert create_database(db_path, SETTINGS, reset=True) == "reset"
    with FeatureDatabase(db_path) as feature_database:
        assert feature_database.settings == SETTINGS


def test_truncated_database_is_refused(db_path):
    with FeatureDatabase(db_path) as feature_database:
        feature_database.add_recordings([item(number, frames=200) for number in range(20)])
    data = db_path.read_bytes()
    for suffix in ("-wal", "-shm"):
        assert not (db_path.parent / f"{db_path.name}{suffix}").exists()
    db_path.write_bytes(data[: len(data) // 3])
    with pytest.raises(BadDatabaseError) as caught:
        with FeatureDatabase(db_path, readonly=True) as feature_database:
            feature_database.load_features(feature_database.feature_index()["feature_id"])
    one_line(caught.value, db_path)


@pytest.mark.parametrize(
    "value, match",
    [(None, "settings row is missing"), ("{not json", "not valid JSON"), ('{"colour": 1}', "colour"),
     ('{"sample_rate": 100}', "sample_rate")],
    ids=["missing", "bad-json", "unknown-field", "bad-value"],
)
def test_damaged_settings_row_raises_bad_database(db_path, value, match):
    connection = sqlite3.connect(db_path)
    if value is None:
        connection.execute("DELETE FROM settings WHERE key = 'features'")
    else:
        connection.execute("UPDATE settings SET value = ? WHERE key = 'features'", (value,))
    connection.commit()
    connection.close()
    with FeatureDatabase(db_path, readonly=True) as feature_database:
        with pytest.raises(BadDatabaseError, match=match) as caught:
            feature_database.settings
    one_line(caught.value, db_path)


@pytest.mark.parametrize("value", ['{"hop_ms": "10"}', "[]", "null"])
def test_wrongly_typed_settings_row_raises_bad_database(db_path, value):
    connection = sqlite3.connect(db_path)
    connection.execute("UPDATE settings SET value = ? WHERE key = 'features'", (value,))
    connection.commit()
    connection.close()
    with FeatureDatabase(db_path, readonly=True) as feature_database:
        with pytest.raises(BadDatabaseError):
            feature_database.settings


# Read-only files -------------------------------------------------------------------------------
@pytest.fixture
def unwritable(db_path):
    """Make the database file unwritable: chmod 0o444 for a normal user; as root (who may write to any file
    whatever its mode) the immutable attribute, removed again afterwards."""
    if os.geteuid() != 0:
        db_path.chmod(0o444)
        yield db_path
        db_path.chmod(0o644)
        return
    if shutil.which("chattr") is None:
        pytest.skip("running as root and chattr is missing, so no file can be made unwritable")
    result = subprocess.run(["chattr", "+i", str(db_path)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"running as root and chattr +i is not supported here ({result.stderr.strip()})")
    try:
        yield db_path
    finally:
        subprocess.run(["chattr", "-i", str(db_path)], check=True)


def test_as_root_chmod_does_not_make_the_database_read_only(db_path):
    """What happens as root with chmod 0o444: root may write anyway, and so the database opens for writing."""
    if os.geteuid() != 0:
        pytest.skip("only root ignores file modes")
    db_path.chmod(0o444)
    try:
        with FeatureDatabase(db_path) as feature_database:
            assert feature_database.add_recordings([item(1)]) == 1
    finally:
        db_path.chmod(0o644)


def test_unwritable_database_is_refused_for_writing_but_readable(unwritable):
    with pytest.raises(BadDatabaseError) as caught:
        FeatureDatabase(unwritable)
    assert "read-only" in one_line(caught.value, unwritable)
    with FeatureDatabase(unwritable, readonly=True) as feature_database:
        assert feature_database.settings == SETTINGS
        assert feature_database.counts()["male"]["recordings"] == 0
    assert create_database(unwritable, SETTINGS) == "kept"


def test_reset_of_an_undeletable_database_raises_bad_database(unwritable):
    if os.geteuid() != 0:
        pytest.skip("a normal user may delete a chmod 0o444 file in a writable folder")
    with pytest.raises(BadDatabaseError):
        create_database(unwritable, SETTINGS, reset=True)


def test_readonly_open_cannot_write(db_path):
    with FeatureDatabase(db_path, readonly=True) as feature_database:
        with pytest.raises(BadDatabaseError) as caught:
            feature_database.add_recordings([item(1)])
        one_line(caught.value, db_path)
    assert table_count(db_path, "recordings") == 0


# Writing ---------------------------------------------------------------------------------------
def test_add_recordings_stores_each_content_once(db_path):
    with FeatureDatabase(db_path) as feature_database:
        assert feature_database.add_recordings([item(1), item(2)]) == 2
        assert feature_database.add_recordings([item(1), item(3)]) == 1  # item 1 is already there
        duplicate = item(4, sha256=item(2)["sha256"], path="/elsewhere/copy.wav")
        assert feature_database.add_recordings([duplicate, item(5), item(5)]) == 1  # twice in one batch too
        assert feature_database.known_hashes() == {item(number)["sha256"] for number in (1, 2, 3, 5)}
        assert feature_database.add_recordings([]) == 0
    assert table_count(db_path, "recordings") == 4
    assert table_count(db_path, "features") == 4 * 3


@pytest.mark.parametrize("bad_position", [0, 1, 2])
@pytest.mark.parametrize("bad_sex", ["divers", "Male", "", None, "m"])
def test_a_bad_item_leaves_nothing_of_its_batch(db_path, bad_position, bad_sex):
    with FeatureDatabase(db_path) as feature_database:
        feature_database.add_recordings([item(100)])
        batch = [item(1), item(2), item(3)]
        batch[bad_position]["sex"] = bad_sex
        with pytest.raises(BadParameterError) as caught:
            feature_database.add_recordings(batch)
        assert "sex" in str(caught.value)
        assert feature_database.known_hashes() == {item(100)["sha256"]}
    for table, rows in (("recordings", 1), ("features", 3), ("speakers", 1)):
        assert table_count(db_path, table) == rows


def test_speaker_with_two_sexes_is_refused_whole_batch(db_path):
    with FeatureDatabase(db_path) as feature_database:
        feature_database.add_recordings([item(1, speaker="anna", sex="female")])
        with pytest.raises(BadParameterError, match="anna"):
            feature_database.add_recordings([item(2, speaker="bert"), item(3, speaker="anna", sex="male")])
        assert feature_database.known_hashes() == {item(1)["sha256"]}
        # The same name in another source is another speaker.
        assert feature_database.add_recordings([item(4, speaker="anna", sex="male", source="other")]) == 1
    assert table_count(db_path, "speakers") == 2


def test_an_error_inside_a_transaction_rolls_back(db_path):
    with FeatureDatabase(db_path) as feature_database:
        with pytest.raises(KeyboardInterrupt):
            with feature_database.transaction() as connection:
                connection.execute("INSERT INTO runs (finished_at, model, path, scores_json) VALUES ('x', 'm', 'p', '{}')")
                raise KeyboardInterrupt
        assert len(feature_database.runs()) == 0
        feature_database.record_run(model="after", path="p", scores={})  # the connection still works
    assert table_count(db_path, "runs") == 1


def test_blob_round_trip_is_exact(db_path):
    special = np.array([[0.0, -0.0, 1e-38, -3.4e38, 3.4e38, 1.5e-45, np.pi, -1 / 3]], np.float32)
    items = [item(1, frames=1), item(2, frames=257), item(3, frames=5)]
    items[2]["variants"].append(("special", None, None, special))
    items[1]["variants"].append(("fortran", None, None, np.asfortranarray(matrix(7, 99))))
    items[1]["variants"].append(("float64", None, None, matrix(9, 98).astype(np.float64)))
    with FeatureDatabase(db_path) as feature_database:
        feature_database.add_recordings(items)
        index = feature_database.feature_index()
        loaded = feature_database.load_features(index["feature_id"], batch_size=2)
        assert feature_database.load_features([]) == {}
        assert feature_database.load_features([10**9]) == {}
    expected = {}
    for number, stored in enumerate(items, start=1):
        for variant, _, _, values in stored["variants"]:
            expected[(number, variant)] = np.asarray(values, np.float32)
    recording_numbers = {recording_id: rank for rank, recording_id in enumerate(sorted(index["recording_id"].unique()), 1)}
    assert len(loaded) == len(expected) == len(index)
    for row in index.itertuples():
        values = loaded[row.feature_id]
        want = expected[(recording_numbers[row.recording_id], row.variant)]
        assert values.dtype == np.float32 and values.shape == want.shape and values.shape[0] == row.frame_count
        assert values.tobytes() == want.tobytes()  # bit for bit, signed zero included


def test_feature_index_columns_and_values(db_path):
    with FeatureDatabase(db_path) as feature_database:
        noise_id = feature_database.add_noise(name="room.wav", kind="room", sha256="n" * 64, duration_seconds=60,
                                              level_dbfs=-45)
        feature_database.add_recordings([item(1, noise_id=noise_id), item(2, sex="female", synthetic=True, noise_id=noise_id)])
        index = feature_database.feature_index()
    assert list(index.columns) == ["feature_id", "recording_id", "speaker_id", "sex", "source", "synthetic", "variant",
                                   "snr_db", "frame_count"]
    assert len(index) == 6
    assert sorted(index["variant"].unique()) == ["clean", "snr10", "snr20"]
    clean = index[index["variant"] == "clean"]
    assert clean["snr_db"].isna().all() and (clean["frame_count"] == 30).all()
    noisy = index[index["variant"] != "clean"]
    assert set(noisy["snr_db"]) == {20.0, 10.0} and (noisy["frame_count"] == 31).all()
    assert set(index["sex"]) == {"male", "female"}
    assert dict(zip(index["sex"], index["synthetic"])) == {"male": 0, "female": 1}


def test_add_noise_once_per_hash(db_path):
    with FeatureDatabase(db_path) as feature_database:
        first = feature_database.add_noise(name="a", kind="room", sha256="h1", duration_seconds=1, level_dbfs=-40)
        again = feature_database.add_noise(name="renamed", kind="room", sha256="h1", duration_seconds=1, level_dbfs=-40)
        other = feature_database.add_noise(name="b", kind="synthetic", sha256="h2", duration_seconds=2, level_dbfs=-45)
    assert first == again != other
    assert table_count(db_path, "noises") == 2


def test_counts_and_speakers(db_path):
    with FeatureDatabase(db_path) as feature_database:
        empty = feature_database.counts()
        feature_database.add_recordings([
            item(1, speaker="m1"), item(2, speaker="m1"), item(3, speaker="m2"),
            item(4, speaker="f1", sex="female", snrs=()),
        ])
        counts = feature_database.counts()
        speakers = feature_database.speakers()
    assert empty == {sex: {"speakers": 0, "recordings": 0, "features": 0} for sex in ("male", "female")}
    assert counts == {"male": {"speakers": 2, "recordings": 3, "features": 9},
                      "female": {"speakers": 1, "recordings": 1, "features": 1}}
    assert list(speakers.columns) == ["id", "name", "sex", "source", "synthetic", "recordings"]
    assert dict(zip(speakers["name"], speakers["recordings"])) == {"m1": 2, "m2": 1, "f1": 1}


def test_save_and_load_split(db_path):
    with FeatureDatabase(db_path) as feature_database:
        feature_database.add_recordings([item(number) for number in range(1, 5)])
        ids = list(feature_database.speakers()["id"])
        assert feature_database.load_split() == {}
        first = dict(zip(ids, ["train", "train", "validation", "test"]))
        feature_database.save_split(first, seed=42)
        assert feature_database.load_split() == first
        second = {ids[0]: "test", ids[1]: "train"}
        feature_database.save_split(second, seed=7)
        assert feature_database.load_split() == second  # replaced, not merged
        with pytest.raises(BadParameterError):
            feature_database.save_split({ids[0]: "holdout"}, seed=1)
        with pytest.raises(BadDatabaseError):  # a speaker that does not exist: foreign key
            feature_database.save_split({ids[0]: "train", 10**6: "test"}, seed=1)
        assert feature_database.load_split() == second  # failed saves changed nothing
    with sqlite3.connect(db_path) as connection:
        assert set(connection.execute("SELECT seed FROM splits")) == {(7,)}


def test_record_run_and_runs(db_path):
    scores = {"confusion": [[10, 2], [3, 9]], "per_snr": {"clean": 0.9, "snr0": 0.7}}
    with FeatureDatabase(db_path) as feature_database:
        assert len(feature_database.runs()) == 0
        first = feature_database.record_run(model="cnn", path="models/cnn.h5", scores=scores, test_accuracy=0.85,
                                            balanced_accuracy=0.84, test_speakers=6, epochs=12, training_seconds=33.5,
                                            parameters=12345)
        second = feature_database.record_run(model="baseline", path=None, scores={})
        runs = feature_database.runs()
    assert second > first
    assert list(runs.columns) == ["id", "finished_at", "model", "path", "test_accuracy", "balanced_accuracy",
                                  "test_speakers", "epochs", "training_seconds", "parameters"]
    assert list(runs["model"]) == ["cnn", "baseline"]
    assert runs.iloc[0]["test_accuracy"] == 0.85 and runs.iloc[0]["parameters"] == 12345
    with sqlite3.connect(db_path) as connection:
        stored = connection.execute("SELECT scores_json FROM runs WHERE id = ?", (first,)).fetchone()[0]
    assert json.loads(stored) == scores


@pytest.mark.parametrize(
    "values",
    [{"test_accuracy": np.float32(0.8)}, {"test_speakers": np.int64(6)}, {"scores": {"accuracy": np.float32(0.8)}}],
    ids=["float32-accuracy", "int64-speakers", "float32-in-scores"],
)
def test_record_run_accepts_numpy_scalars(db_path, values):
    arguments = {"model": "cnn", "path": "m.h5", "scores": {}, **values}
    with FeatureDatabase(db_path) as feature_database:
        feature_database.record_run(**arguments)
        runs = feature_database.runs()
    with sqlite3.connect(db_path) as connection:
        types = connection.execute("SELECT typeof(test_accuracy), typeof(test_speakers) FROM runs").fetchone()
    assert types[0] in ("real", "null") and types[1] in ("integer", "null")  # not 4- or 8-byte blobs
    for name, value in values.items():
        if name != "scores":
            assert runs.iloc[0][name] == pytest.approx(float(value))


def test_check_settings(db_path):
    with FeatureDatabase(db_path, readonly=True) as feature_database:
        feature_database.check_settings(SETTINGS)
        feature_database.check_settings(SETTINGS.replace(seed=1))  # the seed is not a feature setting
        with pytest.raises(SettingsMismatchError) as caught:
            feature_database.check_settings(SETTINGS.replace(snrs_db=(30.0, 15.0)))
        assert "snrs_db" in str(caught.value) and str(db_path) in str(caught.value)
        assert "\n" not in str(caught.value)
        with pytest.raises(SettingsMismatchError, match="n_mfcc"):
            feature_database.check_settings(SETTINGS.replace(n_mfcc=13))
        from acoustics.settings import FEATURE_FIELDS

        feature_database.check_settings(SETTINGS.replace(snrs_db=(30.0,)), fields=FEATURE_FIELDS)


def test_integrity_after_writes(db_path):
    with FeatureDatabase(db_path) as feature_database:
        feature_database.add_recordings([item(number, sex=("male", "female")[number % 2]) for number in range(30)])
        feature_database.save_split({speaker: "train" for speaker in feature_database.speakers()["id"]}, seed=1)
        feature_database.record_run(model="m", path="p", scores={"a": 1})
    connection = sqlite3.connect(db_path)
    try:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
        overview = connection.execute("SELECT count(*), min(approx_seconds) FROM feature_overview").fetchone()
    finally:
        connection.close()
    assert overview == (90, 0.3)


@pytest.mark.parametrize(
    "speaker, path, source",
    [("O'Brien; DROP TABLE speakers;--", "/data/it's \"quoted\"; DROP TABLE recordings;--.wav", "svd'; --"),
     ("Jürgen Müller-Lüdenscheidt", "/daten/Sprachaufnahmen/Grüße aus Köln.wav", "Übung"),
     ("李雷", "/录音/女声 1.wav", "语料"),
     ("%_*?[]", "/x/100% _test_.wav", "%"),
     ("x\x00y", "/x/nul.wav", "nul")],
    ids=["sql-metacharacters", "german", "chinese", "like-wildcards", "nul-byte"],
)
def test_metacharacters_are_stored_verbatim(db_path, speaker, path, source):
    with FeatureDatabase(db_path) as feature_database:
        assert feature_database.add_recordings([item(1, speaker=speaker, path=path, source=source)]) == 1
        speakers = feature_database.speakers()
        index = feature_database.feature_index()
    assert list(speakers["name"]) == [speaker]
    assert set(index["source"]) == {source}
    connection = sqlite3.connect(db_path)
    try:
        assert connection.execute("SELECT path FROM recordings").fetchall() == [(path,)]
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        connection.close()
    assert {"speakers", "recordings", "features"} <= tables


def test_database_path_with_spaces_and_uri_characters(tmp_path):
    """The file name goes into an SQLite URI: '?', '#' and '%' must not be taken for URI syntax."""
    for name in ("my features.db", "Merkmale-ä.db"):
        path = tmp_path / name
        assert create_database(path, SETTINGS) == "created"
        with FeatureDatabase(path) as feature_database:
            assert feature_database.add_recordings([item(1)]) == 1
        assert create_database(path, SETTINGS) == "kept"


@pytest.mark.parametrize("name", ["what?.db", "take#2.db", "take%20two.db"])
def test_database_path_with_uri_metacharacters(tmp_path, name):
    path = tmp_path / name
    assert create_database(path, SETTINGS) == "created"
    with FeatureDatabase(path) as feature_database:
        assert feature_database.add_recordings([item(1)]) == 1
    assert sorted(os.listdir(tmp_path)) == [name]


def test_every_database_error_is_an_acoustics_error():
    assert issubclass(BadDatabaseError, AcousticsError)
    assert database.SEXES == ("male", "female")


def test_a_database_on_a_read_only_medium_opens_read_only(tmp_path):
    """Reading stages (stage 5, train_models.py --check) read a database they cannot write: a WAL
    database without its -shm file, in a folder where SQLite cannot make one."""
    from hostile import remount_readonly, small_mount

    with small_mount(tmp_path / "medium") as mounted:
        if not mounted:
            pytest.skip("mounting a tmpfs needs root")
        path = tmp_path / "medium" / "features.db"
        create_database(path, Settings(n_mfcc=13))
        assert not (tmp_path / "medium" / "features.db-shm").exists()
        remount_readonly(tmp_path / "medium")
        with FeatureDatabase(path, readonly=True) as feature_database:
            assert feature_database.settings.n_mfcc == 13
            assert feature_database.counts()["male"]["recordings"] == 0
        with pytest.raises(BadDatabaseError, match="read-only"):
            FeatureDatabase(path)
