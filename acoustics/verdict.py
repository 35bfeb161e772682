"""Turn a model's probability into words, classify one clip the way every stage-5 path does, and load
the model in the background while the microphone listens.

Kept free of TensorFlow so that it is cheap to import; the model is passed in. Importing Keras costs
about 6 s, more than the start-up goal of stage 5 (5 s to "Speak now"), so the microphone modes read
the model's settings with h5py alone (:func:`read_model_settings`, a few milliseconds), check them
against the feature database, open the microphone and say "Speak now" while a :class:`ModelLoader`
thread imports Keras, loads the model and runs one warm-up prediction. The person speaks meanwhile.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from . import features, speechcheck
from .errors import BadAudioError, BadModelError, NoSpeechError, reason_of
from .modelfile import check_model_settings, read_metadata
from .outputs import same_file
from .settings import Settings

#: |P(male) - 0.5| up to this is "a close call" (the 2019 workshop's 0.4 to 0.6 band, both ends included) ...
CLOSE_CALL = 0.1
#: ... below this "fairly sure", from it on "sure" (P(male) <= 0.05 or >= 0.95). The models' probabilities
#: are calibrated on held-out speakers, so "sure" is said where nineteen verdicts in twenty or more are
#: right (bench/accuracy.py measures how often, on corpora the model never heard).
FAIRLY_SURE = 0.45


@dataclass(frozen=True)
class Verdict:
    """What stage 5 says about one clip."""

    label: Optional[str]  # "male", "female", or None when there was no usable speech
    probability_male: Optional[float]
    duration_seconds: float
    speech_seconds: float
    note: str = ""  # without a label: why; with one: what is poor about the input ("clipped 1.0 %, noisy")

    @property
    def confidence(self) -> str:
        if self.probability_male is None:
            return ""
        # Decided on the probability as printed (two decimals), so that the words agree with the number.
        distance = round(abs(round(self.probability_male, 2) - 0.5), 6)
        return "a close call" if distance <= CLOSE_CALL else "fairly sure" if distance < FAIRLY_SURE else "sure"

    @property
    def probability(self) -> Optional[float]:
        """Probability of the stated label."""
        if self.probability_male is None:
            return None
        return self.probability_male if self.label == "male" else 1 - self.probability_male

    def sentence(self) -> str:
        """The verdict in words, e.g. "male voice (probability 0.93; sure) [quiet: -58 dBFS]"; or the reason."""
        if self.label is None:
            return self.note
        words = f"{self.label} voice (probability {self.probability:.2f}; {self.confidence})"
        return f"{words} [{self.note}]" if self.note else words


@dataclass(frozen=True)
class Prepared:
    """A clip ready for the model: the MFCC matrix of its speech, and the seconds its Verdict reports."""

    matrix: np.ndarray
    duration_seconds: float
    speech_seconds: float
    note: str = ""

    def verdict(self, probability_male: float) -> Verdict:
        label = "male" if probability_male >= 0.5 else "female"
        return Verdict(label, probability_male, self.duration_seconds, self.speech_seconds, self.note)


def prepare_signal(metadata: dict, signal: np.ndarray, name):
    """A float32 mono signal at the model's sample rate made ready for the model (:class:`Prepared`), or,
    when it holds no usable speech, its Verdict without label."""
    settings = metadata["settings"]
    duration = signal.size / settings.sample_rate
    try:
        speech = speechcheck.usable_speech(signal, settings.sample_rate, settings.trim_top_db, name)
    except NoSpeechError as error:
        return Verdict(None, None, duration, 0.0, reason_of(error, name))
    except BadAudioError as error:
        return Verdict(None, None, duration, 0.0, f"no verdict: {reason_of(error, name)}")
    return Prepared(features.mfcc(speech.samples, settings), duration, speech.samples.size / settings.sample_rate, speech.note)


def classify_signal(model, metadata: dict, signal: np.ndarray, name) -> Verdict:
    """Classify a float32 mono signal at the model's sample rate; no speech gives a Verdict without label."""
    from .models import predict_clip

    prepared = prepare_signal(metadata, signal, name)
    if isinstance(prepared, Verdict):
        return prepared
    return prepared.verdict(predict_clip(model, metadata, prepared.matrix))


def classify_prepared(model, metadata: dict, items: list) -> list:
    """The Verdict of each of ``items`` (:class:`Prepared`, or a Verdict already), the windows of all
    clips predicted in a few large batches (:func:`acoustics.models.predict_matrices`)."""
    from .models import predict_matrices

    ready = [item for item in items if isinstance(item, Prepared)]
    if not ready:
        return list(items)
    probabilities = iter(predict_matrices(model, [item.matrix for item in ready], metadata["settings"],
                                          metadata["normalisation"], recipe=metadata["recipe"],
                                          temperature=metadata["temperature"]))
    return [item.verdict(float(next(probabilities))) if isinstance(item, Prepared) else item for item in items]


# Which model answers -------------------------------------------------------------------------------
#: The model shipped with the project (``make reference`` trains it on every real voice it finds).
REFERENCE_MODEL = Path(__file__).resolve().parents[1] / "models" / "reference.h5"


def describe_provenance(metadata: dict) -> str:
    """What a model heard in training, in words: "trained on 295 real and 41 synthetic voices", and, for a
    model holding the pretrained encoder, that it stands on one that heard thousands of voices."""
    heard = metadata.get("provenance") or {}
    if "real_speakers" not in heard:
        return "what it was trained on is not recorded in the file"
    words = f"trained on {int(heard['real_speakers'])} real and {int(heard.get('synthetic_speakers', 0))} synthetic voices"
    if isinstance(heard.get("encoder"), dict):
        words += " on top of a speaker encoder pretrained on thousands of voices (GE2E, Resemblyzer)"
    return words


def heard_real_voices(metadata: dict) -> bool:
    """True when the model's provenance says it trained on at least one real (not synthetic) voice."""
    return int((metadata.get("provenance") or {}).get("real_speakers", 0)) > 0


@dataclass(frozen=True)
class ModelChoice:
    """The model file stage 5 uses, the line that says which and what it heard, and a warning or ''."""

    path: Path
    metadata: dict
    line: str
    warning: str = ""
    chosen_by_user: bool = False


def choose_model(model_option, models_folder) -> ModelChoice:
    """The model given with --model; without one, ``models_folder``/best.h5 where it exists and heard
    real voices, otherwise the shipped :data:`REFERENCE_MODEL`. Raises BadModelError for a bad file."""
    warning, metadata = "", None
    if model_option is not None:
        path, by_user = Path(model_option), True
    else:
        best, by_user = Path(models_folder) / "best.h5", False
        path = REFERENCE_MODEL
        if best.is_file():
            try:
                heard = read_metadata(best)
            except BadModelError as error:  # a damaged best.h5 is passed over, and the person told why
                warning = f"Warning: {error} The reference model answers instead."
            else:
                if heard_real_voices(heard):
                    path, metadata = best, heard
    metadata = read_metadata(path) if metadata is None else metadata  # each read checks the file's checksum: once
    who = "the reference model" if same_file(path, REFERENCE_MODEL) else f"the {metadata['model_name']} model"
    line = f"Answering: {who} ({shown_path(path)}), {describe_provenance(metadata)}."
    if not heard_real_voices(metadata) and not same_file(path, REFERENCE_MODEL):
        warning = (f"Warning: {shown_path(path)} has heard no real voice in training and is often wrong about real people; "
                   f"the reference model is the better choice: --model {shown_path(REFERENCE_MODEL)}")
    return ModelChoice(path, metadata, line, warning, by_user)


def shown_path(path: Path) -> str:
    """``path`` relative to the working folder where it lies below it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


# The model, checked without TensorFlow and loaded in the background ------------------------------
def read_model_settings(path) -> Settings:
    """The feature settings stored in a model ``.h5`` (h5py alone: milliseconds); raises BadModelError."""
    return read_metadata(path)["settings"]


def check_against_database(model_path, model_settings: Settings, database_path) -> None:
    """Raise SettingsMismatchError when the feature database at ``database_path`` (if it exists) uses
    other feature settings than the model."""
    from .database import FeatureDatabase

    if not Path(database_path).exists():
        return
    with FeatureDatabase(database_path, readonly=True) as database:
        database_settings = database.settings
    check_model_settings({"path": str(model_path), "settings": model_settings}, database_settings,
                         source=f"The feature database {database_path}")


def warm_up(model, metadata: dict) -> None:
    """One prediction on a silent window: the first prediction builds TensorFlow's function (~0.3 s)."""
    from .models import predict_clip

    settings = metadata["settings"]
    predict_clip(model, metadata, np.zeros((settings.frames, settings.n_mfcc), dtype=np.float32))


class ModelLoader:
    """Imports Keras, loads the model and warms it up in a background thread; :meth:`get` waits for it.

    With ``xla`` (work in large batches: many files, ``--segments``) the model predicts through XLA
    (:func:`acoustics.models.predict_through_xla`) and is not warmed up on one window, a batch size that
    work seldom uses: its first batch compiles instead. ``threads`` limits TensorFlow's threads within one
    operation (before its first one in this process): live, a verdict's batch of a few windows takes about
    half the time on one thread as on two, because each small LSTM step costs more to share out than to do
    (bench/README.md, bench/live.py).
    ``on_ready(model, metadata)`` is called in that thread once the model is ready.
    Any exception of the thread is raised again by :meth:`get`. Keras' import sends file descriptor 2
    to /dev/null for a few seconds (``quiet.import_keras``): callers that print to stderr
    meanwhile must write through a duplicate of it (implement_model.py rebinds ``sys.stderr``).
    """

    def __init__(self, path, on_ready=None, *, xla: bool = False, threads: Optional[int] = None) -> None:
        self.path = path
        self.xla = bool(xla)
        self.threads = threads
        self._on_ready = on_ready
        self.seconds = 0.0
        self._result = None
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name="model-loader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import time

        started = time.perf_counter()
        try:
            from . import models

            if self.threads:
                import tensorflow

                try:
                    tensorflow.config.threading.set_intra_op_parallelism_threads(int(self.threads))
                except RuntimeError:  # TensorFlow already ran in this process: its threads stay as they are
                    pass
            model, metadata = models.load_model(self.path, xla=self.xla)
            if not self.xla:
                warm_up(model, metadata)
            self._result = (model, metadata)
        except BaseException as error:  # re-raised in the caller's thread by get()
            self._error = error
        self.seconds = time.perf_counter() - started
        if self._error is None and self._on_ready is not None:
            self._on_ready(*self._result)

    @property
    def ready(self) -> bool:
        return not self._thread.is_alive()

    def get(self) -> tuple:
        """``(model, metadata)`` once loaded (waits); raises what the loading raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result
