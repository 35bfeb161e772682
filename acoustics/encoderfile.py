"""The pretrained speaker encoder's weights: converted from the Resemblyzer wheel, shipped, checked.

The encoder is GE2E (Wan et al., "Generalized end-to-end loss for speaker verification", ICASSP 2018)
as trained and released by Resemblyzer 0.1.4 (Apache-2.0; ``resemblyzer/pretrained.pt`` inside its
PyPI wheel): three LSTM layers of 256 units over 40 mel bands, a 256-unit linear layer with ReLU, and
L2 normalisation. ``models/encoder/ge2e.h5`` holds its weights in Keras's layout (an LSTM's
``kernel`` is torch's ``weight_ih`` transposed, ``recurrent_kernel`` its ``weight_hh`` transposed,
``bias`` the sum of its two biases; torch's gate order i, f, g, o is Keras's i, f, c, o) with their
provenance as HDF5 attributes. ``make encoder`` writes that file again from the wheel
(:func:`convert`, torch-free); stage 4 and stage 5 read it through :func:`read_weights`, which checks
the arrays against :data:`WEIGHTS_SHA256` so that a damaged or changed file is refused in one line.

Nothing here imports Keras; :mod:`acoustics.encoder` builds the network from these arrays.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from .errors import BadModelError, BadParameterError

ENCODER_FILE = Path(__file__).resolve().parents[1] / "models" / "encoder" / "ge2e.h5"
RESTORE = "restore it with 'git checkout models/encoder' or write it again with 'make encoder'"
LAYERS, UNITS, BANDS = 3, 256, 40
#: The weights in the order :func:`weight_names` lists them, as :func:`weights_digest` hashes them.
WEIGHTS_SHA256 = "c0a1a384efc3aa301ac8403806f16d4c0c46cdb281f1bf6e1fb4621a3a813a22"
#: Where the weights come from, stored with them and with every model that holds them.
SOURCE = {
    "network": "GE2E speaker encoder (Wan, Wang, Papir and Lopez Moreno, ICASSP 2018)",
    "package": "Resemblyzer 0.1.4 (PyPI wheel Resemblyzer-0.1.4-py3-none-any.whl), by Corentin Jemine / Resemble AI",
    "file": "resemblyzer/pretrained.pt",
    "file_sha256": "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e",
    "licence": "Apache-2.0 (models/encoder/LICENSE)",
    "trained_on": ("thousands of speakers: VoxCeleb2 by Resemblyzer's README; its authors' answers in the "
                   "project's issues also name VoxCeleb1 and LibriSpeech train-other (they state it inconsistently)"),
}
#: The feature settings the encoder was trained with: 16 kHz, 25 ms windows, 10 ms hop, 40 Slaney mel
#: bands from 0 to 8 kHz. The encoder network needs all 40 coefficients to recover the mel power.
REQUIRED_SETTINGS = {"sample_rate": 16000, "n_mels": BANDS, "n_mfcc": BANDS, "window_ms": 25.0, "hop_ms": 10.0,
                     "fmin": 0.0, "fmax": 8000.0}


def weight_names() -> list:
    """The names of the arrays in ``ge2e.h5``, in the order the Keras encoder takes them."""
    names = []
    for layer in range(LAYERS):
        names += [f"lstm_{layer}/kernel", f"lstm_{layer}/recurrent_kernel", f"lstm_{layer}/bias"]
    return names + ["linear/kernel", "linear/bias"]


def weights_digest(arrays) -> str:
    """sha256 of float32 ``arrays`` (shapes and little-endian bytes, in order): what :data:`WEIGHTS_SHA256` holds."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array, dtype="<f4")
        digest.update(json.dumps(list(array.shape)).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def check_settings(settings) -> None:
    """Raise :class:`BadParameterError` unless ``settings`` are the encoder's front end's (:data:`REQUIRED_SETTINGS`)."""
    wrong = [f"{name} {getattr(settings, name):g} (needs {value:g})" for name, value in REQUIRED_SETTINGS.items()
             if getattr(settings, name) != value]
    if wrong:
        raise BadParameterError(
            "The encoder network hears 40 mel bands of 25 ms every 10 ms at 16 kHz, as it was pretrained; these "
            f"feature settings differ: {', '.join(wrong)}. Leave the encoder out (--model cnn) or build the "
            "database with the default settings ('python set_up_sql.py --reset').")


def convert(checkpoint, out=ENCODER_FILE) -> str:
    """Write the encoder's weights from Resemblyzer's ``pretrained.pt`` (``checkpoint``) to ``out`` in
    Keras's layout, with :data:`SOURCE` as attributes; return their :func:`weights_digest`. The
    checkpoint is read by :func:`acoustics.torchfile.read_checkpoint`, which runs no code from it."""
    import h5py

    from .outputs import replaced_atomically
    from .torchfile import BadCheckpointError, read_checkpoint

    checkpoint = Path(checkpoint)
    if checkpoint.suffix == ".whl":  # the wheel itself: its pretrained.pt, read from the zip into a temporary file
        return _convert_from_wheel(checkpoint, Path(out))
    file_sha256 = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    state = read_checkpoint(checkpoint)
    state = state.get("model_state") if isinstance(state, dict) else None
    try:
        arrays = []
        for layer in range(LAYERS):
            arrays += [state[f"lstm.weight_ih_l{layer}"].T, state[f"lstm.weight_hh_l{layer}"].T,
                       state[f"lstm.bias_ih_l{layer}"] + state[f"lstm.bias_hh_l{layer}"]]
        arrays += [state["linear.weight"].T, state["linear.bias"]]
    except (KeyError, TypeError, AttributeError):
        raise BadCheckpointError(f"{checkpoint}: holds no GE2E encoder (lstm.* and linear.* weights).") from None
    expected = [(BANDS if layer == 0 else UNITS, 4 * UNITS) for layer in range(LAYERS)]
    shapes = [array.shape for array in arrays]
    wanted = sum(([inputs, (UNITS, 4 * UNITS), (4 * UNITS,)] for inputs in expected), []) + [(UNITS, UNITS), (UNITS,)]
    if shapes != wanted:
        raise BadCheckpointError(f"{checkpoint}: its encoder has other shapes than GE2E's ({shapes}).")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    digest = weights_digest(arrays)
    with replaced_atomically(out) as temporary:
        with h5py.File(temporary, "w", track_order=True) as handle:
            for name, array in zip(weight_names(), arrays):
                handle.create_dataset(name, data=np.ascontiguousarray(array, dtype="<f4"), track_times=False)
            source = SOURCE | {"file_sha256": file_sha256, "weights_sha256": digest}
            for key, value in source.items():
                handle.attrs[key] = value
    return digest


def _convert_from_wheel(wheel: Path, out: Path) -> str:
    """:func:`convert` of the ``pretrained.pt`` inside Resemblyzer's wheel ``wheel``."""
    import tempfile
    import zipfile

    from .torchfile import BadCheckpointError

    try:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(SOURCE["file"])
    except (OSError, KeyError, zipfile.BadZipFile) as error:
        raise BadCheckpointError(f"{wheel}: not a Resemblyzer wheel holding {SOURCE['file']} ({error}).") from None
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = Path(folder) / "pretrained.pt"
        checkpoint.write_bytes(data)
        return convert(checkpoint, out)


def read_weights(path=ENCODER_FILE) -> list:
    """The encoder's arrays from ``path`` in :func:`weight_names`' order, checked against :data:`WEIGHTS_SHA256`.

    Raises :class:`BadModelError` naming the file and how to restore it when it is missing, damaged,
    cut short or changed.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise BadModelError(f"{path}: the pretrained speaker encoder is missing; {RESTORE}.")
    try:
        with h5py.File(path, "r") as handle:
            arrays = [np.asarray(handle[name], dtype=np.float32) for name in weight_names()]
    except (OSError, KeyError, ValueError, TypeError, RuntimeError):
        raise BadModelError(f"{path}: the pretrained speaker encoder is damaged or cut short; {RESTORE}.") from None
    if weights_digest(arrays) != WEIGHTS_SHA256:
        raise BadModelError(f"{path}: the pretrained speaker encoder's weights are not the shipped ones (changed or "
                            f"damaged); {RESTORE}.")
    return arrays


def main(argv=None) -> int:
    """``python -m acoustics.encoderfile WHEEL_OR_PT [OUT]``: what ``make encoder`` runs (on the wheel)."""
    import sys

    from .errors import AcousticsError

    arguments = list(sys.argv[1:] if argv is None else argv)
    if not 1 <= len(arguments) <= 2:
        print("usage: python -m acoustics.encoderfile Resemblyzer-0.1.4-py3-none-any.whl|pretrained.pt [OUT.h5]",
              file=sys.stderr)
        return 2
    out = Path(arguments[1]) if len(arguments) == 2 else ENCODER_FILE
    try:
        digest = convert(arguments[0], out)
    except (AcousticsError, OSError) as error:
        print(error, file=sys.stderr)
        return 1
    same = "the same weights as shipped" if digest == WEIGHTS_SHA256 else f"NOT the shipped weights ({WEIGHTS_SHA256})"
    print(f"Wrote {out}: the GE2E speaker encoder's weights (sha256 of the arrays {digest}; {same}).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
