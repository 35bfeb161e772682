"""The pretrained speaker encoder in Keras, and stage 4's fourth network built on it: ``encoder``.

Transfer learning: the encoder (GE2E, :mod:`acoustics.encoderfile`) learnt to tell thousands of
speakers apart; stage 4 teaches a new head on top of it male against female on the attendee's voices.

The network reads the same normalised MFCC windows as the other three, through the one
:class:`~acoustics.settings.Settings` object and the feature database, and gives the mel power back
inside the network (:class:`MelPower`): with ``n_mfcc == n_mels`` the stored coefficients are an
orthonormal DCT of the log mel power, so undoing the normalisation and the DCT and raising 10 to the
tenth of the dB recovers the mel power that the encoder was trained on (librosa's mel spectrogram,
Slaney scale and norm, 25 ms Hann windows every 10 ms, frames not centred), to float32 rounding. So the database needs no
second kind of feature, the training augmentation (:mod:`acoustics.augment`, which works on the same
coefficients) applies unchanged, and stage 5 feeds it exactly as it feeds the ConvNet.

The encoder scaled each training utterance to -30 dBFS; :class:`MelPower` scales each window's mel
power to the same level (read from the mel bands: their powers times half their widths in Hz add up
to the frame's power spectrum, which Parseval's theorem ties to the waveform's mean square), so a
quiet microphone and a loud one sound alike to it.

``encoder`` = MelPower -> GE2E (3 x LSTM 256, Dense 256 + ReLU, L2 normalisation; frozen unless the
recipe fine-tunes it) -> Dropout -> Dense(1, sigmoid) = P(male).
"""

from __future__ import annotations

import numpy as np

from .encoderfile import BANDS, LAYERS, UNITS, check_settings, read_weights, weights_digest
from .features import dct_matrix, hann_window, mel_band_widths
from .quiet import import_keras
from .settings import Settings

keras = import_keras()

#: The level each window is scaled to, as the encoder's training utterances were (dBFS of the waveform).
TARGET_DBFS = -30.0
#: Name of the nested encoder inside an ``encoder`` network.
ENCODER_NAME = "ge2e"


def spectrum_to_mean_square(settings: Settings) -> float:
    """Factor from the sum of a frame's one-sided power spectrum (periodic Hann window) to its waveform's mean square."""
    return 2.0 / (settings.n_fft * float(np.sum(hann_window(settings.n_fft) ** 2)))


@keras.saving.register_keras_serializable(package="acoustics")
class MelPower(keras.layers.Layer):
    """Normalised MFCC windows (batch, frames, n_mfcc) -> mel power (batch, frames, n_mels), each window
    scaled to :data:`TARGET_DBFS`.

    ``mean`` and ``std`` are the model's :class:`~acoustics.training.Normalisation`; ``band_widths`` and
    ``mean_square_factor`` come from the settings (:meth:`for_settings` fills them in).
    """

    def __init__(self, mean, std, band_widths, mean_square_factor: float, target_dbfs: float = TARGET_DBFS, **kwargs):
        super().__init__(**kwargs)
        self.mean = [float(value) for value in np.asarray(mean).ravel()]
        self.std = [float(value) for value in np.asarray(std).ravel()]
        self.band_widths = [float(value) for value in np.asarray(band_widths).ravel()]
        self.mean_square_factor, self.target_dbfs = float(mean_square_factor), float(target_dbfs)
        count = len(self.mean)
        # dB of each band = (x * std + mean) @ inverse DCT; natural log of its power = that * ln(10) / 10
        inverse = dct_matrix(count, count).T * (np.log(10.0) / 10.0)
        self._kernel = (np.asarray(self.std)[:, None] * inverse).astype(np.float32)
        self._bias = (np.asarray(self.mean) @ inverse).astype(np.float32)
        self._widths = (np.asarray(self.band_widths) * self.mean_square_factor).astype(np.float32)
        self._target = float(10.0 ** (self.target_dbfs / 10.0))

    @classmethod
    def for_settings(cls, settings: Settings, mean, std, **kwargs) -> "MelPower":
        """The layer for windows of these feature settings normalised with ``mean`` and ``std``."""
        return cls(mean, std, mel_band_widths(settings), spectrum_to_mean_square(settings), **kwargs)

    def call(self, inputs):
        ops = keras.ops
        log_power = ops.matmul(inputs, ops.convert_to_tensor(self._kernel)) + ops.convert_to_tensor(self._bias)
        power = ops.exp(ops.minimum(log_power, 80.0))  # no overflow whatever the input
        mean_square = ops.mean(ops.matmul(power, ops.convert_to_tensor(self._widths[:, None])), axis=(1, 2), keepdims=True)
        return power * (self._target / ops.maximum(mean_square, 1e-12))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return super().get_config() | {"mean": self.mean, "std": self.std, "band_widths": self.band_widths,
                                       "mean_square_factor": self.mean_square_factor, "target_dbfs": self.target_dbfs}


def build_ge2e(weights=None) -> keras.Model:
    """The GE2E encoder as a Keras model: mel power windows (batch, frames, 40) -> unit-length embeddings
    (batch, 256), with the shipped weights (``weights``: arrays as :func:`acoustics.encoderfile.read_weights` gives)."""
    weights = read_weights() if weights is None else weights
    inputs = keras.Input(shape=(None, BANDS), name="mel_power")
    x = inputs
    for layer in range(LAYERS):
        x = keras.layers.LSTM(UNITS, return_sequences=layer < LAYERS - 1, name=f"lstm_{layer}")(x)
    x = keras.layers.Dense(UNITS, activation="relu", name="linear")(x)
    outputs = keras.layers.UnitNormalization(name="embedding")(x)
    model = keras.Model(inputs, outputs, name=ENCODER_NAME)
    model.set_weights(weights)
    return model


def build_encoder_network(settings: Settings, normalisation, *, fine_tune: bool = False, weights=None) -> keras.Model:
    """Stage 4's ``encoder`` network: normalised MFCC windows -> :class:`MelPower` -> GE2E (frozen unless
    ``fine_tune``) -> Dropout(0.2) -> Dense(1, sigmoid) ``p_male``. Raises BadParameterError for
    feature settings other than the encoder's."""
    check_settings(settings)
    inputs = keras.Input(shape=(settings.frames, settings.n_mfcc), name="mfcc_window")
    power = MelPower.for_settings(settings, normalisation.mean, normalisation.std, name="mel_power")(inputs)
    ge2e = build_ge2e(weights)
    ge2e.trainable = bool(fine_tune)
    x = keras.layers.Dropout(0.2)(ge2e(power))
    outputs = keras.layers.Dense(1, activation="sigmoid", name="p_male")(x)
    return keras.Model(inputs, outputs, name="encoder")


def nested_encoders(model: keras.Model) -> list:
    """The GE2E encoders inside ``model`` (an ``encoder`` network, or an ensemble holding some)."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found += [layer] if layer.name == ENCODER_NAME else nested_encoders(layer)
    return found


def encoder_digests(model: keras.Model) -> list:
    """:func:`acoustics.encoderfile.weights_digest` of each GE2E encoder inside ``model``."""
    return [weights_digest(encoder.get_weights()) for encoder in nested_encoders(model)]


#: Resemblyzer's partial utterances: 160 frames (1.6 s) every 77 frames (1.3 per 1.6 s); a last partial
#: covering under 75 % of its frames is dropped unless it is the only one.
PARTIAL_FRAMES, PARTIAL_STEP, PARTIAL_COVERAGE = 160, 77, 0.75


def embed_clips(matrices, settings: Settings, ge2e: keras.Model | None = None, *, batch_size: int = 64) -> np.ndarray:
    """Resemblyzer's utterance embeddings (count, 256) of raw (frames, n_mfcc) MFCC ``matrices``: the GE2E
    embeddings of 1.6 s partials (each levelled by :class:`MelPower`) averaged and scaled to unit length.

    This is the published way of using the encoder (a fixed feature extractor; ``bench/accuracy.py``
    fits a logistic regression on it as a baseline), not what the ``encoder`` network does.
    """
    check_settings(settings)
    ge2e = build_ge2e() if ge2e is None else ge2e
    count = settings.n_mfcc
    level = MelPower.for_settings(settings, np.zeros(count), np.ones(count))
    partials, owners = [], []
    for position, matrix in enumerate(matrices):
        matrix = np.asarray(matrix, dtype=np.float32)
        if len(matrix) < PARTIAL_FRAMES:
            matrix = np.tile(matrix, (-(-PARTIAL_FRAMES // len(matrix)), 1))[:PARTIAL_FRAMES]
        starts = list(range(0, len(matrix) - PARTIAL_FRAMES + 1, PARTIAL_STEP))
        tail = len(matrix) - (starts[-1] + PARTIAL_STEP)  # frames a next partial would cover
        if tail >= PARTIAL_COVERAGE * PARTIAL_FRAMES:  # kept, but ending at the last frame instead of padded
            starts.append(len(matrix) - PARTIAL_FRAMES)
        partials += [matrix[start : start + PARTIAL_FRAMES] for start in starts]
        owners += [position] * len(starts)
    embeddings = np.concatenate([ge2e.predict_on_batch(np.asarray(level(np.stack(partials[start : start + batch_size]))))
                                 for start in range(0, len(partials), batch_size)])
    owners = np.asarray(owners)
    sums = np.zeros((len(matrices), embeddings.shape[1]))
    np.add.at(sums, owners, embeddings)
    return sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
