"""Batches of training windows for Keras (``keras.utils.PyDataset``): read from the feature database a few
recordings at a time (:class:`WindowBatches`, stage 4) or cut from matrices held in memory
(:class:`ArrayBatches`, the benchmarks), shuffled per epoch with the seed, augmented on the fly
(:mod:`acoustics.augment`), normalised and weighted by class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .augment import augment
from .database import FeatureDatabase
from .features import windows as cut_windows
from .quiet import import_keras
from .recipe import Recipe
from .settings import Settings
from .training import Normalisation, read_matrices, window_counts

keras = import_keras()


class _Batches(keras.utils.PyDataset):
    """What both batch classes share: each epoch's order (shuffled with ``(seed, epoch)``), the
    augmentation of training batches (``recipe``; None: none), normalisation and class weights.

    ``recordings`` (one id per clip, or None) groups the stored variants of one recording (clean and
    noisy): when given with a recipe (training batches), each epoch uses one variant of
    each recording, drawn anew every epoch, so an epoch costs one pass over the recordings. The
    variants of a recording have the same length, so every epoch has the same number of batches.
    """

    def __init__(self, labels, settings: Settings, normalisation: Normalisation, *, batch_size: int, shuffle: bool,
                 seed: int, class_weights, recipe: Recipe | None, recordings=None) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        if len(labels) == 0:
            raise ValueError(f"{type(self).__name__}: no clips")
        self.settings, self.normalisation, self.recipe = settings, normalisation, recipe
        self.batch_size, self.shuffle, self.seed, self.epoch = int(batch_size), bool(shuffle), int(seed), 0
        self.class_weights = class_weights
        one_variant = recordings is not None and recipe is not None
        self.recordings = np.asarray(recordings) if one_variant else None

    def _permutation(self, count: int, *key) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch, *key]).permutation(count) if self.shuffle else np.arange(count)

    def _clips_this_epoch(self, count: int) -> np.ndarray:
        """Positions of the clips this epoch uses, in this epoch's order."""
        if self.recordings is None:
            return self._permutation(count)
        rng = np.random.default_rng([self.seed, self.epoch, 2])
        shuffled = rng.permutation(count)
        _, first = np.unique(self.recordings[shuffled], return_index=True)  # one random variant per recording
        chosen = shuffled[np.sort(first)]
        return chosen[self._permutation(len(chosen))]

    def _finish(self, x: np.ndarray, y: np.ndarray, batch: int):
        """Augment (training batches), normalise and weigh one batch of raw windows ``x`` and labels ``y``."""
        if self.recipe is not None:
            x = augment(x, self.settings, self.recipe, np.random.default_rng([self.seed, self.epoch, batch, 1]))
        x = self.normalisation.apply(x)
        y = np.asarray(y, dtype=np.float32).reshape(-1, 1)
        if self.class_weights is None:
            return x, y
        return x, y, np.where(y[:, 0] > 0.5, self.class_weights[1], self.class_weights[0]).astype(np.float32)

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._set_order()


class WindowBatches(_Batches):
    """Batches of ``batch_size`` normalised windows read from the database, a few recordings at a time.

    Each epoch the clips are shuffled; batch ``i`` holds windows ``i*batch_size ... (i+1)*batch_size``
    of that order, so it reads only the clips it needs (each clip is read about once per epoch) and
    memory stays at one batch. A connection is opened per batch, because Keras may call
    ``__getitem__`` from another thread.
    """

    def __init__(self, database_path, index, settings: Settings, normalisation: Normalisation, *, batch_size: int = 64,
                 shuffle: bool = False, seed: int = 0, class_weights=None, recipe: Recipe | None = None) -> None:
        super().__init__(index["label"].to_numpy(dtype=np.int64), settings, normalisation, batch_size=batch_size,
                         shuffle=shuffle, seed=seed, class_weights=class_weights, recipe=recipe,
                         recordings=index["recording_id"].to_numpy() if "recording_id" in index else None)
        self.database_path = Path(database_path)
        self.feature_ids = index["feature_id"].to_numpy(dtype=np.int64)
        self.labels = index["label"].to_numpy(dtype=np.int64)
        self.counts = window_counts(index["frame_count"].to_numpy(), settings.frames)
        self._set_order()

    def _set_order(self) -> None:
        self.order = self._clips_this_epoch(len(self.feature_ids))
        self.ends = np.cumsum(self.counts[self.order])  # window position after each clip of the order

    def __len__(self) -> int:
        return int(-(-int(self.ends[-1]) // self.batch_size))

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
        permutation = self._permutation(len(x), batch)
        return self._finish(x[permutation], y[permutation], batch)


class ArrayBatches(_Batches):
    """Like :class:`WindowBatches`, but from MFCC matrices held in memory (benchmarks, small corpora):
    all windows are cut once, and each epoch's are shuffled."""

    def __init__(self, matrices, labels, settings: Settings, normalisation: Normalisation, *, batch_size: int = 64,
                 shuffle: bool = False, seed: int = 0, class_weights=None, recipe: Recipe | None = None,
                 recordings=None) -> None:
        super().__init__(labels, settings, normalisation, batch_size=batch_size, shuffle=shuffle, seed=seed,
                         class_weights=class_weights, recipe=recipe, recordings=recordings)
        pieces = [cut_windows(matrix, settings.frames) for matrix in matrices]
        self.x = np.concatenate(pieces)
        self.y = np.concatenate([np.full(len(piece), label, np.float32) for piece, label in zip(pieces, labels)])
        self.owner = np.concatenate([np.full(len(piece), position) for position, piece in enumerate(pieces)])
        self.clip_count = len(pieces)
        self._set_order()

    def release(self) -> None:
        """Give back the windows once training is over. Keras feeds a PyDataset through tf.data's
        ``from_generator``, whose registry of generators keeps this object alive after ``fit`` for the
        rest of the process; without this, every network trained in one process (the benchmarks train
        dozens) kept its training windows: about 0.2 GB for 400 clips, 24 GB by the end of
        ``bench/accuracy.py``."""
        self.x = np.zeros((0, *self.x.shape[1:]), self.x.dtype)
        self.y, self.owner, self.order = self.y[:0], self.owner[:0], self.order[:0]

    def _set_order(self) -> None:
        used = np.zeros(self.clip_count, dtype=bool)
        used[self._clips_this_epoch(self.clip_count)] = True
        windows = np.flatnonzero(used[self.owner])
        self.order = windows[self._permutation(len(windows), 3)]

    def __len__(self) -> int:
        return int(-(-len(self.order) // self.batch_size))

    def __getitem__(self, batch: int):
        positions = self.order[batch * self.batch_size : (batch + 1) * self.batch_size]
        return self._finish(self.x[positions], self.y[positions], batch)
