"""acoustics.training and acoustics.models on a real feature database made from espeak-ng speech."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pandas
import pytest

from acoustics import features, training
from acoustics.database import FeatureDatabase
from acoustics.errors import AcousticsError, BadModelError, BadParameterError, NotEnoughDataError, SettingsMismatchError
from acoustics.recipe import Recipe
from acoustics.settings import Settings
from conftest import OutputLines, one_line, restamp

models = pytest.importorskip("acoustics.models")  # imports TensorFlow (~4 s), once for the module
import keras  # noqa: E402

from acoustics import batches, modelfile, networks  # noqa: E402
from acoustics import recipe as recipes  # noqa: E402

#: Frames in one model input window at the default settings.
FRAMES = Settings().frames


def speakers_frame(males: int, females: int) -> pandas.DataFrame:
    sexes = ["male"] * males + ["female"] * females
    return pandas.DataFrame({"id": range(1, len(sexes) + 1), "sex": sexes})


# Split -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("males, females", [(8, 8), (15, 5), (3, 3), (40, 7)])
def test_split_is_stratified_with_both_sexes_everywhere(males, females):
    speakers = speakers_frame(males, females)
    split = training.split_speakers(speakers, seed=7)
    assert set(split) == set(speakers["id"])
    assert training.is_usable_split(split, speakers)
    for sex, count in (("male", males), ("female", females)):
        ids = speakers.loc[speakers["sex"] == sex, "id"]
        test_count = sum(split[i] == "test" for i in ids)
        validation_count = sum(split[i] == "validation" for i in ids)
        assert test_count == max(1, round(count * 0.15)) and validation_count == max(1, round(count * 0.15))


def test_split_depends_on_the_seed_only():
    speakers = speakers_frame(20, 20)
    assert training.split_speakers(speakers, 1) == training.split_speakers(speakers.sample(frac=1, random_state=3), 1)
    assert training.split_speakers(speakers, 1) != training.split_speakers(speakers, 2)


@pytest.mark.parametrize("real, synthetic", [((5, 5), (21, 20)), ((3, 4), (2, 30)), ((2, 5), (21, 20))])
def test_split_keeps_real_voices_in_validation_and_test(real, synthetic):
    """Mixed corpora (EmoDB + demo): with 3 or more real speakers of each sex, validation and test both
    hold real speakers of each sex; otherwise the sex-only split is used, still usable."""
    frame = pandas.concat([speakers_frame(*real).assign(synthetic=0),
                           speakers_frame(*synthetic).assign(synthetic=1)], ignore_index=True)
    frame["id"] = range(1, len(frame) + 1)
    split = training.split_speakers(frame, seed=3)
    assert training.is_usable_split(split, frame)
    present = {(split[row.id], row.sex, row.synthetic) for row in frame.itertuples()}
    if min(real) >= 3:
        for subset in ("validation", "test"):
            assert {(subset, "male", 0), (subset, "female", 0)} <= present
    assert training.split_speakers(frame, seed=3) == split


@pytest.mark.parametrize("males, females", [(2, 8), (8, 0), (1, 1)])
def test_split_refuses_too_few_speakers(males, females):
    with pytest.raises(NotEnoughDataError) as caught:
        training.split_speakers(speakers_frame(males, females), seed=1)
    assert "at least 3 speakers of each sex" in one_line(caught.value) and "speech_prep.py" in str(caught.value)


def test_split_is_stored_and_reused_while_the_speakers_stay(model_database_copy):
    with FeatureDatabase(model_database_copy) as database:
        index, split, reused = training.prepare_data(database, seed=5)
        assert not reused and database.load_split() == split
        index_again, split_again, reused_again = training.prepare_data(database, seed=99)
        assert reused_again and split_again == split
        _, redrawn, reused_third = training.prepare_data(database, seed=99, new_split=True)
        assert not reused_third and database.load_split() == redrawn
    # every variant of a recording sits in its speaker's subset; no speaker is in two subsets
    assert (index.groupby("recording_id")["subset"].nunique() == 1).all()
    assert (index.groupby("speaker_id")["subset"].nunique() == 1).all()
    assert set(index["variant"]) == {"clean", "snr10", "snr0"}


# Windows, statistics, batches --------------------------------------------------------------------
def test_window_counts_match_the_windows_cut():
    frames = 100
    for count in (1, 37, 99, 100, 101, 149, 150, 151, 199, 200, 201, 1234):
        matrix = np.zeros((count, 4), np.float32)
        assert training.window_counts([count], frames)[0] == len(features.windows(matrix, frames)), count


def test_streamed_statistics_equal_in_memory_ones(model_database):
    with FeatureDatabase(model_database, readonly=True) as database:
        ids = database.feature_index()["feature_id"].tolist()
        normalisation = training.feature_statistics(database, ids, database.settings)
        everything = np.concatenate(list(database.load_features(ids).values())).astype(np.float64)
    np.testing.assert_allclose(normalisation.mean, everything.mean(axis=0), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(normalisation.std, everything.std(axis=0), rtol=1e-5, atol=1e-4)


def test_training_batches_hold_only_training_speakers_and_every_window_once(model_database_copy):
    with FeatureDatabase(model_database_copy) as database:
        index, split, _ = training.prepare_data(database, seed=3)
        stored_split = database.load_split()
        settings = database.settings
    train_rows = index[index["subset"] == "train"]
    test_speakers = {speaker for speaker, subset in stored_split.items() if subset == "test"}
    windows = batches.WindowBatches(model_database_copy, train_rows, settings, training.Normalisation(np.zeros(40), np.ones(40)),
                                    batch_size=32, shuffle=True, seed=3, class_weights={0: 1.0, 1: 2.0})
    training_speakers = set(index.set_index("feature_id").loc[windows.feature_ids, "speaker_id"])
    assert training_speakers and not training_speakers & test_speakers
    assert all(stored_split[speaker] == "train" for speaker in training_speakers)
    expected = int(training.window_counts(train_rows["frame_count"], settings.frames).sum())
    first_epoch = [windows[i] for i in range(len(windows))]
    assert sum(len(x) for x, _, _ in first_epoch) == expected
    assert all(len(x) == 32 for x, _, _ in first_epoch[:-1])
    assert all(np.array_equal(np.where(y[:, 0] > 0.5, 2.0, 1.0), weights) for _, y, weights in first_epoch)
    males = sum(float(y.sum()) for _, y, _ in first_epoch)
    assert males == training.window_counts(train_rows.loc[train_rows["label"] == 1, "frame_count"], settings.frames).sum()
    again = windows[0]
    assert np.array_equal(again[0], first_epoch[0][0])  # the same batch twice: same windows
    windows.on_epoch_end()
    assert not np.array_equal(windows[0][0], first_epoch[0][0])  # a new epoch: new order


def test_window_weights_follow_loudness_and_ignore_the_microphone_gain(spoken_clips):
    from acoustics import audio

    settings = Settings()
    speech, _ = audio.load_audio(spoken_clips["male"], settings.sample_rate)
    # The sentence twice, cut to whole window hops (3.2 s), so that the quieter repeat's windows cut it where
    # the first one's do: espeak-ng's pauses are digital silence, which weighs heavily in a window's level.
    step = settings.frames // 2 * settings.hop_length
    speech = np.tile(audio.trim_silence(speech, 30.0), 2)
    speech = speech[: len(speech) // step * step]
    silence = np.zeros(4 * settings.sample_rate, dtype=np.float32)
    quieter = speech * np.float32(10 ** (-6 / 20))  # the same words 6 dB quieter
    signal = np.concatenate([speech, silence, quieter])
    matrix = features.mfcc(signal, settings)
    raw_windows = features.windows(matrix, settings.frames)
    weights = training.window_weights(raw_windows, settings)
    assert weights.shape == (len(raw_windows),) and weights.max() == 1.0 and np.all(weights >= 0)
    hop_seconds = settings.hop_length / settings.sample_rate
    frame_numbers = np.arange(len(matrix), dtype=np.float32)[:, None]
    starts = features.windows(frame_numbers, settings.frames)[:, 0, 0] * hop_seconds  # where each window begins
    window_seconds = settings.frames * hop_seconds
    speech_seconds = len(speech) / settings.sample_rate
    in_silence = (starts >= speech_seconds) & (starts + window_seconds <= speech_seconds + 4.0)
    assert in_silence.sum() >= 3 and weights[in_silence].max() < 1e-6  # digital silence does not vote
    first_half = weights[starts + window_seconds <= speech_seconds]
    assert first_half.max() == 1.0
    # the repeat 6 dB quieter counts much less, but still counts: exp(-6 dB / 2 dB) = 0.05 if every mel band
    # fell by 6 dB; the quietest bands lie on the -100 dB floor, which does not fall
    second_half = weights[starts >= speech_seconds + 4.0]
    assert np.exp(-6 / Recipe().loudness_weight_db) / 2 < second_half.max() < np.exp(-3 / Recipe().loudness_weight_db)
    # a microphone 20 dB softer lowers the speech's levels alike: its windows keep their weights
    softer = training.window_weights(features.windows(features.mfcc(signal * np.float32(0.1), settings), settings.frames), settings)
    np.testing.assert_allclose(softer[weights > 0.5], weights[weights > 0.5], atol=0.05)
    assert softer[in_silence].max() < 1e-6


@pytest.mark.parametrize("shape", [(0, 100, 40), (100, 40), (3,)])
def test_window_weights_reject_what_is_not_a_stack_of_windows(shape):
    with pytest.raises(ValueError, match="window_weights"):
        training.window_weights(np.zeros(shape, dtype=np.float32), Settings())


# Models ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [name for name in recipes.NETWORKS if name != "encoder"])  # test_encoder.py has it
def test_builders_give_p_male_from_a_window(name):
    model = networks.build_model(name, Settings(), seed=1)
    assert model.input_shape == (None, FRAMES, 40) and model.output_shape == (None, 1)
    assert not any(type(layer).__name__ in ("Lambda", "Normalization") for layer in model.layers)
    assert model.count_params() < 100_000


@pytest.mark.parametrize("names", [("cnn",), ()])
def test_combine_models_needs_two_models(names):
    settings = Settings()
    with pytest.raises(ValueError, match="two or more"):
        networks.combine_models([networks.build_model(name, settings, seed=1) for name in names], settings)


def test_combine_models_averages_same_named_networks_and_saves_them(tmp_path):
    """Three ConvNets of different seeds (all named 'cnn') in one model, as stage 4's ensemble."""
    settings = Settings()
    members = [networks.build_model("cnn", settings, seed=seed) for seed in (1, 2, 3)]
    ensemble = networks.combine_models(members, settings)
    assert [layer.name for layer in ensemble.layers if isinstance(layer, keras.Model)] == ["cnn_1", "cnn_2", "cnn_3"]
    windows = np.random.default_rng(0).normal(size=(6, FRAMES, 40)).astype(np.float32)
    predictions = [models.predict_windows(member, windows) for member in members]
    assert not np.allclose(predictions[0], predictions[1])  # other seeds, other networks
    expected = np.mean(predictions, axis=0)
    np.testing.assert_allclose(models.predict_windows(ensemble, windows), expected, atol=1e-6)
    ensemble.save(tmp_path / "ensemble.h5")
    again = keras.models.load_model(tmp_path / "ensemble.h5", compile=False, safe_mode=True)
    np.testing.assert_allclose(models.predict_windows(again, windows), expected, atol=1e-6)


@pytest.fixture(scope="module")
def trained(model_database, tmp_path_factory):
    """A CNN trained for 2 epochs on a copy of the test database, saved; and its training data."""
    folder = tmp_path_factory.mktemp("trained")
    database_path = folder / "features.db"
    database_path.write_bytes(model_database.read_bytes())
    with FeatureDatabase(database_path) as database:
        settings = database.settings
        index, _, _ = training.prepare_data(database, seed=settings.seed)
        train_rows = index[index["subset"] == "train"]
        normalisation = training.feature_statistics(database, train_rows["feature_id"], settings)

    def train_once():
        weights = training.balanced_class_weights(train_rows["label"], training.window_counts(train_rows["frame_count"], settings.frames))
        train = batches.WindowBatches(database_path, train_rows, settings, normalisation, batch_size=64, shuffle=True,
                                     seed=settings.seed, class_weights=weights)
        validation = batches.WindowBatches(database_path, index[index["subset"] == "validation"], settings, normalisation)
        model = networks.build_model("cnn", settings, settings.seed)
        fit = models.fit_model(model, train, validation, epochs=2, verbose=0)
        return model, fit

    model, fit = train_once()
    metadata = {"model_name": "cnn", "settings": settings, "normalisation": normalisation,
                "scores": {"test": {"accuracy": 0.5}}, "history": fit["history"]}
    path = models.save_model(model, folder / "cnn.h5", metadata)
    return {"path": path, "model": model, "fit": fit, "train_once": train_once, "database": database_path,
            "index": index, "settings": settings, "normalisation": normalisation}


def test_fit_reports_history_and_keeps_the_last_epoch_of_its_cosine_schedule(trained):
    fit, model = trained["fit"], trained["model"]
    assert fit["epochs"] == 2 and not fit["interrupted"] and fit["best_epoch"] == 2
    assert set(fit["history"]) >= {"loss", "val_loss", "accuracy", "val_accuracy"}
    # The cosine has run its course: the learning rate is 0 after the last step.
    assert float(model.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)
    assert int(model.optimizer.iterations) > 0


def test_train_network_follows_the_recipe_and_augments_only_training_batches(trained):
    """models.train_network: the recipe's epochs and learning rate; its augmentation changes the training
    windows (not the labels), and one stored variant of each recording is used per epoch."""
    settings, index, normalisation = trained["settings"], trained["index"], trained["normalisation"]
    recipe = Recipe(epochs=1, learning_rate=2e-3)
    train_rows = index[index["subset"] == "train"]
    train = batches.WindowBatches(trained["database"], train_rows, settings, normalisation, shuffle=True, seed=1, recipe=recipe)
    plain = batches.WindowBatches(trained["database"], train_rows, settings, normalisation, shuffle=True, seed=1)
    recordings = train_rows.drop_duplicates("recording_id")
    assert int(train.ends[-1]) == int(training.window_counts(recordings["frame_count"], settings.frames).sum())
    assert int(plain.ends[-1]) == int(training.window_counts(train_rows["frame_count"], settings.frames).sum())
    used = set(train_rows.set_index("feature_id").loc[train.feature_ids[train.order], "recording_id"])
    assert used == set(recordings["recording_id"])  # every recording once, in one of its variants
    x, y = train[0]
    assert np.isfinite(x).all() and set(np.unique(y)) <= {0.0, 1.0}
    validation = batches.WindowBatches(trained["database"], index[index["subset"] == "validation"], settings, normalisation)
    model, fit = models.train_network("cnn", train, validation, settings, recipe, seed=1, verbose=0)
    assert fit["epochs"] == 1 and fit["best_epoch"] == 1 and len(fit["history"]["val_loss"]) == 1
    schedule = model.optimizer._learning_rate
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    assert schedule.initial_learning_rate == pytest.approx(2e-3)
    assert schedule.decay_steps == len(train)


@pytest.mark.parametrize("epochs, words", [
    (10, "10 epochs, the learning rate falling along a cosine"),
    (1, "1 epoch, the learning rate falling along a cosine"),
])
def test_training_plan_in_words(epochs, words):
    assert networks.training_plan(Recipe(epochs=epochs)) == words


def test_saved_model_loads_with_metadata_and_with_plain_keras(trained):
    model, metadata = models.load_model(trained["path"])
    assert metadata["settings"] == trained["settings"] and metadata["class_names"] == ["female", "male"]
    assert metadata["model_name"] == "cnn" and metadata["version"] == models.__version__
    np.testing.assert_array_equal(metadata["normalisation"].mean, trained["normalisation"].mean)
    np.testing.assert_array_equal(metadata["normalisation"].std, trained["normalisation"].std)
    assert metadata["scores"] == {"test": {"accuracy": 0.5}} and len(metadata["history"]["loss"]) == 2
    plain = keras.models.load_model(trained["path"], compile=False)
    window_batch = np.random.default_rng(0).standard_normal((5, FRAMES, 40)).astype(np.float32)
    expected = trained["model"].predict_on_batch(window_batch)
    np.testing.assert_array_equal(model.predict_on_batch(window_batch), expected)
    np.testing.assert_array_equal(plain.predict_on_batch(window_batch), expected)
    with h5py.File(trained["path"], "r") as handle:
        assert {"acoustics_settings", "acoustics_normalisation_mean", "acoustics_version"} <= set(handle.attrs)
        assert "acoustics_normalisation_cmn" not in handle.attrs  # an option of earlier versions


def test_predictions_are_deterministic_and_clip_level(trained, model_clips):
    from acoustics import audio

    model, metadata = models.load_model(trained["path"])
    again, metadata_again = models.load_model(trained["path"])
    signal, _ = audio.load_audio(model_clips[0]["path"], 16000)
    matrix = features.mfcc(audio.trim_silence(signal, 30.0), metadata["settings"])
    first = models.predict_clip(model, metadata, matrix)
    assert 0.0 <= first <= 1.0
    assert models.predict_clip(model, metadata, matrix) == first == models.predict_clip(again, metadata_again, matrix)
    from acoustics import verdict  # stage 5's path from a signal: its speech, its MFCCs, predict_clip

    prepared = verdict.prepare_signal(metadata, signal, "clip")
    assert verdict.classify_signal(model, metadata, signal, "clip").probability_male == models.predict_clip(model, metadata, prepared.matrix)
    raw_windows = features.windows(matrix, FRAMES)
    window_probabilities = model.predict_on_batch(trained["normalisation"].apply(raw_windows))[:, 0]
    weights = training.window_weights(raw_windows, metadata["settings"])
    assert len(raw_windows) > 1 and weights.max() == 1.0
    assert first == pytest.approx(float(np.average(window_probabilities, weights=weights)), abs=1e-6)
    # four seconds of digital silence after the speech get no say in the verdict: its windows weigh nothing
    silence = features.mfcc(np.zeros(4 * 16000, dtype=np.float32), metadata["settings"])
    padded = features.windows(np.concatenate([matrix, silence]), FRAMES)
    silent = np.all(padded == silence[:FRAMES], axis=(1, 2))
    padded_weights = training.window_weights(padded, metadata["settings"])
    assert silent.sum() >= 3 and padded_weights[silent].max() < 1e-3
    heard = model.predict_on_batch(trained["normalisation"].apply(padded[~silent]))[:, 0]
    assert models.predict_clip(model, metadata, np.concatenate([matrix, silence])) == pytest.approx(
        float(np.average(heard, weights=padded_weights[~silent])), abs=1e-3)
    changed = matrix.copy()
    changed[:, 1] += 20.0
    assert models.predict_clip(model, metadata, changed) != first
    with pytest.raises(ValueError):
        models.predict_clip(model, metadata, matrix[:, :13])


def test_training_twice_with_the_same_seed_gives_the_same_model(trained):
    model_again, fit_again = trained["train_once"]()
    assert fit_again["history"] == trained["fit"]["history"]
    window_batch = np.random.default_rng(1).standard_normal((8, FRAMES, 40)).astype(np.float32)
    np.testing.assert_array_equal(model_again.predict_on_batch(window_batch), trained["model"].predict_on_batch(window_batch))


def test_clip_scores_on_test_speakers(trained):
    index = trained["index"]
    test_rows = index[index["subset"] == "test"]
    with FeatureDatabase(trained["database"], readonly=True) as database:
        probabilities = models.predict_clips(trained["model"], database, test_rows, trained["settings"], trained["normalisation"])
    model, metadata = models.load_model(trained["path"])
    test_ids = [int(feature_id) for feature_id in test_rows["feature_id"]]
    with FeatureDatabase(trained["database"], readonly=True) as database:
        loaded = database.load_features(test_ids)
    assert probabilities[0] == pytest.approx(models.predict_clip(model, metadata, loaded[test_ids[0]]), abs=1e-5)
    # the same clips held in memory, in batches of a few clips, get the same verdicts
    in_memory = models.predict_matrices(trained["model"], [loaded[feature_id] for feature_id in test_ids],
                                        trained["settings"], trained["normalisation"], windows_per_batch=10)
    np.testing.assert_allclose(in_memory, probabilities, atol=1e-5)
    scores = training.clip_scores(test_rows, probabilities)
    assert list(scores["per_variant"]) == ["clean", "snr10", "snr0"]
    assert scores["speakers"] == 2 and scores["clips"] == len(test_rows) == 2 * 3 * 3
    assert np.sum(scores["confusion"]) == len(test_rows)
    assert 0 <= scores["balanced_accuracy"] <= 1 and 0 <= scores["accuracy"] <= 1
    labels = test_rows["label"].to_numpy()
    expected_loss = -np.mean(labels * np.log(probabilities) + (1 - labels) * np.log(1 - probabilities))
    assert scores["log_loss"] == pytest.approx(expected_loss, rel=1e-6)


@pytest.mark.parametrize("probabilities, loss", [([1.0, 0.0], 0.0), ([0.0, 1.0], -np.log(1e-7)), ([0.5, 0.5], np.log(2))])
def test_clip_log_loss_is_finite_at_the_extremes(probabilities, loss):
    index = pandas.DataFrame({"label": [1, 0], "variant": ["clean", "clean"], "snr_db": [None, None], "speaker_id": [1, 2]})
    assert training.clip_scores(index, probabilities)["log_loss"] == pytest.approx(loss, rel=1e-4, abs=1e-6)


def test_model_settings_mismatch_is_one_clear_line(trained):
    _, metadata = models.load_model(trained["path"])
    modelfile.check_model_settings(metadata, trained["settings"])
    with pytest.raises(SettingsMismatchError) as caught:
        modelfile.check_model_settings(metadata, trained["settings"].replace(n_mfcc=13), source="The database x.db")
    message = one_line(caught.value)
    assert "n_mfcc" in message and str(trained["path"]) in message and "train_models.py" in message


def test_normalisation_scales_each_coefficient_and_leaves_the_input_alone():
    stack = np.random.default_rng(3).normal(5, 3, (4, 100, 40)).astype(np.float32)
    before = stack.copy()
    normalised = training.Normalisation(np.full(40, 5, np.float32), np.full(40, 3, np.float32)).apply(stack)
    np.testing.assert_allclose(normalised, (stack - 5) / 3, rtol=1e-6)
    assert normalised.dtype == np.float32
    np.testing.assert_array_equal(stack, before)


@pytest.mark.parametrize("mean, std, words", [
    (np.zeros(40), np.ones(39), "equal-length"),
    (np.zeros((2, 40)), np.ones((2, 40)), "equal-length"),
    (np.zeros(0), np.ones(0), "equal-length"),
    (np.zeros(40), np.zeros(40), "positive"),
    (np.full(40, np.nan), np.ones(40), "finite"),
])
def test_bad_normalisation_is_refused(mean, std, words):
    from acoustics.errors import BadParameterError

    with pytest.raises(BadParameterError, match=words):
        training.Normalisation(mean, std)


@pytest.mark.parametrize("attribute, value, loads", [
    ("normalisation_coefficients", 40, True), ("normalisation_cmn", 0, True),  # as earlier versions saved the defaults
    ("normalisation_coefficients", 20, False), ("normalisation_cmn", 1, False),  # inputs this version cannot give
])
def test_a_model_made_with_a_retired_option_is_refused_in_one_line(trained, tmp_path, attribute, value, loads):
    older = tmp_path / "older.h5"
    older.write_bytes(trained["path"].read_bytes())
    with h5py.File(older, "a") as handle:
        handle.attrs["acoustics_" + attribute] = value
        recipe = json.loads(handle.attrs["acoustics_recipe"])
        handle.attrs["acoustics_recipe"] = json.dumps(recipe | {"cmn": False, "coefficients": 40, "all_variants": False})
    restamp(older)
    if loads:
        assert models.load_model(older)[1]["recipe"] == Recipe.from_json(json.dumps(recipe))
        return
    with pytest.raises(BadModelError) as caught:
        models.load_model(older)
    one_line(caught.value, str(older), "per-window CMN or fewer coefficients", "train_models.py")


# Bad model files ---------------------------------------------------------------------------------
def test_bad_model_files_are_refused_with_one_line(trained, tmp_path):
    text_file = tmp_path / "notes.h5"
    text_file.write_text("not a model")
    foreign = tmp_path / "foreign.h5"
    keras.models.load_model(trained["path"], compile=False).save(foreign)  # a Keras file without our metadata
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(trained["path"].read_bytes()[:5000])
    newer = tmp_path / "newer.h5"
    newer.write_bytes(trained["path"].read_bytes())
    with h5py.File(newer, "a") as handle:
        handle.attrs["acoustics_version"] = "9.0.0"
    for path, words in ((tmp_path / "missing.h5", "no model file"), (text_file, "not a model made by"),
                        (foreign, "not a model made by"), (truncated, "damaged"), (newer, "version 9.0.0")):
        with pytest.raises(BadModelError) as caught:
            models.load_model(path)
        message = one_line(caught.value)
        assert str(path) in message and words in message and "python train_models.py" in message


@pytest.mark.parametrize("change", ["a weight", "a setting", "the temperature", "Keras' description", "no checksum"])
def test_a_model_changed_after_saving_is_refused_in_one_line(trained, tmp_path, change):
    """The checksum taken at saving covers every weight, the project's metadata and Keras' own description."""
    from acoustics import modelfile

    path = tmp_path / "changed.h5"
    path.write_bytes(trained["path"].read_bytes())
    assert modelfile.read_metadata(path)["model_name"] == "cnn"
    with h5py.File(path, "a") as handle:
        if change == "a weight":
            names = []
            handle["model_weights"].visit(lambda name: names.append(name) if isinstance(handle["model_weights"][name], h5py.Dataset) else None)
            handle["model_weights"][names[len(names) // 2]][...] += 0.001
        elif change == "a setting":
            before = str(handle.attrs["acoustics_settings"])
            handle.attrs["acoustics_settings"] = before.replace('"hop_ms": 10.0', '"hop_ms": 20.0')
            assert str(handle.attrs["acoustics_settings"]) != before
        elif change == "the temperature":
            handle.attrs["acoustics_temperature"] = float(handle.attrs["acoustics_temperature"]) * 1.5
        elif change == "Keras' description":
            before = str(handle.attrs["model_config"])
            handle.attrs["model_config"] = before.replace('"rate": 0.3', '"rate": 0.0')
            assert str(handle.attrs["model_config"]) != before
        else:
            del handle.attrs[modelfile.DIGEST_ATTRIBUTE]
    for read in (modelfile.read_metadata, models.load_model):
        with pytest.raises(BadModelError) as caught:
            read(path)
        one_line(caught.value, str(path), "changed after it was saved", "python train_models.py")


def test_adding_provenance_stamps_the_checksum_again(trained, tmp_path):
    from acoustics import modelfile

    path = tmp_path / "with-bench.h5"
    path.write_bytes(trained["path"].read_bytes())
    modelfile.add_provenance(path, {"bench": {"accuracy": {"worst": {"clean": 0.9}}}})
    assert models.load_model(path)[1]["provenance"]["bench"]["accuracy"]["worst"]["clean"] == 0.9


def test_failed_save_keeps_the_previous_file_and_leaves_no_temporary(trained, tmp_path):
    path = tmp_path / "cnn.h5"
    path.write_bytes(trained["path"].read_bytes())
    before = path.read_bytes()
    model, metadata = models.load_model(path)
    with pytest.raises(ValueError):
        models.save_model(model, path, dict(metadata, normalisation=training.Normalisation(np.zeros(3), np.ones(3))))  # refused before writing
    with pytest.raises(TypeError):
        models.save_model(model, path, dict(metadata, scores={"bad": object()}))  # not JSON: refused before writing
    occupied = tmp_path / "folder.h5"
    occupied.mkdir()
    with pytest.raises(OSError):  # fails at the final rename, after the temporary file was written
        models.save_model(model, occupied, metadata)
    assert path.read_bytes() == before
    assert sorted(item.name for item in tmp_path.iterdir()) == ["cnn.h5", "folder.h5"]


def test_a_save_onto_a_nearly_full_disk_is_one_line_before_hdf5_writes(trained, tmp_path, monkeypatch):
    """HDF5 can crash the process when the disk fills during a write, so the space is checked first."""
    import shutil

    path = tmp_path / "cnn.h5"
    path.write_bytes(trained["path"].read_bytes())
    before = path.read_bytes()
    model, metadata = models.load_model(path)
    assert len(before) < models.saved_bytes(model) < 3 * len(before) + 1_000_000  # an upper bound, not far above
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage._replace(free=len(before) // 2))
    with pytest.raises(AcousticsError) as caught:
        models.save_model(model, path, metadata)
    one_line(caught.value, f"{tmp_path}: the disk is too full for the model cnn.h5 (it needs about")
    assert "free some space there, or save the models in another folder (stage 4: --out)" in str(caught.value)
    assert path.read_bytes() == before and [item.name for item in tmp_path.iterdir()] == ["cnn.h5"]


def test_killed_save_keeps_a_loadable_file(trained, tmp_path):
    """SIGKILL in the middle of a save (of a 6 MB model, to hit the write): the old file survives whole."""
    path = tmp_path / "cnn.h5"
    path.write_bytes(trained["path"].read_bytes())
    script = textwrap.dedent(f"""
        import time
        from acoustics import models
        keras = models.keras
        _, metadata = models.load_model({str(path)!r})
        inputs = keras.Input((100, 40))
        big = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Dense(400)(keras.layers.Flatten()(inputs))))
        for number in range(1000):
            started = time.perf_counter()
            print("saving", number, flush=True)
            models.save_model(big, {str(tmp_path / "big.h5")!r} if number < 3 else {str(path)!r}, metadata)
            print("took", time.perf_counter() - started, flush=True)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                               cwd=str(Path(models.__file__).parents[1]))
    took, output = [], OutputLines(process)
    try:
        for line in iter(lambda: output.readline(timeout=300), ""):
            if line.startswith("took"):
                took.append(float(line.split()[1]))
            if line.strip() == "saving 3":
                time.sleep(min(took) / 2)
                process.kill()  # SIGKILL in the middle of the first save over cnn.h5
                break
    finally:
        process.kill()
        process.wait(timeout=30)
    _, metadata = models.load_model(path)
    assert metadata["model_name"] == "cnn"
    assert path.read_bytes() == trained["path"].read_bytes()
    leftovers = [item.name for item in tmp_path.iterdir() if item.name.startswith(".cnn.h5.")]
    assert leftovers, "the kill came after the save; the test did not exercise a half-written file"


def test_train_in_memory_trains_as_the_recipe_says_on_matrices_in_memory(model_database_copy):
    """The benchmarks' training (features in memory) normalises as stage 4 does and runs the recipe's epochs."""
    from acoustics import trainer

    with FeatureDatabase(model_database_copy) as database:
        settings = database.settings
        index, _, _ = training.prepare_data(database, seed=settings.seed)
        rows = index[index["subset"] == "train"]
        stored = training.read_matrices(database, rows["feature_id"], settings.n_mfcc)
        expected = training.feature_statistics(database, rows["feature_id"], settings)
    recipe = Recipe(epochs=2, ensemble_size=1)
    matrices = [stored[int(feature_id)] for feature_id in rows["feature_id"]]
    model, normalisation, fit = trainer.train_in_memory("cnn", matrices, rows["label"].to_numpy(), rows["recording_id"].to_numpy(),
                                                        settings, recipe, settings.seed)
    np.testing.assert_allclose(normalisation.mean, expected.mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(normalisation.std, expected.std, rtol=1e-5)
    assert fit["epochs"] == 2 and len(fit["history"]["loss"]) == 2
    p_male = models.predict_matrices(model, matrices[:4], settings, normalisation, recipe=recipe)
    assert p_male.shape == (4,) and np.all((p_male >= 0) & (p_male <= 1))
    # tf.data's generator registry keeps the batches object alive after fit: it must not keep the windows too
    import gc

    from acoustics.batches import ArrayBatches

    gc.collect()
    kept = [item for item in gc.get_objects() if isinstance(item, ArrayBatches)]
    assert kept and all(item.x.size == 0 and len(item) == 0 for item in kept)


def build_tiny(frames: int, n_mfcc: int, width: float = 1.0) -> keras.Model:
    """A network of one Dense layer over the window's mean coefficients: the smallest that stage 4 can train."""
    inputs = keras.Input(shape=(frames, n_mfcc), name="mfcc_window")
    outputs = keras.layers.Dense(1, activation="sigmoid", name="p_male")(keras.layers.GlobalAveragePooling1D()(inputs))
    return keras.Model(inputs, outputs, name="tiny")


def test_a_network_registered_with_its_builder_is_one_stage4_trains_picks_and_loads(model_database_copy, tmp_path, monkeypatch,
                                                                                   capsys):
    """The extension point for networks: networks.register_network(name, builder) is all a new one needs."""
    import train_models

    monkeypatch.setattr(recipes, "NETWORKS", recipes.NETWORKS)  # the registration is undone after the test
    monkeypatch.setattr(networks, "BUILDERS", dict(networks.BUILDERS))
    with pytest.raises(BadParameterError):
        Recipe(networks=("tiny",))
    networks.register_network("tiny", build_tiny)
    assert Recipe().networks[-1] == "tiny" and "tiny" in train_models.trained_models("all")
    out = tmp_path / "models"
    assert train_models.main(["--db", str(model_database_copy), "--model", "tiny", "--pick", "tiny", "--epochs", "1",
                              "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "=== tiny: 1 epoch" in printed and "Picked with --pick: tiny" in printed, printed
    assert printed.splitlines()[-1].startswith("Next: python implement_model.py"), printed
    model, metadata = models.load_model(out / "best.h5")
    assert metadata["model_name"] == "tiny" and metadata["recipe"].networks == ("tiny",)
    assert model.count_params() == 41 and (out / "tiny.h5").is_file()
    with pytest.raises(BadParameterError):
        networks.register_network("ensemble", build_tiny)
