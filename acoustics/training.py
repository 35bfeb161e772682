"""Data handling of stage 4: the speaker split, normalisation statistics, batch plans and clip scores.

Everything here reads the feature database through :class:`FeatureDatabase` in batches of recordings,
so memory does not grow with the corpus, and nothing here imports TensorFlow: stage 4 refuses bad
input (no features, one sex only, too few speakers) within a second. ``models.py`` holds the Keras side.

Labels: ``CLASS_NAMES[0]`` is female (0), ``CLASS_NAMES[1]`` male (1); the models output P(male).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .database import SEXES, SUBSETS, FeatureDatabase
from .errors import BadParameterError, NotEnoughDataError, SettingsMismatchError

CLASS_NAMES = ("female", "male")
#: One speaker of each sex in each of train, validation and test.
MIN_SPEAKERS_PER_SEX = 3
DEFAULT_FRACTIONS = (0.70, 0.15, 0.15)
#: Feature rows read per query when streaming (each row is one clip: ~3 s is ~50 KB of MFCCs).
ROWS_PER_READ = 200


# The speaker-disjoint split ------------------------------------------------------------------------
def split_speakers(speakers_dataframe, seed: int, fractions=DEFAULT_FRACTIONS) -> dict:
    """Assign each speaker to train, validation or test: ``{speaker_id: subset}``.

    ``speakers_dataframe`` needs the columns ``id`` and ``sex`` (and may have ``synthetic``). The split
    is stratified by sex: the speakers of each sex are shuffled with ``seed`` and cut by ``fractions``
    (train, validation, test), with at least one speaker of each sex in every subset. All variants
    (clean, noisy) of a recording belong to its speaker, so they always fall on the same side.

    When real and synthetic (espeak-ng) speakers are mixed, each sex's real and synthetic speakers are
    cut separately, so that validation and test hold real voices whenever there are at least 3 real
    speakers of each sex: the calibration and the choice of the best model then listen to people,
    not only to the synthesiser.
    """
    fractions = tuple(float(fraction) for fraction in fractions)
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
        raise BadParameterError(f"split fractions must be three positive numbers summing to 1, not {fractions}.")
    counts = {sex: int((speakers_dataframe["sex"] == sex).sum()) for sex in SEXES}
    if min(counts.values()) < MIN_SPEAKERS_PER_SEX:
        raise NotEnoughDataError(
            f"The split needs at least {MIN_SPEAKERS_PER_SEX} speakers of each sex (has {counts['female']} female, "
            f"{counts['male']} male); run 'python speech_prep.py' on more data."
        )
    synthetic = (speakers_dataframe["synthetic"].astype(int).to_numpy() if "synthetic" in speakers_dataframe
                 else np.zeros(len(speakers_dataframe), dtype=int))
    real_counts = {sex: int(((speakers_dataframe["sex"] == sex).to_numpy() & (synthetic == 0)).sum()) for sex in SEXES}
    by_source = bool(synthetic.any()) and min(real_counts.values()) >= MIN_SPEAKERS_PER_SEX
    rng = np.random.default_rng(seed)
    assignment = {}
    for sex in SEXES:
        of_sex = (speakers_dataframe["sex"] == sex).to_numpy()
        groups = [of_sex & (synthetic == 0), of_sex & (synthetic == 1)] if by_source else [of_sex]
        for group in groups:
            identifiers = rng.permutation(np.sort(speakers_dataframe.loc[group, "id"].to_numpy()))
            if len(identifiers) < MIN_SPEAKERS_PER_SEX:  # a few synthetic voices beside enough real ones
                assignment.update({int(speaker_id): "train" for speaker_id in identifiers})
                continue
            assignment.update(_cut(identifiers, fractions))
    return assignment


def _cut(identifiers, fractions) -> dict:
    """Cut shuffled ``identifiers`` (3 or more) into train, validation and test by ``fractions``."""
    count = len(identifiers)
    validation = max(1, int(round(count * fractions[1])))
    test = max(1, int(round(count * fractions[2])))
    while count - validation - test < 1:  # only with extreme fractions: give train its one speaker
        if validation >= test and validation > 1:
            validation -= 1
        else:
            test -= 1
    train = count - validation - test
    return {int(speaker_id): "train" if position < train else "validation" if position < train + validation else "test"
            for position, speaker_id in enumerate(identifiers)}


def is_usable_split(assignment: dict, speakers_dataframe) -> bool:
    """True when ``assignment`` covers exactly these speakers and every subset has both sexes."""
    identifiers = {int(speaker_id) for speaker_id in speakers_dataframe["id"]}
    if set(assignment) != identifiers:
        return False
    sex_of = dict(zip(speakers_dataframe["id"].astype(int), speakers_dataframe["sex"]))
    present = {(assignment[speaker_id], sex_of[speaker_id]) for speaker_id in identifiers}
    return all((subset, sex) in present for subset in SUBSETS for sex in SEXES)


def prepare_data(database: FeatureDatabase, seed: int, *, new_split: bool = False, fractions=None):
    """Check the database holds enough data and return ``(index, split, reused)``.

    ``index`` is :meth:`FeatureDatabase.feature_index` with the columns ``label`` (0 female, 1 male)
    and ``subset``. The stored split is reused when it covers exactly the speakers that have
    features; otherwise (or with ``new_split``, or with ``fractions`` (train, validation, test) given)
    a new one is drawn with ``seed`` and stored.
    Raises :class:`NotEnoughDataError` naming the database and the stage to run first.
    """
    path = database.path
    index = database.feature_index()
    if index.empty:
        raise NotEnoughDataError(f"{path}: holds no features yet; run 'python speech_prep.py' first.")
    speakers = (index.groupby("speaker_id", as_index=False)[["sex", "synthetic"]].first()
                .rename(columns={"speaker_id": "id"}))
    counts = {sex: int((speakers["sex"] == sex).sum()) for sex in SEXES}
    for sex, other in (("male", "female"), ("female", "male")):
        if counts[other] == 0:
            raise NotEnoughDataError(
                f"{path}: holds only {sex} speakers ({counts[sex]}); run 'python speech_prep.py' on recordings of "
                f"{other} speakers too."
            )
    if min(counts.values()) < MIN_SPEAKERS_PER_SEX:
        raise NotEnoughDataError(
            f"{path}: needs at least {MIN_SPEAKERS_PER_SEX} speakers of each sex for separate training, validation "
            f"and test speakers (has {counts['female']} female, {counts['male']} male); run 'python speech_prep.py' "
            "on more data."
        )
    stored = database.load_split()
    reused = not new_split and fractions is None and is_usable_split(stored, speakers)
    split = stored if reused else split_speakers(speakers, seed, DEFAULT_FRACTIONS if fractions is None else fractions)
    if not reused:
        database.save_split(split, seed)
    index = index.assign(
        label=(index["sex"] == "male").astype(np.int64),
        subset=index["speaker_id"].map(lambda speaker_id: split[int(speaker_id)]),
    )
    return index, split, reused


# Windows, statistics and batches -----------------------------------------------------------------
def window_counts(frame_counts, frames: int) -> np.ndarray:
    """How many windows :func:`acoustics.features.windows` cuts from matrices of these frame counts."""
    frame_counts = np.asarray(frame_counts, dtype=np.int64)
    hop = max(1, frames // 2)
    extra = np.maximum(frame_counts - frames, 0)
    counts = extra // hop + 1
    return counts + ((extra % hop) != 0)


def read_matrices(database: FeatureDatabase, feature_ids, n_mfcc: int) -> dict:
    """``{feature_id: matrix}``; raises SettingsMismatchError if a matrix has the wrong coefficient count."""
    matrices = database.load_features(feature_ids)
    for feature_id, matrix in matrices.items():
        if matrix.shape[1] != n_mfcc:
            raise SettingsMismatchError(
                f"{database.path}: feature row {feature_id} holds {matrix.shape[1]} coefficients per frame but the "
                f"database settings say n_mfcc {n_mfcc}; rebuild it with 'python set_up_sql.py --reset' and "
                "'python speech_prep.py'."
            )
    return matrices


def feature_statistics(database: FeatureDatabase, feature_ids, settings) -> Normalisation:
    """The :class:`Normalisation` of the given feature rows: :func:`matrix_statistics` over every frame,
    streamed ``ROWS_PER_READ`` rows at a time."""
    feature_ids = [int(feature_id) for feature_id in feature_ids]

    def blocks():
        for start in range(0, len(feature_ids), ROWS_PER_READ):
            yield from read_matrices(database, feature_ids[start : start + ROWS_PER_READ], settings.n_mfcc).values()

    try:
        return matrix_statistics(blocks(), settings)
    except NotEnoughDataError:
        raise NotEnoughDataError(f"{database.path}: no training frames to compute statistics from; run 'python speech_prep.py' first.") from None


def matrix_statistics(matrices, settings) -> Normalisation:
    """The :class:`Normalisation` of ``matrices`` (an iterable of (frames, n_mfcc) MFCC matrices):
    per-coefficient mean and standard deviation over every frame, merged clip by clip with Chan's
    parallel formula in float64."""
    n_mfcc = settings.n_mfcc
    count, mean, squares = 0, np.zeros(n_mfcc), np.zeros(n_mfcc)
    for matrix in matrices:
        block = matrix.astype(np.float64)
        block_count, block_mean = block.shape[0], block.mean(axis=0)
        block_squares = ((block - block_mean) ** 2).sum(axis=0)
        delta = block_mean - mean
        total = count + block_count
        mean = mean + delta * block_count / total
        squares = squares + block_squares + delta**2 * count * block_count / total
        count = total
    if count == 0:
        raise NotEnoughDataError("No training frames to compute statistics from; run 'python speech_prep.py' first.")
    std = np.maximum(np.sqrt(squares / count), 1e-3)
    return Normalisation(mean, std)


@dataclass(frozen=True, eq=False)
class Normalisation:
    """How MFCC matrices are scaled before a network sees them; stored in every model file.

    ``mean`` and ``std`` are the training frames' per-coefficient mean and standard deviation
    (float32, n_mfcc values). Bad values raise :class:`BadParameterError` (a ValueError).
    """

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        if mean.ndim != 1 or mean.shape != std.shape or len(mean) == 0:
            raise BadParameterError(f"Normalisation: mean and std must be two equal-length vectors, not shapes {mean.shape} and {std.shape}.")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
            raise BadParameterError("Normalisation: mean and std must be finite, and std positive.")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    def apply(self, matrix: np.ndarray) -> np.ndarray:
        """``matrix`` (one (frames, n_mfcc) matrix or a (count, frames, n_mfcc) stack of windows),
        normalised as float32."""
        matrix = np.asarray(matrix, dtype=np.float32)
        return ((matrix - self.mean) / self.std).astype(np.float32, copy=False)


def balanced_class_weights(labels, window_count) -> dict:
    """``{0: weight, 1: weight}`` so that both classes weigh the same in the loss: scikit-learn's
    'balanced' weights over the training *windows* (each clip counts ``window_count`` times)."""
    from sklearn.utils.class_weight import compute_class_weight

    windows = np.repeat(np.asarray(labels), np.asarray(window_count))
    if set(np.unique(windows)) != {0, 1}:
        raise NotEnoughDataError("The training speakers lack one of the two sexes; run 'python speech_prep.py' on more data.")
    weights = compute_class_weight("balanced", classes=np.array([0, 1]), y=windows)
    return {0: float(weights[0]), 1: float(weights[1])}


def window_weights(raw_windows: np.ndarray, settings, weight_db: float = 2.0) -> np.ndarray:
    """Weight of each window of *one* clip in its verdict, from its raw (not normalised) MFCC windows
    (count, frames, n_mfcc): the loudest window weighs 1, each other ``exp(-(dB below it) / weight_db)``
    (the recipe's ``loudness_weight_db``). In noise the quiet windows are the pauses, where only the
    noise (or other people's voices) is heard: they hardly vote.

    The level is read from coefficient 0: with the orthonormal DCT of ``n_mels`` log-mel bands (librosa's
    and ours), it is the sum of the bands' dB over ``sqrt(n_mels)``.
    """
    raw_windows = np.asarray(raw_windows, dtype=np.float64)
    if raw_windows.ndim != 3 or len(raw_windows) == 0:
        raise ValueError(f"window_weights: expected (count, frames, n_mfcc) windows, got shape {raw_windows.shape}")
    levels = raw_windows[:, :, 0].mean(axis=1) / np.sqrt(settings.n_mels)
    return np.exp((levels - levels.max()) / float(weight_db))


def clip_windows(matrices, settings, normalisation: Normalisation, weight_db: float = 2.0):
    """Cut whole clips' (frames, n_mfcc) MFCC ``matrices`` into one batch: ``(windows, owners, weights)``.

    ``windows`` is normalised, shape (count, frames, n_mfcc); ``owners[i]`` is the position in
    ``matrices`` of the clip that window ``i`` comes from, ``weights[i]`` its :func:`window_weights`
    with ``weight_db``.
    """
    from .features import windows as cut_windows

    raw_pieces = [cut_windows(matrix, settings.frames) for matrix in matrices]
    owners = np.concatenate([np.full(len(piece), position) for position, piece in enumerate(raw_pieces)])
    weights = np.concatenate([window_weights(piece, settings, weight_db) for piece in raw_pieces])
    return normalisation.apply(np.concatenate(raw_pieces)), owners, weights


def clip_batches(database: FeatureDatabase, index, settings, normalisation: Normalisation, windows_per_batch: int = 256,
                 weight_db: float = 2.0):
    """Yield ``(feature_ids, windows, owners, weights)`` for whole clips, about ``windows_per_batch`` windows
    each, as :func:`clip_windows` (``owners`` index ``feature_ids``)."""
    feature_ids = index["feature_id"].to_numpy()
    counts = window_counts(index["frame_count"].to_numpy(), settings.frames)
    start = 0
    while start < len(feature_ids):
        stop = start + 1
        while stop < len(feature_ids) and counts[start : stop + 1].sum() <= windows_per_batch:
            stop += 1
        batch_ids = [int(feature_id) for feature_id in feature_ids[start:stop]]
        matrices = read_matrices(database, batch_ids, settings.n_mfcc)
        yield (batch_ids, *clip_windows([matrices[feature_id] for feature_id in batch_ids], settings, normalisation, weight_db))
        start = stop


# Calibration -------------------------------------------------------------------------------------
def calibrate(probabilities, temperature: float = 1.0) -> np.ndarray:
    """P(male) ``probabilities`` with their log-odds divided by ``temperature`` (1: unchanged; above 1:
    less sure). Temperature scaling keeps every verdict and changes only how sure it sounds."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if temperature == 1.0:
        return probabilities
    clipped = np.clip(probabilities, 1e-7, 1 - 1e-7)
    return 1.0 / (1.0 + np.exp(-np.log(clipped / (1 - clipped)) / float(temperature)))


def fit_temperature(probabilities, labels) -> float:
    """The temperature (0.2 to 20) that minimises the log loss of ``calibrate(probabilities, T)`` on
    these clips (the validation speakers', whom the network did not learn from)."""
    from scipy.optimize import minimize_scalar
    from sklearn.metrics import log_loss

    probabilities, labels = np.asarray(probabilities, dtype=np.float64), np.asarray(labels)
    if len(labels) == 0 or len(np.unique(labels)) < 2:
        return 1.0
    result = minimize_scalar(lambda log_t: log_loss(labels, calibrate(probabilities, float(np.exp(log_t))), labels=[0, 1]),
                             bounds=(np.log(0.2), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))


def expected_calibration_error(probabilities, labels, bins: int = 10) -> float:
    """Expected calibration error of P(male) ``probabilities``: over ``bins`` equal-width bins of the
    stated label's probability (0.5 to 1), the clip-weighted mean of |accuracy - mean probability|."""
    probabilities, labels = np.asarray(probabilities, dtype=np.float64), np.asarray(labels)
    stated = np.maximum(probabilities, 1 - probabilities)
    right = (probabilities >= 0.5).astype(int) == labels
    edges = np.linspace(0.5, 1.0, bins + 1)
    which = np.clip(np.digitize(stated, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for position in range(bins):
        members = which == position
        if members.any():
            error += members.mean() * abs(right[members].mean() - stated[members].mean())
    return float(error)


# Scores ------------------------------------------------------------------------------------------
def variant_order(index) -> list:
    """Variants of ``index`` in the order of the summary: clean first, then by falling SNR."""
    snr_of = index.groupby("variant")["snr_db"].first().astype(float).fillna(np.inf)
    return sorted(snr_of.index, key=lambda variant: (variant != "clean", -snr_of[variant], variant))


def clip_scores(index, probabilities) -> dict:
    """Clip-level scores of P(male) ``probabilities`` (one per row of ``index``, threshold 0.5).

    Returns ``accuracy``, ``balanced_accuracy`` (mean of the per-class recalls), ``log_loss`` (mean
    binary cross-entropy of the clip probabilities), ``per_variant`` (accuracy of each variant),
    ``speakers``, ``clips`` and ``confusion`` (rows true female/male, columns predicted female/male);
    the metrics are scikit-learn's.
    """
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix, log_loss

    labels = index["label"].to_numpy()
    probabilities = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-7, 1 - 1e-7)
    predicted = (probabilities >= 0.5).astype(np.int64)
    correct = predicted == labels
    empty = len(labels) == 0
    return {
        "log_loss": float("nan") if empty else float(log_loss(labels, probabilities, labels=[0, 1])),
        "accuracy": float("nan") if empty else float(correct.mean()),
        "balanced_accuracy": float("nan") if empty else float(_balanced(balanced_accuracy_score, labels, predicted)),
        "per_variant": {variant: float(correct[(index["variant"] == variant).to_numpy()].mean()) for variant in variant_order(index)},
        "speakers": int(index["speaker_id"].nunique()),
        "clips": int(len(index)),
        "confusion": confusion_matrix(labels, predicted, labels=[0, 1]).tolist(),
    }


def _balanced(metric, labels, predicted) -> float:
    """scikit-learn's balanced accuracy, without its warning when only one class is present (then: accuracy)."""
    if len(np.unique(labels)) < 2:
        return float(np.mean(labels == predicted))
    return float(metric(labels, predicted))
