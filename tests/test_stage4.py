"""Stage 4 (train_models.py) run as a person runs it, on real databases of espeak-ng speech."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess

import pytest
from conftest import PYTHON, ROOT, OutputLines, assert_one_line_failure, build_feature_database, run_stage, stop_child, with_sigint

from acoustics.database import FeatureDatabase
from acoustics.dbfile import create_database
from acoustics.recipe import Recipe
from acoustics.settings import Settings

MODEL_FILES = ("cnn.h5", "lstm.h5", "cnnlstm.h5", "encoder.h5", "ensemble.h5", "best.h5")


@pytest.fixture(scope="module")
def trained_run(model_database, tmp_path_factory):
    """``train_models.py --epochs 2`` on a copy of the test database: (result, database, models folder)."""
    folder = tmp_path_factory.mktemp("stage4")
    database = folder / "features.db"
    database.write_bytes(model_database.read_bytes())
    result = run_stage("train_models.py", "--db", database, "--out", folder / "models", "--epochs", 2)
    assert result.returncode == 0, result.stdout + result.stderr
    return result, database, folder / "models"


def test_training_saves_four_models_pictures_and_the_best(trained_run):
    result, database, models_folder = trained_run
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == f"Next: python implement_model.py --db {database} --model {models_folder / 'best.h5'}"
    header = next(line for line in lines if line.strip().startswith("model"))
    for column in ("accuracy", "clean", "snr10", "snr0", "balanced accuracy", "test speakers", "seconds", "parameters"):
        assert column in header
    assert "Epoch 2/2" in result.stdout and "Best by validation balanced accuracy" in result.stdout
    for name in MODEL_FILES:
        assert (models_folder / name).stat().st_size > 10_000
    assert "=== encoder: a pretrained speaker encoder (heard thousands of voices), frozen; a new head learns" in result.stdout
    for name in ("cnn", "lstm", "cnnlstm", "encoder"):
        assert (models_folder / f"{name}_training.png").stat().st_size > 1000
    for name in ("cnn", "lstm", "cnnlstm", "encoder", "ensemble"):
        assert (models_folder / f"{name}_confusion.png").stat().st_size > 1000
    assert not [path for path in models_folder.iterdir() if path.name.startswith(".")]  # no temporary files left


def test_saved_models_load_and_carry_the_database_settings(trained_run):
    import keras

    from acoustics import modelfile, models

    _, database_path, models_folder = trained_run
    with FeatureDatabase(database_path, readonly=True) as database:
        settings = database.settings
        runs = database.runs()
    for name in MODEL_FILES:
        model, metadata = models.load_model(models_folder / name)
        assert metadata["settings"] == settings
        normalisation = metadata["normalisation"]
        recipe = metadata["recipe"]
        assert recipe == Recipe(epochs=2, encoder_epochs=2)  # train_models.py's defaults with --epochs 2, in every model
        assert len(normalisation.mean) == settings.n_mfcc
        assert 0.05 <= metadata["temperature"] <= 50 and metadata["provenance"]["synthetic_speakers"] > 0
        modelfile.check_model_settings(metadata, settings)
        assert set(metadata["scores"]["test"]["per_variant"]) == {"clean", "snr10", "snr0"}
        plain = keras.models.load_model(models_folder / name, compile=False)
        assert plain.count_params() == model.count_params()
    assert list(runs["model"]) == ["cnn", "lstm", "cnnlstm", "encoder", "ensemble"]
    assert runs["test_speakers"].tolist() == [2, 2, 2, 2, 2] and runs["test_accuracy"].between(0, 1).all()
    best_name = models.load_model(models_folder / "best.h5")[1]["model_name"]
    assert (models_folder / "best.h5").read_bytes() == (models_folder / f"{best_name}.h5").read_bytes()


def test_the_ensemble_is_the_mean_of_convnets_of_three_seeds(trained_run):
    import numpy as np

    from acoustics import models

    result, database_path, models_folder = trained_run
    ensemble, metadata = models.load_model(models_folder / "ensemble.h5")
    with FeatureDatabase(database_path, readonly=True) as database:
        seed = database.settings.seed
    for position, member_seed in ((2, seed + 1), (3, seed + 2)):
        assert f"=== ensemble: cnn with seed {member_seed} ({position} of 3)" in result.stdout
    assert f"the mean of 3 cnn models' probabilities (seeds {seed} to {seed + 2};" in result.stdout
    windows = np.random.default_rng(0).normal(size=(64, metadata["settings"].frames, metadata["settings"].n_mfcc)).astype(np.float32)
    members = [ensemble.get_layer(f"cnn_{position}") for position in (1, 2, 3)]
    member_predictions = [models.predict_windows(member, windows) for member in members]
    cnn = models.load_model(models_folder / "cnn.h5")[0]
    np.testing.assert_allclose(member_predictions[0], models.predict_windows(cnn, windows), atol=1e-6)  # the saved ConvNet
    assert not np.allclose(member_predictions[1], member_predictions[0]) and not np.allclose(member_predictions[2], member_predictions[1])
    np.testing.assert_allclose(models.predict_windows(ensemble, windows), np.mean(member_predictions, axis=0), atol=1e-5)
    assert ensemble.count_params() == 3 * cnn.count_params() + 3
    assert metadata["model_name"] == "ensemble" and 0 <= metadata["scores"]["test"]["log_loss"]


def test_the_split_is_stored_speaker_disjoint_and_stratified(trained_run):
    _, database_path, _ = trained_run
    with FeatureDatabase(database_path, readonly=True) as database:
        split = database.load_split()
        speakers = database.speakers().set_index("id")
    assert set(split) == set(speakers.index)
    for subset in ("train", "validation", "test"):
        sexes = {speakers.loc[speaker, "sex"] for speaker, where in split.items() if where == subset}
        assert sexes == {"male", "female"}, subset
    assert sum(where == "test" for where in split.values()) == 2


def test_check_accepts_a_trained_model(trained_run):
    _, database_path, models_folder = trained_run
    result = run_stage("train_models.py", "--db", database_path, "--check", models_folder / "best.h5")
    assert result.returncode == 0, result.stderr
    assert "settings match" in result.stdout


# Bad input: one clear line, exit status 1, no traceback -------------------------------------------
def test_missing_database(tmp_path):
    assert_one_line_failure(run_stage("train_models.py", "--db", tmp_path / "none.db"), "none.db", "set_up_sql.py")


def test_empty_database(tmp_path):
    create_database(tmp_path / "empty.db", Settings())
    assert_one_line_failure(run_stage("train_models.py", "--db", tmp_path / "empty.db"), "no features", "python speech_prep.py")


def test_one_sex_only(model_clips, tmp_path):
    database = build_feature_database(tmp_path / "men.db", [clip for clip in model_clips if clip["sex"] == "male"][:9])
    assert_one_line_failure(run_stage("train_models.py", "--db", database), "only male speakers", "speech_prep.py", "female")


def test_too_few_speakers(model_clips, tmp_path):
    clips = [clip for clip in model_clips if clip["speaker"] in {"male1", "male2", "female1", "female2", "female3"}]
    database = build_feature_database(tmp_path / "few.db", clips)
    assert_one_line_failure(run_stage("train_models.py", "--db", database), "at least 3 speakers of each sex",
                            "2 male", "speech_prep.py")


def test_features_that_disagree_with_the_settings(model_clips, tmp_path):
    database = build_feature_database(tmp_path / "odd.db", model_clips[::2], n_mfcc_stored=13)
    assert_one_line_failure(run_stage("train_models.py", "--db", database), "13 coefficients", "n_mfcc 40")


def test_foreign_database(tmp_path):
    foreign = tmp_path / "other.db"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)").connection.close()
    assert_one_line_failure(run_stage("train_models.py", "--db", foreign), "not a feature database")


@pytest.mark.parametrize("kind", ["text", "truncated", "settings"])
def test_bad_model_file_on_check(kind, trained_run, tmp_path):
    _, database_path, models_folder = trained_run
    model = tmp_path / "model.h5"
    database = database_path
    if kind == "text":
        model.write_text("hello")
        words = ("not a model made by train_models.py",)
    elif kind == "truncated":
        model.write_bytes((models_folder / "cnn.h5").read_bytes()[:20_000])
        words = ("damaged",)
    else:
        model.write_bytes((models_folder / "cnn.h5").read_bytes())
        database = tmp_path / "other.db"
        create_database(database, Settings(n_mfcc=13))
        words = ("different feature settings", "n_mfcc", "train_models.py")
    message = assert_one_line_failure(run_stage("train_models.py", "--db", database, "--check", model), *words)
    assert str(model) in message


def test_ctrl_c_keeps_the_best_weights_and_saves(model_database, tmp_path):
    database = tmp_path / "features.db"
    database.write_bytes(model_database.read_bytes())
    process = subprocess.Popen(
        with_sigint([PYTHON, ROOT / "train_models.py", "--db", database, "--out", tmp_path / "models",
                     "--epochs", "200", "--pick", "ensemble"]),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    output = OutputLines(process)
    try:
        line = output.readline(timeout=300)
        while line and not line.startswith("Epoch 3/"):
            line = output.readline(timeout=300)
        process.send_signal(signal.SIGINT)
        stop_child(process, timeout=120)
    finally:
        process.kill()
    text = output.text()
    assert process.returncode == 0, text + process.stderr.read()
    assert "Stopped by Ctrl-C" in text and "Next: python implement_model.py --db" in text
    # the ensemble was never trained, so the validation speakers chose the copy
    assert "(--pick ensemble: that model was not trained, so the validation speakers chose)" in text
    from acoustics import models

    _, metadata = models.load_model(tmp_path / "models" / "cnn.h5")
    assert metadata["scores"]["interrupted"] and metadata["scores"]["epochs"] >= 2
    assert (tmp_path / "models" / "best.h5").exists()


def test_pick_chooses_the_model_that_is_copied(model_database, tmp_path):
    database = tmp_path / "features.db"
    database.write_bytes(model_database.read_bytes())
    result = run_stage("train_models.py", "--db", database, "--out", tmp_path / "models", "--model", "cnn", "--epochs", 1,
                       "--pick", "cnn", "--name", "chosen")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Picked with --pick: cnn (validation balanced accuracy" in result.stdout
    assert f"copied to {tmp_path / 'models' / 'chosen.h5'}" in result.stdout
    assert (tmp_path / "models" / "chosen.h5").read_bytes() == (tmp_path / "models" / "cnn.h5").read_bytes()


def test_picking_a_model_the_run_does_not_train_is_refused_before_any_work(tmp_path):
    result = run_stage("train_models.py", "--db", tmp_path / "none.db", "--model", "cnn", "--pick", "ensemble")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "--pick ensemble: this run trains only cnn; add --model ensemble (or --model all), or leave --pick out" in result.stderr
    assert not (tmp_path / "none.db").exists()


def test_a_negative_seed_is_refused_before_any_work(tmp_path):
    result = run_stage("train_models.py", "--db", tmp_path / "none.db", "--seed", -1)
    assert result.returncode == 2 and "argument --seed: must not be negative, not -1" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
