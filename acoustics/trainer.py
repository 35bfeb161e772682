"""Stage 4's one path from (recipe, speaker split) to saved, scored, calibrated models.

``train_models.py`` and ``make reference`` call these in order and print between them:
:func:`load_split` (the speakers, normalisation and class weights), :func:`train` (one network,
or an ensemble of seeded members) and :func:`score_and_save` (calibrate on the validation speakers,
score the test speakers, write the ``.h5`` with its recipe and provenance, the pictures and the
``runs`` row). The benchmarks train through the same :func:`acoustics.models.train_network`.
Keras is imported only once training starts, so bad input is refused within a second.
"""

from __future__ import annotations

import datetime
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import training
from .database import FeatureDatabase
from .errors import AcousticsError
from .recipe import Recipe
from .settings import Settings


@dataclass(frozen=True, eq=False)
class Split:
    """The data of one speaker split of a feature database, ready to train on."""

    database_path: Path
    settings: Settings
    index: object  # DataFrame: feature_index() with label and subset
    normalisation: training.Normalisation
    class_weights: dict
    reused: bool

    def rows(self, subset: str):
        return self.index[self.index["subset"] == subset]


def load_split(database: FeatureDatabase, recipe: Recipe, seed: int, *, new_split: bool = False, fractions=None) -> Split:
    """The speaker split of ``database`` (stored one reused while it fits, unless ``new_split``), with the
    training speakers' normalisation (the recipe's ``cmn`` and ``coefficients``) and class weights.
    Raises BadDatabaseError if a feature row of the split holds NaN or infinite values."""
    settings = database.settings
    index, _, reused = training.prepare_data(database, seed, new_split=new_split, fractions=fractions)
    database.check_finite(index["feature_id"])  # NaN features would be scored as female, with a NaN loss
    train_rows = index[index["subset"] == "train"]
    normalisation = training.feature_statistics(database, train_rows["feature_id"], settings, cmn=recipe.cmn,
                                                coefficients=recipe.coefficients)
    class_weights = training.balanced_class_weights(train_rows["label"],
                                                    training.window_counts(train_rows["frame_count"], settings.frames))
    return Split(Path(database.path), settings, index, normalisation, class_weights, reused)


def provenance(split: Split) -> dict:
    """What a model trained on ``split`` heard: per corpus (the speakers' source), its training speakers
    of each sex, their recordings, and whether the voices are synthetic; and the totals."""
    heard = split.rows("train").drop_duplicates("recording_id")
    corpora = {}
    for source, rows in heard.groupby("source"):
        speakers = rows.drop_duplicates("speaker_id")
        corpora[str(source)] = {"female_speakers": int((speakers["sex"] == "female").sum()),
                                "male_speakers": int((speakers["sex"] == "male").sum()),
                                "clips": int(len(rows)), "synthetic": bool(rows["synthetic"].astype(bool).all())}
    speakers = heard.drop_duplicates("speaker_id")
    return {"corpora": corpora, "date": datetime.date.today().isoformat(), "commit": _git_commit(),
            "real_speakers": int((~speakers["synthetic"].astype(bool)).sum()),
            "synthetic_speakers": int(speakers["synthetic"].astype(bool).sum()),
            "clips": int(len(heard))}


def _git_commit() -> str:
    """The project's git commit (with "+changes" when the work tree differs from it), or "unknown"."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+changes" if dirty else "")


def train(name: str, split: Split, recipe: Recipe, seed: int, *, verbose: int = 2) -> tuple:
    """Train network ``name`` on the split's training speakers with ``seed``: ``(model, fit)``."""
    from . import models

    train_batches = models.WindowBatches(split.database_path, split.rows("train"), split.settings, split.normalisation,
                                         batch_size=recipe.batch_size, shuffle=True, seed=seed,
                                         class_weights=split.class_weights, recipe=recipe)
    validation = models.WindowBatches(split.database_path, split.rows("validation"), split.settings, split.normalisation,
                                      batch_size=256)
    return models.train_network(name, train_batches, validation, split.settings, recipe, seed, verbose=verbose)


def score_and_save(name: str, model, fit: dict, split: Split, recipe: Recipe, database: FeatureDatabase, path, *,
                   seed: int, extra_provenance: dict | None = None) -> dict:
    """Calibrate ``model`` on the validation speakers (if the recipe says so), score it on the validation
    and test speakers, save it to ``path`` with its recipe, temperature and provenance, draw its
    pictures and record the run; return its scores (with ``temperature``)."""
    from . import models, plots

    raw = {subset: models.predict_clips(model, database, split.rows(subset), split.settings, split.normalisation,
                                        recipe=recipe)
           for subset in ("validation", "test")}
    for subset, values in raw.items():
        if not np.isfinite(values).all():
            raise AcousticsError(
                f"{name}: the trained network answers NaN (not a number) for {int((~np.isfinite(values)).sum())} of "
                f"{len(values)} {subset} clips: its training diverged, so it is not saved. Train it again with a "
                "smaller learning rate (--recipe learning_rate=0.0003).")
    validation_labels = split.rows("validation")["label"].to_numpy()
    temperature = training.fit_temperature(raw["validation"], validation_labels) if recipe.calibrate else 1.0
    calibrated = {subset: training.calibrate(values, temperature) for subset, values in raw.items()}
    scores = {subset: training.clip_scores(split.rows(subset), calibrated[subset]) for subset in calibrated}
    scores["test"]["ece"] = training.expected_calibration_error(calibrated["test"], split.rows("test")["label"].to_numpy())
    scores.update(epochs=fit["epochs"], best_epoch=fit["best_epoch"], interrupted=fit["interrupted"], seed=seed,
                  training_seconds=round(fit["seconds"], 1), parameters=models.parameter_count(model), temperature=temperature)
    heard = provenance(split) | (extra_provenance or {})
    path = models.save_model(model, path, {
        "model_name": name, "settings": split.settings, "normalisation": split.normalisation, "recipe": recipe,
        "temperature": temperature, "provenance": heard, "scores": scores, "history": fit["history"]})
    out = Path(path).parent
    if fit["history"]:
        plots.plot_training_curves(fit["history"], out / f"{name}_training.png", f"{name}: training curves")
    plots.plot_confusion_matrix(scores["test"]["confusion"], list(training.CLASS_NAMES), out / f"{name}_confusion.png",
                                f"{name}: test clips ({scores['test']['speakers']} speakers)")
    test = scores["test"]
    database.record_run(model=name, path=path, scores=scores | {"recipe": recipe.to_dict()}, test_accuracy=test["accuracy"],
                        balanced_accuracy=test["balanced_accuracy"], test_speakers=test["speakers"], epochs=fit["epochs"],
                        training_seconds=fit["seconds"], parameters=scores["parameters"])
    return scores


def members_fit(fits) -> dict:
    """The ``fit`` record of an ensemble: its members' training seconds added up."""
    return {"history": {}, "epochs": 0, "best_epoch": 0, "interrupted": False,
            "seconds": float(np.sum([fit["seconds"] for fit in fits]))}
