"""The three Keras models, the training glue, and ``.h5`` save/load with the project's metadata.

Choices (the workshop's, kept small enough to train on a laptop CPU):

- Input: windows of ``settings.frames`` MFCC frames (1 s at the defaults) cut by
  :func:`acoustics.features.windows` with 50 % overlap; clips shorter than one window are tiled.
  Every window of a clip carries the clip's label; a clip's P(male) is the **mean of its windows'
  probabilities**, so a clip of any length gets one verdict and a short pause or cough weighs little.
- Normalisation: per-coefficient mean and standard deviation of the *training speakers'* frames,
  applied in the data pipeline (:class:`acoustics.training.Normalisation`) and stored in the ``.h5``
  as attributes. The networks hold no normalisation layer and no Lambda layer, so any ``.h5`` loads with
  plain ``keras.models.load_model`` and with ``safe_mode=True``.
- Output: ``Dense(1, sigmoid)`` = P(male); ``CLASS_NAMES = ["female", "male"]``; threshold 0.5.
- Training: Adam, binary cross-entropy with balanced class weights (every speaker is kept),
  EarlyStopping on the validation loss (best weights restored), an epoch cap, and Ctrl-C keeps the
  best weights so far. Seeds come from the settings; TensorFlow ops run deterministically.
- Saving is atomic: a temporary file in the same folder, then ``os.replace``.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def _import_keras_quietly():
    """Import Keras (and TensorFlow) with the C++ start-up lines (oneDNN notices) kept off stderr.

    TF_CPP_MIN_LOG_LEVEL=2 hides most of them, but TensorFlow 2.21 still writes two absl lines
    before its logging starts; they would bury the one-line messages of the stage scripts.
    Python errors raised by the import still propagate as usual.
    """
    from .microphone import stderr_silenced

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with stderr_silenced():
        import keras
        import tensorflow  # noqa: F401  (the backend: its notices come at first import)
    return keras


keras = _import_keras_quietly()

from . import __version__  # noqa: E402
from .database import FeatureDatabase  # noqa: E402
from .errors import BadModelError  # noqa: E402
from .features import windows as cut_windows  # noqa: E402
from .modelfile import ATTRIBUTE_PREFIX, TRAIN_AGAIN, check_model_settings, read_metadata  # noqa: E402,F401
from .settings import Settings  # noqa: E402
from .training import (CLASS_NAMES, Normalisation, babble_augment, clip_batches, clip_windows,  # noqa: E402
                       read_matrices, window_counts)

MODEL_NAMES = ("cnn", "lstm", "cnnlstm")


# Builders (Functional API; input (frames, n_mfcc), output P(male)) -------------------------------
def build_cnn(frames: int, n_mfcc: int) -> keras.Model:
    """1-D convolutions over time (coefficients as channels), global average pooling."""
    inputs = keras.Input(shape=(frames, n_mfcc), name="mfcc_window")
    x = inputs
    for filters, kernel in ((32, 5), (64, 3), (64, 3)):
        x = keras.layers.Conv1D(filters, kernel, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.Activation("relu")(x)
        x = keras.layers.MaxPooling1D(2)(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    x = keras.layers.Dropout(0.3)(x)
    x = keras.layers.Dense(32, activation="relu")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="p_male")(x)
    return keras.Model(inputs, outputs, name="cnn")


def build_lstm(frames: int, n_mfcc: int) -> keras.Model:
    """One LSTM over the frames; its last state decides."""
    inputs = keras.Input(shape=(frames, n_mfcc), name="mfcc_window")
    x = keras.layers.LSTM(64)(inputs)
    x = keras.layers.Dropout(0.3)(x)
    x = keras.layers.Dense(32, activation="relu")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="p_male")(x)
    return keras.Model(inputs, outputs, name="lstm")


def build_cnnlstm(frames: int, n_mfcc: int) -> keras.Model:
    """A convolutional front end over time (4x shorter sequence), then an LSTM."""
    inputs = keras.Input(shape=(frames, n_mfcc), name="mfcc_window")
    x = inputs
    for filters, kernel in ((32, 5), (64, 3)):
        x = keras.layers.Conv1D(filters, kernel, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling1D(2)(x)
    x = keras.layers.LSTM(48)(x)
    x = keras.layers.Dropout(0.3)(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="p_male")(x)
    return keras.Model(inputs, outputs, name="cnnlstm")


BUILDERS = {"cnn": build_cnn, "lstm": build_lstm, "cnnlstm": build_cnnlstm}


#: The ensemble that train_models.py saves: this many networks of this kind, trained with the seeds
#: seed, seed + 1, ... and averaged (:func:`combine_models`). On EmoDB, leave-speakers-out
#: (bench/accuracy.py, 5 folds), three ConvNets scored 0.964-0.970 clean and 0.899-0.914 in babble at
#: 5 dB (the four 3-seed subsets of seeds 42-45), against 0.951-0.963 and 0.862-0.912 for one ConvNet
#: and 0.950 and 0.892-0.899 for the mean of the ConvNet, the LSTM and the ConvNet+LSTM.
ENSEMBLE_MODEL, ENSEMBLE_SIZE = "cnn", 3


def combine_models(members, settings: Settings, name: str = "ensemble") -> keras.Model:
    """One Functional model whose P(male) is the mean of its trained ``members``' P(male): an ensemble.

    The members (models with the same input, such as several ConvNets trained with different seeds)
    are nested unchanged under their names numbered (``cnn_1``, ``cnn_2``, ...); their outputs are
    concatenated and averaged by a frozen ``Dense(1)`` with weights ``1/len(members)``, so the result
    saves and loads like any single model (plain ``keras.models.load_model``, ``safe_mode=True``).
    """
    members = list(members)
    if len(members) < 2:
        raise ValueError(f"combine_models: needs two or more models, not {len(members)}")
    inputs = keras.Input(shape=(settings.frames, settings.n_mfcc), name="mfcc_window")
    renamed = [keras.Model(member.input, member.output, name=f"{member.name}_{position}")
               for position, member in enumerate(members, start=1)]
    outputs = keras.layers.Concatenate(name="member_p_male")([member(inputs) for member in renamed])
    average = keras.layers.Dense(1, use_bias=False, trainable=False, name="p_male",
                                 kernel_initializer=keras.initializers.Constant(1.0 / len(members)))(outputs)
    return keras.Model(inputs, average, name=name)


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow, and make TensorFlow's ops deterministic."""
    import tensorflow

    keras.utils.set_random_seed(int(seed))
    tensorflow.config.experimental.enable_op_determinism()


#: Adam's learning rate (where the cosine of :data:`FIXED_EPOCHS` starts) and the early-stopping patience
#: (epochs; only for a network off the fixed schedule) of each network. On all 40 MFCCs the ConvNet
#: overfit at 1e-3 within 2 or 3 epochs and did better at 3e-4 with patience 8; on the first 20
#: (training.COEFFICIENTS) it does better at 1e-3 again. EmoDB, leave-speakers-out, 5 folds, mean of
#: seeds 42 and 43, clean and babble at 5 dB: 0.957 and 0.904 at 1e-3 (patience 5), 0.953 and 0.873
#: at 3e-4 (patience 8). The ConvNet+LSTM must train within bench/train.py's 60 s.
LEARNING_RATES = {"cnn": 1e-3, "lstm": 1e-3, "cnnlstm": 1e-3}
PATIENCE = {"cnn": 5, "lstm": 5, "cnnlstm": 5}
#: Networks trained on a fixed schedule instead of early stopping: this many epochs (fewer if the epoch
#: cap is lower), Adam's learning rate falling from the network's own to 0 along a cosine
#: (``keras.optimizers.schedules.CosineDecay``), the last epoch's weights kept. The validation speakers
#: are then only measured, never used to stop, so bench/accuracy.py trains such networks on them too.
#: Early stopping on two validation speakers was noisy: on EmoDB's fold 0 it kept epoch 1 in some runs.
#: EmoDB, leave-speakers-out (bench/accuracy.py, 5 folds, seeds 42 and 43), clean and babble at 5 dB:
#: the ConvNet 0.964 and 0.882, 0.972 and 0.916 this way (trained on 8 speakers), against 0.951 and
#: 0.895, 0.963 and 0.912 with early stopping (6 speakers, the other 2 for stopping); the ensemble
#: 0.978 and 0.921, 0.979 and 0.927, against 0.968 and 0.912, 0.964 and 0.907. The LSTM and the
#: ConvNet+LSTM gained too (experiment harness, seed 42, plain mean of the windows): the LSTM 0.950 and
#: 0.869 against 0.933 and 0.856, the ConvNet+LSTM 0.955 and 0.914 against 0.951 and 0.882.
FIXED_EPOCHS = {"cnn": 10, "lstm": 10, "cnnlstm": 10}


def training_plan(name: str, epoch_cap: int) -> str:
    """How network ``name`` trains under an epoch cap, in words (for the stage-4 headings)."""
    if name in FIXED_EPOCHS:
        epochs = min(int(epoch_cap), FIXED_EPOCHS[name])
        return f"{epochs} epoch{'s' * (epochs != 1)}, the learning rate falling along a cosine"
    return f"at most {int(epoch_cap)} epoch{'s' * (int(epoch_cap) != 1)}, stopping early"


def build_model(name: str, settings: Settings, seed: int, learning_rate: float | None = None) -> keras.Model:
    """A freshly seeded, compiled model ``name`` (one of :data:`MODEL_NAMES`); ``learning_rate``
    defaults to the network's own (:data:`LEARNING_RATES`)."""
    if name not in BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    set_seed(seed)
    model = BUILDERS[name](settings.frames, settings.n_mfcc)
    _compile(model, LEARNING_RATES[name] if learning_rate is None else float(learning_rate))
    return model


def _compile(model: keras.Model, learning_rate) -> None:
    """Compile ``model`` for P(male): Adam at ``learning_rate`` (a number or a Keras schedule)."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy", metrics=["accuracy"])


# Streaming windows from SQLite -------------------------------------------------------------------
class WindowBatches(keras.utils.PyDataset):
    """Batches of ``batch_size`` normalised windows read from the database, a few recordings at a time.

    Each epoch the clips are shuffled with ``(seed, epoch)``; batch ``i`` holds windows
    ``i*batch_size ... (i+1)*batch_size`` of that order, so it reads only the clips it needs (each
    clip is read about once per epoch) and memory stays at one batch. Training batches also carry
    balanced class weights as sample weights. A connection is opened per batch, because Keras may
    call ``__getitem__`` from another thread.
    """

    def __init__(self, database_path, index, settings: Settings, normalisation: Normalisation, *, batch_size: int = 64,
                 shuffle: bool = False, seed: int = 0, class_weights=None, babble: float = 0.0) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        self.normalisation, self.babble = normalisation, float(babble)
        if len(index) == 0:
            raise ValueError("WindowBatches: no clips")
        self.database_path = Path(database_path)
        self.feature_ids = index["feature_id"].to_numpy(dtype=np.int64)
        self.labels = index["label"].to_numpy(dtype=np.int64)
        self.counts = window_counts(index["frame_count"].to_numpy(), settings.frames)
        self.settings = settings
        self.batch_size, self.shuffle, self.seed = int(batch_size), shuffle, int(seed)
        self.class_weights = class_weights
        self.epoch = 0
        self._set_order()

    def _set_order(self) -> None:
        self.order = (np.random.default_rng([self.seed, self.epoch]).permutation(len(self.feature_ids))
                      if self.shuffle else np.arange(len(self.feature_ids)))
        self.ends = np.cumsum(self.counts[self.order])  # window position after each clip of the order

    def __len__(self) -> int:
        return int(-(-int(self.counts.sum()) // self.batch_size))

    def __getitem__(self, batch: int):
        first, last = batch * self.batch_size, min((batch + 1) * self.batch_size, int(self.ends[-1]))
        start, stop = np.searchsorted(self.ends, first, side="right"), np.searchsorted(self.ends, last - 1, side="right") + 1
        positions = self.order[start:stop]
        with FeatureDatabase(self.database_path, readonly=True) as database:
            matrices = read_matrices(database, self.feature_ids[positions].tolist(), self.settings.n_mfcc)
        pieces = [cut_windows(matrices[int(self.feature_ids[p])], self.settings.frames) for p in positions]
        offset = first - (int(self.ends[start - 1]) if start else 0)
        x = np.concatenate(pieces)[offset : offset + last - first]
        y = np.concatenate([np.full(len(piece), self.labels[p]) for piece, p in zip(pieces, positions)])[offset : offset + last - first]
        if self.shuffle:
            permutation = np.random.default_rng([self.seed, self.epoch, batch]).permutation(len(x))
            x, y = x[permutation], y[permutation]
        if self.babble > 0:
            x = babble_augment(x, self.settings, np.random.default_rng([self.seed, self.epoch, batch, 1]), probability=self.babble)
        x = self.normalisation.apply(x)
        y = y.astype(np.float32)[:, None]
        if self.class_weights is None:
            return x, y
        return x, y, np.where(y[:, 0] > 0.5, self.class_weights[1], self.class_weights[0]).astype(np.float32)

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._set_order()


class ArrayBatches(keras.utils.PyDataset):
    """Like :class:`WindowBatches`, but from MFCC matrices held in memory (benchmarks, small corpora).

    All windows are cut and normalised once; each epoch they are shuffled with ``(seed, epoch)``.
    """

    def __init__(self, matrices, labels, settings: Settings, normalisation: Normalisation, *, batch_size: int = 64,
                 shuffle: bool = False, seed: int = 0, class_weights=None, babble: float = 0.0) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        if len(matrices) == 0:
            raise ValueError("ArrayBatches: no clips")
        self.settings, self.normalisation, self.babble = settings, normalisation, float(babble)
        pieces = [cut_windows(matrix, settings.frames) for matrix in matrices]
        self.x = np.concatenate(pieces)
        self.y = np.concatenate([np.full(len(piece), label, np.float32) for piece, label in zip(pieces, labels)])[:, None]
        self.weights = (None if class_weights is None else
                        np.where(self.y[:, 0] > 0.5, class_weights[1], class_weights[0]).astype(np.float32))
        self.batch_size, self.shuffle, self.seed, self.epoch = int(batch_size), shuffle, int(seed), 0
        self._set_order()

    def _set_order(self) -> None:
        self.order = (np.random.default_rng([self.seed, self.epoch]).permutation(len(self.x))
                      if self.shuffle else np.arange(len(self.x)))

    def __len__(self) -> int:
        return int(-(-len(self.x) // self.batch_size))

    def __getitem__(self, batch: int):
        positions = self.order[batch * self.batch_size : (batch + 1) * self.batch_size]
        x = self.x[positions]
        if self.babble > 0:
            x = babble_augment(x, self.settings, np.random.default_rng([self.seed, self.epoch, batch, 1]), probability=self.babble)
        x = self.normalisation.apply(x)
        if self.weights is None:
            return x, self.y[positions]
        return x, self.y[positions], self.weights[positions]

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._set_order()


# Training glue -----------------------------------------------------------------------------------
class _KeepBest(keras.callbacks.Callback):
    """Remember the history and the weights of the best validation loss (or, with ``keep_last``, of
    the last finished epoch), for Ctrl-C."""

    def __init__(self, keep_last: bool = False) -> None:
        super().__init__()
        self.history, self.best_loss, self.best_weights, self.best_epoch = {}, np.inf, None, 0
        self.keep_last = keep_last

    def on_epoch_end(self, epoch, logs=None) -> None:
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        loss = (logs or {}).get("val_loss", np.inf)
        if self.keep_last or loss < self.best_loss:
            self.best_loss, self.best_weights, self.best_epoch = loss, self.model.get_weights(), epoch + 1


def fit_model(model: keras.Model, train: WindowBatches, validation: WindowBatches, *, epochs: int,
              patience: int | None = None, verbose: int = 2) -> dict:
    """Train with early stopping on the validation loss, or on a fixed schedule for the networks in
    :data:`FIXED_EPOCHS` (by ``model.name``; ``epochs`` caps it too); return what happened.

    ``patience`` (epochs without a better validation loss) defaults to the network's own
    (:data:`PATIENCE`, by ``model.name``; 5 for others). On a fixed schedule the model is compiled
    again with Adam on a cosine decay from its learning rate, and ``best_epoch`` is the last epoch.

    Returns ``{"history": {metric: [per epoch]}, "epochs": run, "best_epoch": n, "interrupted": bool,
    "seconds": s}``. Ctrl-C (KeyboardInterrupt) ends training with the best weights so far (on a fixed
    schedule: the last finished epoch's); if no epoch had finished, it is raised again.
    """
    fixed = model.name in FIXED_EPOCHS
    keeper = _KeepBest(keep_last=fixed)
    if fixed:
        epochs = min(int(epochs), FIXED_EPOCHS[model.name])
        _compile(model, keras.optimizers.schedules.CosineDecay(float(model.optimizer.learning_rate),
                                                               decay_steps=max(1, len(train) * epochs)))
        callbacks = [keeper]
    else:
        patience = PATIENCE.get(model.name, 5) if patience is None else int(patience)
        callbacks = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True),
                     keeper]
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
        model.fit(train, validation_data=validation, epochs=int(epochs), shuffle=False,
                  callbacks=callbacks, verbose=verbose)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if catch_ctrl_c:
            signal.signal(signal.SIGINT, previous_handler)
    if interrupted and keeper.best_weights is None:
        raise KeyboardInterrupt
    if keeper.best_weights is not None:
        model.set_weights(keeper.best_weights)
    return {"history": keeper.history, "epochs": len(keeper.history.get("loss", [])), "best_epoch": keeper.best_epoch,
            "interrupted": interrupted, "seconds": time.perf_counter() - started}


# Prediction --------------------------------------------------------------------------------------
def predict_windows(model: keras.Model, window_batch: np.ndarray, multiple: int = 64) -> np.ndarray:
    """P(male) of each window. The batch is zero-padded to a multiple of ``multiple`` rows so that
    TensorFlow compiles the prediction for a few batch sizes only (and a given input always gives the
    same output)."""
    count = len(window_batch)
    padded = -(-count // multiple) * multiple
    if padded != count:
        window_batch = np.concatenate([window_batch, np.zeros((padded - count, *window_batch.shape[1:]), np.float32)])
    return model.predict_on_batch(window_batch)[:count, 0]


def predict_clip(model: keras.Model, metadata: dict, mfcc_matrix: np.ndarray) -> float:
    """P(male) of one clip from its (frames, n_mfcc) MFCC matrix: the mean over its windows, each weighted
    by its loudness (:func:`acoustics.training.window_weights`)."""
    settings = metadata["settings"]
    matrix = np.asarray(mfcc_matrix, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[1] != settings.n_mfcc:
        raise ValueError(f"predict_clip: expected a (frames, {settings.n_mfcc}) MFCC matrix, got shape {matrix.shape}")
    window_batch, _, weights = clip_windows([matrix], settings, metadata["normalisation"])
    return float(np.average(predict_windows(model, window_batch).astype(np.float64), weights=weights))


def predict_signal(model: keras.Model, metadata: dict, signal: np.ndarray) -> float:
    """P(male) of a float32 mono signal at the model's sample rate: trim silence, MFCC, :func:`predict_clip`."""
    from .audio import trim_silence
    from .features import mfcc

    settings = metadata["settings"]
    return predict_clip(model, metadata, mfcc(trim_silence(np.asarray(signal, dtype=np.float32), settings.trim_top_db), settings))


def predict_clips(model: keras.Model, database: FeatureDatabase, index, settings: Settings,
                  normalisation: Normalisation) -> np.ndarray:
    """P(male) of every row of ``index`` (as :func:`predict_clip`), streamed from ``database``."""
    probabilities = np.empty(len(index), dtype=np.float64)
    done = 0
    for feature_ids, window_batch, owners, weights in clip_batches(database, index, settings, normalisation):
        window_probabilities = predict_windows(model, window_batch, multiple=256).astype(np.float64)
        probabilities[done : done + len(feature_ids)] = _weighted_means(window_probabilities, owners, weights, len(feature_ids))
        done += len(feature_ids)
    return probabilities


def _weighted_means(values, owners, weights, count) -> np.ndarray:
    """Weighted mean of ``values`` per owner ``0 .. count - 1``."""
    return np.bincount(owners, weights=values * weights, minlength=count) / np.bincount(owners, weights=weights, minlength=count)


def predict_matrices(model: keras.Model, matrices, settings: Settings, normalisation: Normalisation, *,
                     windows_per_batch: int = 1024) -> np.ndarray:
    """P(male) of each MFCC matrix held in memory (as :func:`predict_clip`), like :func:`predict_clips`."""
    probabilities = np.empty(len(matrices), dtype=np.float64)
    counts = window_counts([len(matrix) for matrix in matrices], settings.frames)
    start = 0
    while start < len(matrices):
        stop = start + 1
        while stop < len(matrices) and counts[start:stop].sum() < windows_per_batch:
            stop += 1
        window_batch, owners, weights = clip_windows(matrices[start:stop], settings, normalisation)
        window_probabilities = predict_windows(model, window_batch, multiple=256).astype(np.float64)
        probabilities[start:stop] = _weighted_means(window_probabilities, owners, weights, stop - start)
        start = stop
    return probabilities


# Saving and loading ------------------------------------------------------------------------------
def save_model(model: keras.Model, path, metadata: dict) -> Path:
    """Write ``model`` and its ``metadata`` to ``path`` (.h5) atomically.

    ``metadata`` needs ``model_name``, ``settings`` (Settings) and ``normalisation`` (the
    :class:`~acoustics.training.Normalisation` of the training data, n_mfcc coefficients); optional:
    ``scores`` and ``history`` (JSON-able dicts), ``class_names``. Stored as HDF5 attributes
    ``acoustics_*`` beside Keras' own, with the project version.
    """
    import h5py

    path = Path(path)
    settings, normalisation = metadata["settings"], metadata["normalisation"]
    if len(normalisation.mean) != settings.n_mfcc:
        raise ValueError(f"save_model: the normalisation holds {len(normalisation.mean)} coefficients, the settings {settings.n_mfcc}")
    attributes = {
        "version": __version__,
        "model_name": str(metadata["model_name"]),
        "settings": settings.to_json(),
        "class_names": json.dumps(list(metadata.get("class_names", CLASS_NAMES))),
        "normalisation_mean": normalisation.mean,
        "normalisation_std": normalisation.std,
        "normalisation_cmn": int(normalisation.cmn),
        "normalisation_coefficients": settings.n_mfcc if normalisation.coefficients is None else normalisation.coefficients,
        "scores": json.dumps(metadata.get("scores", {}), sort_keys=True),
        "history": json.dumps(metadata.get("history", {}), sort_keys=True),
        "saved_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp.h5", dir=path.parent)
    os.close(handle)
    try:
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
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it private; a model is meant to be shared
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def load_model(path) -> tuple:
    """Load a model saved by :func:`save_model`: ``(keras_model, metadata)``.

    ``metadata`` has ``path``, ``version``, ``model_name``, ``settings`` (Settings), ``class_names``,
    ``normalisation`` (see :func:`acoustics.modelfile.read_metadata`),
    ``scores``, ``history`` and ``saved_at``. Raises
    :class:`BadModelError` for a missing, damaged or foreign file, or one of another major version.
    """
    path = Path(path)
    metadata = read_metadata(path)
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception:  # Keras raises many types for damaged files
        raise BadModelError(f"{path}: the model file is damaged (cut short or corrupt); {TRAIN_AGAIN}.") from None
    expected = (None, metadata["settings"].frames, metadata["settings"].n_mfcc)
    if tuple(model.input_shape) != expected or tuple(model.output_shape) != (None, 1):
        raise BadModelError(f"{path}: the network's shape does not match its stored settings; {TRAIN_AGAIN}.")
    return model, metadata


def parameter_count(model: keras.Model) -> int:
    return int(model.count_params())
