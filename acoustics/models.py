"""Training, prediction, and ``.h5`` save/load with the project's metadata, for every network
(:mod:`acoustics.networks` builds them, :mod:`acoustics.batches` feeds them).

Choices (every number is in the :class:`~acoustics.recipe.Recipe`, stored in each ``.h5``):

- Input: windows of ``settings.frames`` MFCC frames (1.6 s at the defaults) cut by
  :func:`acoustics.features.windows` with 50 % overlap; clips shorter than one window are tiled.
  Every window of a clip carries the clip's label; a clip's P(male) is the mean of its windows'
  probabilities, each weighted by its loudness (:func:`acoustics.training.window_weights`), then
  calibrated by the model's temperature (:func:`acoustics.training.calibrate`).
- Normalisation: per-coefficient mean and standard deviation of the *training speakers'* frames,
  applied in the data pipeline (:class:`acoustics.training.Normalisation`) and stored in the ``.h5``
  as attributes, so any ``.h5`` loads with ``keras.models.load_model`` and ``safe_mode=True`` (the
  encoder network's one custom layer, :class:`acoustics.encoder.MelPower`, is registered on loading).
- Output: ``Dense(1, sigmoid)`` = P(male); ``CLASS_NAMES = ["female", "male"]``; threshold 0.5.
- Training (:func:`train_network`): Adam, binary cross-entropy with balanced class weights (every
  speaker is kept), the recipe's epochs with the learning rate falling along a cosine to 0, the last
  epoch kept; the training windows are augmented on the fly (:mod:`acoustics.augment`). Ctrl-C keeps
  the last finished epoch. Seeds come from the settings; TensorFlow ops run deterministically.
- Saving is atomic: a temporary file in the same folder, flushed, then ``os.replace``.
"""

from __future__ import annotations

import datetime
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

from . import __version__
from .database import FeatureDatabase
from .errors import BadModelError
from .modelfile import ATTRIBUTE_PREFIX, TRAIN_AGAIN, read_metadata, stamp_digest
from .modelfile import check_model_settings  # noqa: F401  (stage scripts and tests check through models)
from .networks import build_model, compile_model
from .quiet import import_keras
from .recipe import Recipe
from .settings import Settings
from .training import CLASS_NAMES, Normalisation, calibrate, clip_batches, clip_windows, window_counts

keras = import_keras()


# Training ------------------------------------------------------------------------------------------
class _LastEpoch(keras.callbacks.Callback):
    """Remember the history and the weights of the last finished epoch, for Ctrl-C."""

    def __init__(self) -> None:
        super().__init__()
        self.history, self.weights, self.epoch = {}, None, 0

    def on_epoch_end(self, epoch, logs=None) -> None:
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        self.weights, self.epoch = self.model.get_weights(), epoch + 1


def fit_model(model: keras.Model, train, validation, *, epochs: int, verbose: int = 2) -> dict:
    """Train ``model`` (compiled by :func:`build_model`) for ``epochs`` epochs while Adam's learning rate
    falls from its own to 0 along a cosine (``keras.optimizers.schedules.CosineDecay``), and keep the
    last epoch; the ``validation`` batches (or None) are only measured.

    Returns ``{"history": {metric: [per epoch]}, "epochs": run, "best_epoch": the epoch kept,
    "interrupted": bool, "seconds": s}``. Ctrl-C (KeyboardInterrupt) ends training with the last
    finished epoch's weights; if no epoch had finished, it is raised again.
    """
    epochs = int(epochs)
    keeper = _LastEpoch()
    compile_model(model, keras.optimizers.schedules.CosineDecay(float(model.optimizer.learning_rate),
                                                           decay_steps=max(1, len(train) * epochs)))
    started, interrupted = time.perf_counter(), False

    def stop_after_this_batch(signal_number, frame) -> None:
        # A KeyboardInterrupt raised in the middle of TensorFlow's work can leave its threads freeing
        # memory under each other (seen: "free(): invalid next size", SIGABRT). So the first Ctrl-C
        # asks Keras to stop at the end of the batch; a second one interrupts at once.
        nonlocal interrupted
        interrupted = True
        model.stop_training = True
        signal.signal(signal.SIGINT, previous_handler)
        print("\nCtrl-C: stopping after this batch (press it again to stop at once) ...", file=sys.stderr, flush=True)

    previous_handler = signal.getsignal(signal.SIGINT)
    # Only the main thread may set handlers; an ignored SIGINT (a background job) stays ignored.
    catch_ctrl_c = threading.current_thread() is threading.main_thread() and previous_handler is not signal.SIG_IGN
    if catch_ctrl_c:
        signal.signal(signal.SIGINT, stop_after_this_batch)
    try:
        model.fit(train, validation_data=validation, epochs=epochs, shuffle=False, callbacks=[keeper], verbose=verbose)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if catch_ctrl_c:
            signal.signal(signal.SIGINT, previous_handler)
    if interrupted and keeper.weights is None:
        raise KeyboardInterrupt
    if keeper.weights is not None:
        model.set_weights(keeper.weights)
    return {"history": keeper.history, "epochs": len(keeper.history.get("loss", [])), "best_epoch": keeper.epoch,
            "interrupted": interrupted, "seconds": time.perf_counter() - started}


def train_network(name: str, train, validation, settings: Settings, recipe: Recipe, seed: int, *, verbose: int = 2) -> tuple:
    """Build network ``name`` with ``seed`` and train it on ``train`` batches (a :class:`WindowBatches`
    or :class:`ArrayBatches` made with ``recipe``) as ``recipe`` says: ``(model, fit)`` as
    :func:`fit_model`. Stage 4, ``make reference`` and the benchmarks all train through here.

    The ``encoder`` network trains its head for ``recipe.encoder_epochs`` at ``recipe.encoder_learning_rate``
    with the pretrained encoder frozen; then, if ``recipe.fine_tune_epochs``, the whole network for that many
    epochs at ``recipe.fine_tune_learning_rate``."""
    if name != "encoder":
        model = build_model(name, settings, seed, recipe.learning_rate, recipe.width)
        return model, fit_model(model, train, validation, epochs=recipe.epochs, verbose=verbose)
    model = build_model(name, settings, seed, recipe.encoder_learning_rate, normalisation=train.normalisation)
    fit = fit_model(model, train, validation, epochs=recipe.encoder_epochs, verbose=verbose)
    if recipe.fine_tune_epochs and not fit["interrupted"]:
        from .encoder import nested_encoders

        for encoder in nested_encoders(model):
            encoder.trainable = True
        compile_model(model, recipe.fine_tune_learning_rate)
        tuned = fit_model(model, train, validation, epochs=recipe.fine_tune_epochs, verbose=verbose)
        fit = {"history": {key: fit["history"].get(key, []) + values for key, values in tuned["history"].items()},
               "epochs": fit["epochs"] + tuned["epochs"], "best_epoch": fit["epochs"] + tuned["best_epoch"],
               "interrupted": tuned["interrupted"], "seconds": fit["seconds"] + tuned["seconds"]}
    return model, fit


# Prediction --------------------------------------------------------------------------------------
def predict_windows(model: keras.Model, window_batch: np.ndarray, multiple: int = 64) -> np.ndarray:
    """P(male) of each window. The batch is zero-padded to the next power of two up to ``multiple`` rows,
    and beyond that to a multiple of ``multiple``, so that TensorFlow compiles the prediction for a few
    batch sizes only (and a given input always gives the same output) while a few windows (one file,
    one utterance) cost a few windows' work: the encoder network spends about 3 ms on each."""
    count = len(window_batch)
    padded = 1 << max(0, count - 1).bit_length() if count <= multiple else -(-count // multiple) * multiple
    if padded != count:
        window_batch = np.concatenate([window_batch, np.zeros((padded - count, *window_batch.shape[1:]), np.float32)])
    return model.predict_on_batch(window_batch)[:count, 0]


def predict_clip(model: keras.Model, metadata: dict, mfcc_matrix: np.ndarray) -> float:
    """P(male) of one clip from its (frames, n_mfcc) MFCC matrix: the mean over its windows, each weighted
    by its loudness (:func:`acoustics.training.window_weights`), calibrated by the model's temperature."""
    settings = metadata["settings"]
    matrix = np.asarray(mfcc_matrix, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[1] != settings.n_mfcc:
        raise ValueError(f"predict_clip: expected a (frames, {settings.n_mfcc}) MFCC matrix, got shape {matrix.shape}")
    return float(predict_matrices(model, [matrix], settings, metadata["normalisation"], recipe=metadata["recipe"],
                                  temperature=metadata["temperature"])[0])


def predict_clips(model: keras.Model, database: FeatureDatabase, index, settings: Settings,
                  normalisation: Normalisation, *, recipe: Recipe = Recipe(), temperature: float = 1.0) -> np.ndarray:
    """P(male) of every row of ``index`` (as :func:`predict_clip`), streamed from ``database``."""
    probabilities = np.empty(len(index), dtype=np.float64)
    done = 0
    for feature_ids, window_batch, owners, weights in clip_batches(database, index, settings, normalisation,
                                                                   weight_db=recipe.loudness_weight_db):
        window_probabilities = predict_windows(model, window_batch, multiple=256).astype(np.float64)
        probabilities[done : done + len(feature_ids)] = _weighted_means(window_probabilities, owners, weights, len(feature_ids))
        done += len(feature_ids)
    return calibrate(probabilities, temperature)


def _weighted_means(values, owners, weights, count) -> np.ndarray:
    """Weighted mean of ``values`` per owner ``0 .. count - 1``."""
    return np.bincount(owners, weights=values * weights, minlength=count) / np.bincount(owners, weights=weights, minlength=count)


def predict_matrices(model: keras.Model, matrices, settings: Settings, normalisation: Normalisation, *,
                     recipe: Recipe = Recipe(), temperature: float = 1.0, windows_per_batch: int = 1024) -> np.ndarray:
    """P(male) of each MFCC matrix held in memory (as :func:`predict_clip`), like :func:`predict_clips`."""
    probabilities = np.empty(len(matrices), dtype=np.float64)
    counts = window_counts([len(matrix) for matrix in matrices], settings.frames)
    start = 0
    while start < len(matrices):
        stop = start + 1
        while stop < len(matrices) and counts[start:stop].sum() < windows_per_batch:
            stop += 1
        window_batch, owners, weights = clip_windows(matrices[start:stop], settings, normalisation, recipe.loudness_weight_db)
        window_probabilities = predict_windows(model, window_batch, multiple=256).astype(np.float64)
        probabilities[start:stop] = _weighted_means(window_probabilities, owners, weights, stop - start)
        start = stop
    return calibrate(probabilities, temperature)


# Saving and loading ------------------------------------------------------------------------------
def save_model(model: keras.Model, path, metadata: dict) -> Path:
    """Write ``model`` and its ``metadata`` to ``path`` (.h5) atomically.

    ``metadata`` needs ``model_name``, ``settings`` (Settings), ``normalisation`` (the
    :class:`~acoustics.training.Normalisation` of the training data, n_mfcc coefficients) and
    ``recipe`` (the :class:`~acoustics.recipe.Recipe` it was trained with; default: the default recipe);
    optional: ``temperature``
    (the calibration, default 1), ``provenance`` (what it heard: corpora, speakers, clips; JSON-able),
    ``scores`` and ``history`` (JSON-able dicts), ``class_names``. Stored as HDF5 attributes
    ``acoustics_*`` beside Keras' own, with the project version, and last the file's checksum
    (:func:`acoustics.modelfile.content_digest`).
    """
    import h5py

    from .outputs import check_free_space, replaced_atomically

    path = Path(path)
    attributes = _metadata_attributes(metadata | {"provenance": metadata.get("provenance", {}) | _encoder_provenance(model)})
    path.parent.mkdir(parents=True, exist_ok=True)
    check_free_space(path.parent, saved_bytes(model), f"the model {path.name}",
                     "free some space there, or save the models in another folder (stage 4: --out)")
    with replaced_atomically(path) as temporary:
        absl_logger = logging.getLogger("absl")
        level = absl_logger.level
        absl_logger.setLevel(logging.ERROR)  # Keras warns that .h5 is a "legacy" format
        try:
            model.save(temporary, overwrite=True)
        finally:
            absl_logger.setLevel(level)
        with h5py.File(temporary, "a") as handle_h5:
            for key, value in attributes.items():
                handle_h5.attrs[ATTRIBUTE_PREFIX + key] = value
        stamp_digest(temporary)
    return path


def saved_bytes(model: keras.Model) -> int:
    """About how many bytes :func:`save_model` writes for ``model``, at most: its weights, its optimizer's
    variables (Keras stores them too), and room for the structure and metadata."""
    variables = list(model.weights) + list(getattr(getattr(model, "optimizer", None), "variables", None) or [])
    array_bytes = sum(int(np.prod(variable.shape)) * np.dtype(variable.dtype).itemsize for variable in variables)
    return int(1.5 * array_bytes) + 500_000


def _metadata_attributes(metadata: dict) -> dict:
    """The HDF5 attributes (without :data:`ATTRIBUTE_PREFIX`) that :func:`save_model` stores for ``metadata``,
    with the project version and the time of saving; refuses a normalisation of another coefficient count."""
    settings, normalisation = metadata["settings"], metadata["normalisation"]
    if len(normalisation.mean) != settings.n_mfcc:
        raise ValueError(f"save_model: the normalisation holds {len(normalisation.mean)} coefficients, the settings {settings.n_mfcc}")
    return {
        "version": __version__,
        "model_name": str(metadata["model_name"]),
        "settings": settings.to_json(),
        "class_names": json.dumps(list(metadata.get("class_names", CLASS_NAMES))),
        "normalisation_mean": normalisation.mean,
        "normalisation_std": normalisation.std,
        "recipe": metadata.get("recipe", Recipe()).to_json(),
        "temperature": float(metadata.get("temperature", 1.0)),
        "provenance": json.dumps(metadata.get("provenance", {}), sort_keys=True),
        "scores": json.dumps(metadata.get("scores", {}), sort_keys=True),
        "history": json.dumps(metadata.get("history", {}), sort_keys=True),
        "saved_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _encoder_provenance(model: keras.Model) -> dict:
    """``{"encoder": ...}`` for a model holding pretrained GE2E encoders: where they come from, whether they
    were fine-tuned, and the digest of each one's weights as saved ({} for a model without one)."""
    from .encoder import encoder_digests
    from .encoderfile import SOURCE, WEIGHTS_SHA256

    digests = encoder_digests(model)
    if not digests:
        return {}
    return {"encoder": SOURCE | {"weights_sha256": digests, "fine_tuned": any(digest != WEIGHTS_SHA256 for digest in digests)}}


def check_encoders(model: keras.Model, metadata: dict) -> None:
    """Raise :class:`BadModelError` naming the file when the pretrained encoders inside ``model`` are not
    those its provenance records (a changed file), or when a frozen one is not the shipped GE2E encoder."""
    from .encoder import encoder_digests
    from .encoderfile import WEIGHTS_SHA256

    digests = encoder_digests(model)
    if not digests:
        return
    path, recorded = metadata["path"], metadata["provenance"].get("encoder")
    if not isinstance(recorded, dict) or recorded.get("weights_sha256") != digests:
        raise BadModelError(f"{path}: the speaker encoder inside this model is not the one it was trained with "
                            f"(the file was changed or damaged); {TRAIN_AGAIN}.")
    if not recorded.get("fine_tuned") and any(digest != WEIGHTS_SHA256 for digest in digests):
        raise BadModelError(f"{path}: its speaker encoder differs from the shipped one (models/encoder/ge2e.h5); "
                            f"{TRAIN_AGAIN}.")


def load_model(path, *, xla: bool = False) -> tuple:
    """Load a model saved by :func:`save_model`: ``(keras_model, metadata)``; with ``xla``, its predictions
    go through XLA (:func:`predict_through_xla`), for work in large batches.

    ``metadata`` has ``path``, ``version``, ``model_name``, ``settings`` (Settings), ``class_names``,
    ``normalisation``, ``recipe``, ``temperature``, ``provenance`` (see :func:`acoustics.modelfile.read_metadata`),
    ``scores``, ``history`` and ``saved_at``. Raises
    :class:`BadModelError` for a missing, damaged or foreign file, or one of another major version.
    """
    from . import encoder  # noqa: F401  (registers the encoder network's MelPower layer)

    path = Path(path)
    metadata = read_metadata(path)
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception:  # Keras raises many types for damaged files
        raise BadModelError(f"{path}: the model file is damaged (cut short or corrupt); {TRAIN_AGAIN}.") from None
    expected = (None, metadata["settings"].frames, metadata["settings"].n_mfcc)
    if tuple(model.input_shape) != expected or tuple(model.output_shape) != (None, 1):
        raise BadModelError(f"{path}: the network's shape does not match its stored settings; {TRAIN_AGAIN}.")
    check_encoders(model, metadata)
    if xla:
        predict_through_xla(model)
    return model, metadata


def predict_through_xla(model: keras.Model) -> None:
    """Make ``model``'s predictions go through XLA, TensorFlow's compiler (before its first prediction).

    Keras leaves XLA off on a CPU. Fusing each LSTM step's small operations pays there: the encoder
    network predicts a batch of 32-256 windows in 0.5-0.65 of the time on one core, and the ConvNet gains
    a little (bench/README.md, bench/files.py and bench/segments.py). But each new batch size costs about
    a second to compile, against about 0.3 s to trace without XLA, so only stage 5's work in large batches
    (many files, ``--segments``) uses it; a live verdict, a single batch of a few windows, does not.
    Outputs agree with the plain path to about 1e-6. Where TensorFlow runs ops deterministically (after
    :func:`acoustics.networks.set_seed`, in training) Keras refuses XLA and the plain path stays.
    """
    import warnings

    with warnings.catch_warnings():  # Keras warns when it refuses (deterministic ops): the plain path is fine
        warnings.simplefilter("ignore")
        model.jit_compile = True


def parameter_count(model: keras.Model) -> int:
    return int(model.count_params())
