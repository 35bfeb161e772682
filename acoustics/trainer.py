"""Stage 4's one path from (recipe, speaker split) to saved, scored, calibrated models.

``train_models.py`` and ``make reference`` call these in order and print between them:
:func:`load_split` (the speakers, normalisation and class weights), :func:`train` (one network,
or an ensemble of seeded members) and :func:`score_and_save` (calibrate on the validation speakers,
score the test speakers, write the ``.h5`` with its recipe and provenance, the pictures and the
``runs`` row); :func:`train_models` does both for each network and the ensemble, yielding its progress.
Around them: :func:`check_outputs` (before any work), :func:`bench_provenance` (figures stored with the
models), :func:`choose` (the model copied to ``best.h5``) and :func:`summary_table` (the test table).
The benchmarks train through :func:`train_in_memory`, the same network training on features held in
memory. Keras is imported only once training starts, so bad input is refused within a second.
"""

from __future__ import annotations

import datetime
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple, Optional

import numpy as np

from . import training
from .database import FeatureDatabase
from .errors import AcousticsError
from .inputs import bounded_json, check_readable_file
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

    def describe(self) -> str:
        """One line per subset: its female and male speakers and its clips."""
        lines = []
        for subset in ("train", "validation", "test"):
            rows = self.rows(subset)
            speakers = rows.groupby("sex")["speaker_id"].nunique()
            lines.append(f"  {subset:<10} {speakers.get('female', 0):>4} female, {speakers.get('male', 0):>4} male "
                         f"speakers, {len(rows):>6} clips")
        return "\n".join(lines)


class Saved(NamedTuple):
    """A model saved by :func:`train_models`: its name, its file, its scores and its ``fit`` (an ensemble's
    with ``members`` and ``network``: how many networks of which kind it combines)."""

    name: str
    path: Path
    scores: dict
    fit: dict


#: The pictures :func:`score_and_save` draws beside each model ``NAME.h5``: ``NAME_training.png``, ``NAME_confusion.png``.
PICTURES = ("training", "confusion")


def check_outputs(folder: Path, names, best_name: str, *, database: Path) -> None:
    """Refuse, before any work, a ``folder`` (--out) that is a file, or a model ``NAME.h5`` (for each of
    ``names``), a picture of one, or the copy ``best_name.h5`` (--name) that would overwrite the feature
    ``database`` or another kind of file."""
    from . import outputs

    if folder.exists() and not folder.is_dir():
        raise AcousticsError(f"--out {folder} is a file, not a folder; choose another folder.")
    protected = {"the feature database": database}
    for name in names:
        outputs.check_output_path(folder / f"{name}.h5", "--out", "HDF5 file (a model)", protected)
        for picture in PICTURES:
            outputs.check_picture_path(folder / f"{name}_{picture}.png", "--out", protected)
    outputs.check_output_path(folder / f"{best_name}.h5", "--name", "HDF5 file (a model)", protected)


def bench_provenance(path: Optional[Path]) -> dict:
    """``{"bench": figures}`` from a bench/accuracy.py JSON file (--bench), for a model's provenance ({} for none)."""
    if path is None:
        return {}
    check_readable_file(path, "--bench", "a JSON file of bench/accuracy.py's figures")
    try:
        return {"bench": bounded_json(Path(path).read_text(encoding="utf-8"))}
    except (OSError, ValueError) as error:
        raise AcousticsError(f"--bench {path}: not a readable JSON file of bench/accuracy.py's figures ({error}).") from None


def load_split(database: FeatureDatabase, recipe: Recipe, seed: int, *, new_split: bool = False, fractions=None) -> Split:
    """The speaker split of ``database`` (stored one reused while it fits, unless ``new_split``), with the
    training speakers' normalisation and class weights.
    Raises BadDatabaseError if a feature row of the split holds NaN or infinite values."""
    settings = database.settings
    index, _, reused = training.prepare_data(database, seed, new_split=new_split, fractions=fractions)
    database.check_finite(index["feature_id"])  # NaN features would be scored as female, with a NaN loss
    train_rows = index[index["subset"] == "train"]
    normalisation = training.feature_statistics(database, train_rows["feature_id"], settings)
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
    from . import batches, models

    train_batches = batches.WindowBatches(split.database_path, split.rows("train"), split.settings, split.normalisation,
                                          batch_size=recipe.batch_size, shuffle=True, seed=seed,
                                          class_weights=split.class_weights, recipe=recipe)
    validation = batches.WindowBatches(split.database_path, split.rows("validation"), split.settings, split.normalisation,
                                       batch_size=256)
    return models.train_network(name, train_batches, validation, split.settings, recipe, seed, verbose=verbose)


def train_in_memory(name: str, matrices: list, labels, recordings, settings: Settings, recipe: Recipe, seed: int, *,
                    verbose: int = 0) -> tuple:
    """Train network ``name`` as :func:`train` does, on MFCC matrices held in memory (the benchmarks'):
    ``matrices`` (frames, n_mfcc) with their ``labels`` (1 male) and ``recordings`` (which recording each
    matrix is a variant of). Returns ``(model, normalisation, fit)``."""
    from . import batches, models

    normalisation = training.matrix_statistics(matrices, settings)
    weights = training.balanced_class_weights(labels, training.window_counts([len(m) for m in matrices], settings.frames))
    windows = batches.ArrayBatches(matrices, labels, settings, normalisation, batch_size=recipe.batch_size, shuffle=True,
                                   seed=seed, class_weights=weights, recipe=recipe, recordings=recordings)
    try:
        model, fit = models.train_network(name, windows, None, settings, recipe, seed, verbose=verbose)
    finally:
        windows.release()
    return model, normalisation, fit


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


@dataclass(frozen=True)
class Starting:
    """Network ``name`` is about to train with ``seed``; for an ensemble's member, its number (from 1) and the count."""

    name: str
    seed: int
    member: int = 0
    members: int = 0


@dataclass(frozen=True)
class Stopped:
    """Ctrl-C stopped the training of ``name`` (a network, or "ensemble": its member); nothing more is trained."""

    name: str


def train_models(names, split: Split, recipe: Recipe, database: FeatureDatabase, folder: Path, *, seed: int,
                 ensemble: bool, extra_provenance: dict | None = None) -> Iterator:
    """Train each network of ``names`` with ``seed`` and save it to ``folder/NAME.h5``, then, with ``ensemble``,
    the recipe's ensemble to ``folder/ensemble.h5``. Yields a :class:`Starting` before each network trains
    and a :class:`Saved` (with its ``fit``) after each model is saved, so the caller can show progress.
    Ctrl-C during training saves the network as trained so far, yields :class:`Stopped` and ends."""
    trained = {}
    for name in names:
        yield Starting(name, seed)
        model, fit = train(name, split, recipe, seed)
        path = folder / f"{name}.h5"
        scores = score_and_save(name, model, fit, split, recipe, database, path, seed=seed, extra_provenance=extra_provenance)
        trained[name] = (model, fit)
        yield Saved(name, path, scores, fit)
        if fit["interrupted"]:
            yield Stopped(name)
            return
    if ensemble:
        yield from _train_ensemble(split, recipe, database, folder, seed=seed,
                                   first=trained.get(recipe.ensemble_members()[0]), extra_provenance=extra_provenance)


def _train_ensemble(split: Split, recipe: Recipe, database: FeatureDatabase, folder: Path, *, seed: int,
                    first: Optional[tuple], extra_provenance: dict | None) -> Iterator:
    """:func:`train_models`' ensemble: the networks of ``recipe.ensemble_members()`` with seeds ``seed``,
    ``seed + 1``, ... (``first``, the ``(model, fit)`` of the first member's network already trained with
    ``seed``, is reused), combined into one model whose P(male) is their mean (one member is saved as it is)."""
    from . import networks

    member_networks = recipe.ensemble_members()
    members = [first] if first is not None else []
    for position in range(len(members), len(member_networks)):
        yield Starting(member_networks[position], seed + position, position + 1, len(member_networks))
        members.append(train(member_networks[position], split, recipe, seed + position))
        if members[-1][1]["interrupted"]:
            yield Stopped("ensemble")
            return
    ensemble = members[0][0] if len(members) == 1 else networks.combine_models([model for model, _ in members], split.settings)
    path, fit = folder / "ensemble.h5", members_fit([fit for _, fit in members])
    scores = score_and_save("ensemble", ensemble, fit, split, recipe, database, path, seed=seed,
                            extra_provenance=extra_provenance)
    yield Saved("ensemble", path, scores, fit | {"network": recipe.ensemble_network})


def choose(results: list, pick: Optional[str] = None) -> tuple:
    """``(chosen, best)`` of the :class:`Saved` ``results``: ``best`` has the highest validation balanced
    accuracy (ties: the lower validation log loss); ``chosen`` is the one named ``pick`` if it was trained,
    else ``best``."""
    best = max(results, key=lambda saved: (saved.scores["validation"]["balanced_accuracy"],
                                           -saved.scores["validation"]["log_loss"]))
    picked = [saved for saved in results if saved.name == pick]
    return (picked[0] if picked else best), best


def summary_table(results: list, index):
    """A DataFrame of the :class:`Saved` ``results``' test scores: a row per model, accuracy per variant
    (clean, then each SNR), balanced accuracy, ECE, speakers, training seconds and parameters."""
    import pandas

    variants = training.variant_order(index)
    rows = []
    for name, _, scores, _ in results:
        test = scores["test"]
        row = {"model": name, "accuracy": test["accuracy"]}
        row.update({variant: test["per_variant"].get(variant, float("nan")) for variant in variants})
        row.update({"balanced accuracy": test["balanced_accuracy"], "ECE": test.get("ece", float("nan")),
                    "test speakers": test["speakers"],
                    "seconds": scores["training_seconds"], "parameters": scores["parameters"]})
        rows.append(row)
    return pandas.DataFrame(rows)


def members_fit(fits: list) -> dict:
    """The ``fit`` record of an ensemble: how many ``members`` it has, their training seconds added up."""
    return {"history": {}, "epochs": 0, "best_epoch": 0, "interrupted": False, "members": len(fits),
            "seconds": float(np.sum([fit["seconds"] for fit in fits]))}
