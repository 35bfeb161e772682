"""Advisory locks: one train_models.py per --out folder, no reset of a database a training reads."""

from __future__ import annotations

import pytest

from acoustics import locks
from acoustics.database import FeatureDatabase
from acoustics.dbfile import create_database
from acoustics.settings import Settings


def test_a_second_holder_of_an_output_folder_is_refused_with_the_first_ones_pid(tmp_path):
    folder = tmp_path / "models"
    with locks.hold_output_folder(folder):
        assert (folder / ".train_models.lock").exists()
        with pytest.raises(locks.BusyError) as refused:
            with locks.hold_output_folder(folder):
                pass
    message = str(refused.value)
    assert "Another train_models.py is writing to" in message and f"(pid {__import__('os').getpid()})" in message
    assert "choose another --out" in message
    assert not folder.exists()  # made for the run, left empty: removed with its lock file
    with locks.hold_output_folder(folder):  # free again
        (folder / "cnn.h5").write_bytes(b"model")
    assert sorted(path.name for path in folder.iterdir()) == ["cnn.h5"]


def test_trainings_share_a_database_and_a_reset_waits_for_none_of_them(tmp_path):
    database = tmp_path / "features.db"
    create_database(database, Settings())
    with locks.hold_database_for_training(database), locks.hold_database_for_training(database):
        with pytest.raises(locks.BusyError, match="train_models.py is training on this database"):
            create_database(database, Settings(), reset=True)
        with FeatureDatabase(database, readonly=True) as opened:
            assert opened.settings == Settings()
    assert not locks.database_lock_path(database).exists()
    assert create_database(database, Settings(), reset=True) == "reset"


def test_a_training_waits_for_a_reset_under_way_then_gives_up_with_one_line(tmp_path):
    database = tmp_path / "features.db"
    create_database(database, Settings())
    with locks.hold_database_for_reset(database):
        with pytest.raises(locks.BusyError, match="being rebuilt"):
            with locks.hold_database_for_training(database, wait_seconds=0.2):
                pass


def test_no_lock_where_no_lock_file_can_be_made(tmp_path):
    with locks.hold_database_for_training(tmp_path / "no" / "such" / "features.db"):
        pass
