"""Turn a model's probability into words, and classify one clip the way every stage-5 path does.

Kept free of TensorFlow so that it is cheap to import; the model is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from . import audio, features
from .errors import BadAudioError

#: |P(male) - 0.5| below this is "a close call" (the 2019 workshop's 0.4 to 0.6 band).
CLOSE_CALL = 0.1
#: ... below this "fairly sure", above it "sure".
FAIRLY_SURE = 0.35


@dataclass(frozen=True)
class Verdict:
    """What stage 5 says about one clip."""

    label: Optional[str]  # "male", "female", or None when there was no usable speech
    probability_male: Optional[float]
    duration_seconds: float
    speech_seconds: float
    note: str = ""

    @property
    def confidence(self) -> str:
        if self.probability_male is None:
            return ""
        distance = abs(self.probability_male - 0.5)
        return "a close call" if distance < CLOSE_CALL else "fairly sure" if distance < FAIRLY_SURE else "sure"

    @property
    def probability(self) -> Optional[float]:
        """Probability of the stated label."""
        if self.probability_male is None:
            return None
        return self.probability_male if self.label == "male" else 1 - self.probability_male

    def sentence(self) -> str:
        if self.label is None:
            return self.note
        return f"{self.label} voice (probability {self.probability:.2f}; {self.confidence})"


def has_speech(signal: np.ndarray, sample_rate: int) -> float:
    """Seconds of speech the voice activity detector hears in ``signal`` (0.0 for silence or steady noise)."""
    from .microphone import detect_utterances

    return float(sum(utterance.speech_seconds for utterance in detect_utterances(signal, sample_rate)))


def classify_signal(model, metadata: dict, signal: np.ndarray, name) -> Verdict:
    """Classify a float32 mono signal at the model's sample rate; no speech gives a Verdict without label."""
    from .models import predict_clip

    settings = metadata["settings"]
    duration = signal.size / settings.sample_rate
    speech = audio.trim_silence(signal, settings.trim_top_db)
    try:
        audio.check_speech(speech, settings.sample_rate, name)
    except BadAudioError as error:
        return Verdict(None, None, duration, 0.0, f"no verdict: {str(error).split(': ', 1)[-1]}")
    if has_speech(signal, settings.sample_rate) == 0.0:
        return Verdict(None, None, duration, 0.0,
                       "no speech detected (only silence or steady noise); speak a sentence, closer to the microphone.")
    probability = predict_clip(model, metadata, features.mfcc(speech, settings))
    return Verdict("male" if probability >= 0.5 else "female", probability, duration, speech.size / settings.sample_rate)
