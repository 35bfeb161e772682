"""A model file's project metadata (settings, normalisation, scores), read and checked without Keras.

``models.save_model`` writes these HDF5 attributes beside Keras' own; ``models.load_model`` and stage 5
(which checks a model in milliseconds, before the seconds-long import of Keras) read them here.

Every model file also holds a checksum (:func:`content_digest`): SHA-256 of Keras' description of the
network, every weight and every attribute, taken when it was saved and checked each time it is read,
so a weight or a setting changed afterwards (by hand, by a bad copy, by a disk) is one line, not a
confident wrong verdict.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from . import __version__
from .errors import BadModelError, printable
from .inputs import bounded_json
from .recipe import Recipe
from .settings import FEATURE_FIELDS, Settings
from .training import Normalisation

#: Prefix of the project's HDF5 attributes in a model file.
ATTRIBUTE_PREFIX = "acoustics_"
#: The attribute holding :func:`content_digest` (with the prefix).
DIGEST_ATTRIBUTE = ATTRIBUTE_PREFIX + "sha256"
#: Key under which :func:`_read_attributes` says whether the checksum matched.
DIGEST_CHECKED = " intact"
TRAIN_AGAIN = "train one with 'python train_models.py'"


def content_digest(handle) -> str:
    """SHA-256 (hex) of an open model file (``h5py.File``): its root attributes but the digest itself
    (Keras' ``model_config`` and the project's metadata) and every dataset under ``model_weights`` (name,
    type, shape and bytes), in sorted order."""
    import h5py

    digest = hashlib.sha256()
    for key in sorted(handle.attrs):
        if key != DIGEST_ATTRIBUTE:
            digest.update(key.encode("utf-8", "surrogateescape") + b"\0" + _attribute_bytes(handle.attrs[key]) + b"\0")
    weights = handle["model_weights"]
    names: list = []
    weights.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
    for name in sorted(names):
        values = np.ascontiguousarray(weights[name][()])
        digest.update(f"{name}\0{values.dtype.str}\0{values.shape}\0".encode("utf-8", "surrogateescape"))
        digest.update(values.tobytes())
    return digest.hexdigest()


def _attribute_bytes(value) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, bytes):
        return value
    values = np.asarray(value)
    if values.dtype.kind == "O":  # arrays of strings
        return json.dumps([str(item) for item in values.ravel()]).encode("utf-8", "surrogateescape")
    return f"{values.dtype.str}{values.shape}".encode() + np.ascontiguousarray(values).tobytes()


def stamp_digest(path) -> None:
    """Write :func:`content_digest` into the model file ``path`` (the last step of every save)."""
    import h5py

    with h5py.File(path, "a") as handle:
        handle.attrs[DIGEST_ATTRIBUTE] = content_digest(handle)


def read_metadata(path) -> dict:
    """The project's metadata of a model ``.h5`` written by ``models.save_model``, read with h5py alone.

    Returns ``path``, ``version``, ``model_name``, ``settings`` (Settings), ``class_names``,
    ``normalisation`` (a :class:`~acoustics.training.Normalisation`; a model whose inputs went through
    options of earlier versions, per-window CMN or fewer coefficients, is refused), ``recipe`` (a
    :class:`~acoustics.recipe.Recipe`; the default for models saved before recipes were stored),
    ``temperature`` (the calibration, 1 if none), ``provenance`` (what it was trained on), ``scores``,
    ``history`` and ``saved_at``; its strings come without control characters (they reach the
    terminal). Raises :class:`BadModelError` for a missing, foreign or damaged file, or one of
    another major version of the project.
    """
    path = Path(path)
    attributes = _read_attributes(path)
    version = printable(attributes["version"])
    if version.split(".")[0] != __version__.split(".")[0]:
        raise BadModelError(f"{path}: made by version {version} of the project, which this version ({__version__}) cannot read; {TRAIN_AGAIN}.")
    if not attributes.pop(DIGEST_CHECKED):
        raise BadModelError(f"{path}: the model file was changed after it was saved (its weights or settings do not "
                            f"match its checksum: edited, damaged, or saved by an older version); {TRAIN_AGAIN}.")
    try:
        if int(attributes.get("normalisation_cmn", 0)) or int(attributes.get("normalisation_coefficients", 1 << 30)) < len(
                np.atleast_1d(attributes["normalisation_mean"])):
            raise BadModelError(f"{path}: its inputs went through per-window CMN or fewer coefficients, options that "
                                f"earlier versions measured and this one no longer has; {TRAIN_AGAIN}.")
        metadata = _metadata_of(attributes, path)
        if len(metadata["normalisation"].mean) != metadata["settings"].n_mfcc:
            raise ValueError("normalisation of another coefficient count")
        if not 0.05 <= metadata["temperature"] <= 50:  # also refuses NaN
            raise ValueError("temperature out of range")
        _check_provenance(metadata["provenance"])
        _check_scores(metadata["scores"], metadata["history"])
        return metadata
    except (KeyError, ValueError, TypeError):  # BadParameterError is a ValueError
        raise BadModelError(f"{path}: the model's metadata is incomplete or damaged; {TRAIN_AGAIN}.") from None


def _read_attributes(path: Path) -> dict:
    """The project's HDF5 attributes of the model file ``path`` without :data:`ATTRIBUTE_PREFIX`; raises
    :class:`BadModelError` for a missing or damaged file, or one without the project's version or Keras' weights."""
    import h5py

    if not path.is_file():
        raise BadModelError(f"{path}: no model file here; {TRAIN_AGAIN}.")
    not_ours = BadModelError(f"{path}: not a model made by train_models.py; {TRAIN_AGAIN}.")
    if not h5py.is_hdf5(path):
        raise not_ours
    try:
        with h5py.File(path, "r") as handle:
            attributes = {key[len(ATTRIBUTE_PREFIX):]: handle.attrs[key] for key in handle.attrs if key.startswith(ATTRIBUTE_PREFIX)}
            has_weights = "model_weights" in handle
            intact = has_weights and str(handle.attrs.get(DIGEST_ATTRIBUTE, "")) == content_digest(handle)
    except (OSError, RuntimeError, ValueError, TypeError, KeyError):
        raise BadModelError(f"{path}: the model file is damaged (cut short or corrupt); {TRAIN_AGAIN}.") from None
    if "version" not in attributes or not has_weights:
        raise not_ours
    attributes[DIGEST_CHECKED] = intact
    return attributes


def _metadata_of(attributes: dict, path: Path) -> dict:
    """The metadata :func:`read_metadata` returns, decoded from a model file's ``attributes``; raises
    KeyError, ValueError or TypeError where they are missing or damaged."""
    settings = Settings.from_json(str(attributes["settings"]))
    return {
        "path": str(path),
        "version": printable(attributes["version"]),
        "model_name": printable(attributes["model_name"]),
        "settings": settings,
        "class_names": [printable(name) for name in bounded_json(attributes["class_names"])],
        "normalisation": Normalisation(np.asarray(attributes["normalisation_mean"]), np.asarray(attributes["normalisation_std"])),
        "recipe": Recipe.from_json(str(attributes["recipe"])) if "recipe" in attributes else Recipe(),
        "temperature": float(attributes.get("temperature", 1.0)),
        "provenance": bounded_json(attributes.get("provenance", "{}")),
        "scores": bounded_json(attributes.get("scores", "{}")),
        "history": bounded_json(attributes.get("history", "{}")),
        "saved_at": printable(attributes.get("saved_at", "")),
    }


def _check_provenance(provenance) -> None:
    """Raise ValueError unless ``provenance`` is a dict whose speaker counts, where present, are counts."""
    if not isinstance(provenance, dict):
        raise ValueError("provenance is not an object")
    for key in ("real_speakers", "synthetic_speakers"):
        value = provenance.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"provenance {key} is not a count")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_scores(scores, history) -> None:
    """Raise ValueError unless ``scores`` is an object whose "test" and "validation" parts, where present, are
    objects with an accuracy between 0 and 1 and a count of speakers, and ``history`` maps names to lists of numbers."""
    if not isinstance(scores, dict) or not isinstance(history, dict):
        raise ValueError("scores or history is not an object")
    for part in ("test", "validation"):
        figures = scores.get(part, {})
        if not isinstance(figures, dict):
            raise ValueError(f"scores {part} is not an object")
        if "accuracy" in figures and not (_is_number(figures["accuracy"]) and 0 <= figures["accuracy"] <= 1):
            raise ValueError(f"scores {part} accuracy is not a fraction")
        if "speakers" in figures and not (isinstance(figures["speakers"], int) and not isinstance(figures["speakers"], bool)
                                          and figures["speakers"] >= 0):
            raise ValueError(f"scores {part} speakers is not a count")
    if not all(isinstance(values, list) and all(_is_number(value) for value in values) for values in history.values()):
        raise ValueError("history is not lists of numbers")


def provenance_lines(heard: dict) -> list:
    """A model's provenance in lines: each corpus's speakers and clips, date and commit, bench figures."""
    lines = [f"  {printable(corpus):<14} {int(counts['female_speakers']):>4} female, {int(counts['male_speakers']):>4} male "
             f"speakers, {int(counts['clips']):>6} clips{' (synthetic)' if counts['synthetic'] else ''}"
             for corpus, counts in sorted(heard.get("corpora", {}).items())]
    encoder = heard.get("encoder")
    if isinstance(encoder, dict):
        lines.append(f"  encoder        {printable(encoder.get('network', '?'))}, from {printable(encoder.get('package', '?'))}; "
                     f"{'fine-tuned' if encoder.get('fine_tuned') else 'frozen'}; licence {printable(encoder.get('licence', '?'))}")
        lines.append(f"                 it heard {printable(encoder.get('trained_on', '?'))}")
    if "commit" in heard:
        lines.append(f"  trained {printable(heard.get('date', '?'))} at commit {printable(heard['commit'])}")
    figures = heard.get("bench", {}).get("accuracy")
    if figures:
        lines.append("  bench/accuracy.py, each corpus held out of training: " + "; ".join(
            f"{printable(corpus)} " + ", ".join(f"{printable(condition)} {float(value):.3f}" for condition, value in conditions.items())
            for corpus, conditions in figures.get("per_corpus", {}).items()))
    return lines


def check_model_settings(metadata: dict, settings: Settings, *, source: str = "The feature database") -> None:
    """Raise SettingsMismatchError unless the model's feature settings equal ``settings`` (from ``source``)."""
    metadata["settings"].check_same(
        settings, this=f"the model {metadata.get('path', metadata.get('model_name'))}", that=source,
        fix="Retrain the model with 'python train_models.py' on these features, or use the matching database.",
        fields=FEATURE_FIELDS,
    )


def add_provenance(path, entries: dict) -> None:
    """Add ``entries`` (JSON-able) to the provenance stored in the model file ``path``, atomically: a copy
    in the same folder is changed and then renamed over the file. Used to store the benchmark figures
    of a model's recipe after it was trained (``train_models.py --check MODEL --bench JSON``)."""
    import shutil

    import h5py

    from .outputs import replaced_atomically

    path = Path(path)
    provenance = read_metadata(path)["provenance"] | entries
    with replaced_atomically(path) as temporary:
        shutil.copyfile(path, temporary)
        with h5py.File(temporary, "a") as model_file:
            model_file.attrs[ATTRIBUTE_PREFIX + "provenance"] = json.dumps(provenance, sort_keys=True)
        stamp_digest(temporary)
