"""The pretrained speaker encoder: the torch-free checkpoint reader, the shipped weights, the Keras network
built on them (its mel power front end against librosa's), and the ``encoder`` network trained and saved."""

from __future__ import annotations

import contextlib
import pickle
import shutil
import struct
import sys
import types
from collections import OrderedDict

import h5py
import numpy as np
import pytest

from acoustics import encoderfile, features, torchfile, training
from acoustics.errors import BadModelError, BadParameterError
from acoustics.recipe import Recipe
from acoustics.settings import Settings
from conftest import one_line, restamp

models = pytest.importorskip("acoustics.models")  # imports TensorFlow
from acoustics import encoder, networks  # noqa: E402


# A legacy checkpoint written without torch -------------------------------------------------------
@contextlib.contextmanager
def fake_torch():
    """Modules named torch and torch._utils, so that pickle writes the globals a real checkpoint names."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    def _rebuild_tensor_v2(*arguments):
        raise AssertionError("only for pickling")

    FloatStorage.__module__, _rebuild_tensor_v2.__module__ = "torch", "torch._utils"
    FloatStorage.__qualname__, _rebuild_tensor_v2.__qualname__ = "FloatStorage", "_rebuild_tensor_v2"
    torch.FloatStorage, torch._utils, utils._rebuild_tensor_v2 = FloatStorage, utils, _rebuild_tensor_v2
    saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
    sys.modules.update({"torch": torch, "torch._utils": utils})
    try:
        yield torch
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


class _Tensor:
    def __init__(self, key, array, offset=0, shape=None, stride=None):
        self.key, self.array = key, array
        self.offset, self.shape, self.stride = offset, shape or array.shape, stride or tuple(s // 4 for s in array.strides)


def write_checkpoint(path, state: dict, *, extra: bytes = b"", cut: int = 0) -> None:
    """``state`` ({name: float32 array or (array, offset, shape, stride)}) in torch's legacy format."""
    with fake_torch() as torch:
        tensors = {}
        for key, (name, value) in enumerate(state.items()):
            tensors[name] = _Tensor(str(key), *value) if isinstance(value, tuple) else _Tensor(str(key), value)

        class Pickler(pickle.Pickler):
            def persistent_id(self, obj):
                if isinstance(obj, _Storage):
                    return ("storage", torch.FloatStorage, obj.tensor.key, "cpu", obj.tensor.array.size, None)
                return None

        class _Storage:
            def __init__(self, tensor):
                self.tensor = tensor

        def reduce(tensor):
            return (torch._utils._rebuild_tensor_v2,
                    (_Storage(tensor), tensor.offset, tuple(tensor.shape), tuple(tensor.stride), False, OrderedDict()))

        import copyreg
        import io

        stream = io.BytesIO()
        for header in (torchfile.MAGIC_NUMBER, torchfile.PROTOCOL_VERSION, {"little_endian": True}):
            pickle.dump(header, stream, protocol=2)
        pickler = Pickler(stream, protocol=2)
        pickler.dispatch_table = copyreg.dispatch_table.copy()
        pickler.dispatch_table[_Tensor] = reduce
        pickler.dump({"model_state": OrderedDict(tensors)})
        pickle.dump([tensor.key for tensor in tensors.values()], stream, protocol=2)
        for tensor in tensors.values():
            flat = np.ascontiguousarray(tensor.array, dtype="<f4").ravel()
            stream.write(struct.pack("<q", flat.size) + flat.tobytes())
    data = stream.getvalue() + extra
    path.write_bytes(data[: len(data) - cut])


def test_checkpoint_reader_gives_back_every_tensor_with_its_strides(tmp_path):
    rng = np.random.default_rng(0)
    matrix, vector = rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    transposed = (matrix, 0, (3, 4), (1, 3))  # a view of the same storage layout: the transpose
    write_checkpoint(tmp_path / "weights.pt", {"matrix": matrix, "vector": vector, "transposed": transposed,
                                               "tail": (vector, 2, (3,), (1,))})
    state = torchfile.read_checkpoint(tmp_path / "weights.pt")["model_state"]
    np.testing.assert_array_equal(state["matrix"], matrix)
    np.testing.assert_array_equal(state["vector"], vector)
    np.testing.assert_array_equal(state["transposed"], matrix.T)
    np.testing.assert_array_equal(state["tail"], vector[2:])


class Hostile:
    def __reduce__(self):
        import os

        return (os.system, ("touch HOSTILE_RAN",))


@pytest.mark.parametrize("case", ["code", "cut", "zip", "empty", "past_the_end"])
def test_checkpoint_reader_refuses_code_and_damage_in_one_line(tmp_path, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "weights.pt"
    if case == "code":
        path.write_bytes(b"".join(pickle.dumps(item, protocol=2) for item in
                                  (torchfile.MAGIC_NUMBER, torchfile.PROTOCOL_VERSION, {"little_endian": True}, Hostile())))
    elif case == "cut":
        write_checkpoint(path, {"matrix": np.ones((30, 30), np.float32)}, cut=100)
    elif case == "zip":
        shutil.make_archive(str(tmp_path / "weights"), "zip", tmp_path)
        path = tmp_path / "weights.zip"
    elif case == "empty":
        path.write_bytes(b"")
    else:
        write_checkpoint(path, {"too_long": (np.ones(4, np.float32), 2, (4,), (1,))})
    with pytest.raises(torchfile.BadCheckpointError) as caught:
        torchfile.read_checkpoint(path)
    assert one_line(caught.value).startswith(f"{path}: not a PyTorch checkpoint")
    assert not (tmp_path / "HOSTILE_RAN").exists()


def fake_ge2e_state(rng) -> dict:
    state = {}
    for layer in range(3):
        inputs = 40 if layer == 0 else 256
        state |= {f"lstm.weight_ih_l{layer}": rng.standard_normal((1024, inputs)).astype(np.float32) * 0.1,
                  f"lstm.weight_hh_l{layer}": rng.standard_normal((1024, 256)).astype(np.float32) * 0.1,
                  f"lstm.bias_ih_l{layer}": rng.standard_normal(1024).astype(np.float32) * 0.1,
                  f"lstm.bias_hh_l{layer}": rng.standard_normal(1024).astype(np.float32) * 0.1}
    return state | {"linear.weight": rng.standard_normal((256, 256)).astype(np.float32) * 0.1,
                    "linear.bias": rng.standard_normal(256).astype(np.float32) * 0.1}


def numpy_ge2e(arrays, mel_power: np.ndarray) -> np.ndarray:
    """The GE2E forward pass written out in numpy (torch's LSTM equations), for one window."""
    sigmoid = lambda value: 1 / (1 + np.exp(-value))  # noqa: E731
    sequence = mel_power.astype(np.float64)
    for layer in range(3):
        kernel, recurrent, bias = arrays[3 * layer : 3 * layer + 3]
        hidden, cell, outputs = np.zeros(256), np.zeros(256), []
        for frame in sequence:
            i, f, g, o = np.split(frame @ kernel + hidden @ recurrent + bias, 4)
            cell = sigmoid(f) * cell + sigmoid(i) * np.tanh(g)
            hidden = sigmoid(o) * np.tanh(cell)
            outputs.append(hidden)
        sequence = np.array(outputs)
    embedding = np.maximum(sequence[-1] @ arrays[9] + arrays[10], 0)
    return embedding / np.linalg.norm(embedding)


def test_conversion_maps_torch_weights_to_keras_and_agrees_with_a_numpy_forward_pass(tmp_path):
    state = fake_ge2e_state(np.random.default_rng(1))
    write_checkpoint(tmp_path / "pretrained.pt", state)
    digest = encoderfile.convert(tmp_path / "pretrained.pt", tmp_path / "ge2e.h5")
    with h5py.File(tmp_path / "ge2e.h5", "r") as handle:
        arrays = [np.asarray(handle[name]) for name in encoderfile.weight_names()]
        assert handle.attrs["weights_sha256"] == digest and handle.attrs["licence"].startswith("Apache-2.0")
    np.testing.assert_array_equal(arrays[0], state["lstm.weight_ih_l0"].T)
    np.testing.assert_array_equal(arrays[2], state["lstm.bias_ih_l0"] + state["lstm.bias_hh_l0"])
    window = np.random.default_rng(2).random((30, 40)).astype(np.float32)
    keras_embedding = np.asarray(encoder.build_ge2e(arrays)(window[None]))[0]
    np.testing.assert_allclose(keras_embedding, numpy_ge2e(arrays, window), atol=2e-5)


# The shipped weights -----------------------------------------------------------------------------
def test_the_shipped_encoder_is_in_the_repository_with_its_licence_and_checks_out():
    arrays = encoderfile.read_weights()
    assert [array.shape for array in arrays][:3] == [(40, 1024), (256, 1024), (1024,)]
    assert sum(array.size for array in arrays) == 1_420_544
    folder = encoderfile.ENCODER_FILE.parent
    assert "Apache License" in (folder / "LICENSE").read_text() and "Resemblyzer" in (folder / "README.md").read_text()
    with h5py.File(encoderfile.ENCODER_FILE, "r") as handle:
        assert handle.attrs["file_sha256"] == encoderfile.SOURCE["file_sha256"]


@pytest.mark.parametrize("damage", ["missing", "cut", "changed", "foreign"])
def test_a_damaged_encoder_file_is_refused_in_one_line_naming_it_and_the_fix(tmp_path, damage):
    path = tmp_path / "ge2e.h5"
    if damage == "cut":
        path.write_bytes(encoderfile.ENCODER_FILE.read_bytes()[:1_000_000])
    elif damage == "changed":
        shutil.copyfile(encoderfile.ENCODER_FILE, path)
        with h5py.File(path, "a") as handle:
            handle["linear/bias"][0] += 0.01
    elif damage == "foreign":
        path.write_text("not weights")
    with pytest.raises(BadModelError) as caught:
        encoderfile.read_weights(path)
    assert one_line(caught.value).startswith(f"{path}: the pretrained speaker encoder")
    assert "make encoder" in str(caught.value) and "git checkout models/encoder" in str(caught.value)


def test_other_feature_settings_are_refused_in_one_line():
    with pytest.raises(BadParameterError) as caught:
        encoderfile.check_settings(Settings(n_mels=64, n_mfcc=64))
    assert "n_mels 64 (needs 40)" in one_line(caught.value) and "n_mfcc 64 (needs 40)" in str(caught.value)


# The front end -----------------------------------------------------------------------------------
def test_mel_power_from_stored_coefficients_is_librosas_at_minus_30_dbfs(spoken_clips):
    """MelPower gives back from normalised MFCCs the mel power the encoder was trained on: librosa's mel
    spectrogram of the waveform scaled to -30 dBFS (frames not centred, as the MFCCs)."""
    import librosa

    from acoustics import audio

    settings = Settings()
    signal, _ = audio.load_audio(spoken_clips["female"], settings.sample_rate)
    signal = audio.trim_silence(signal, settings.trim_top_db)[: settings.frames * settings.hop_length + settings.n_fft]
    matrix = features.mfcc(signal * 0.05, settings)[: settings.frames]  # any level: the layer levels it
    normalisation = training.matrix_statistics([matrix], settings)
    layer = encoder.MelPower.for_settings(settings, normalisation.mean, normalisation.std)
    power = np.asarray(layer(normalisation.apply(matrix)[None]))[0]
    scaled = signal / np.sqrt(np.mean(signal**2)) * 10 ** (-30 / 20)
    expected = librosa.feature.melspectrogram(y=scaled, sr=16000, n_fft=400, hop_length=160, n_mels=40, center=False).T
    expected = expected[: len(power)]
    level = 10 * np.log10(power.sum() / expected.sum())
    assert abs(level) < 0.5  # the level read from the mel bands is the waveform's
    loud = expected > expected.max() * 1e-4
    np.testing.assert_allclose(10 * np.log10(power[loud] / expected[loud]), level, atol=0.05)


# The encoder network -----------------------------------------------------------------------------
def test_the_encoder_network_reads_mfcc_windows_and_trains_only_its_head():
    settings = Settings()
    normalisation = training.Normalisation(np.zeros(40), np.ones(40))
    model = networks.build_model("encoder", settings, seed=1, normalisation=normalisation)
    assert model.input_shape == (None, settings.frames, 40) and model.output_shape == (None, 1)
    assert sum(weight.shape.num_elements() if hasattr(weight.shape, "num_elements") else int(np.prod(weight.shape))
               for weight in model.trainable_weights) == 257
    assert encoder.encoder_digests(model) == [encoderfile.WEIGHTS_SHA256]
    with pytest.raises(ValueError, match="needs the normalisation"):
        networks.build_model("encoder", settings, seed=1)


@pytest.fixture(scope="module")
def encoder_model(model_database, tmp_path_factory):
    """The encoder network trained one epoch on the espeak-ng test database, saved: (path, model, database)."""
    from acoustics import trainer
    from acoustics.database import FeatureDatabase

    folder = tmp_path_factory.mktemp("encoder")
    database_path = folder / "features.db"
    shutil.copyfile(model_database, database_path)
    recipe = Recipe(encoder_epochs=1)
    with FeatureDatabase(database_path) as database:
        split = trainer.load_split(database, recipe, database.settings.seed)
        model, fit = trainer.train("encoder", split, recipe, database.settings.seed, verbose=0)
        scores = trainer.score_and_save("encoder", model, fit, split, recipe, database, folder / "encoder.h5",
                                        seed=database.settings.seed)
    return {"path": folder / "encoder.h5", "model": model, "fit": fit, "scores": scores, "split": split}


def test_training_keeps_the_pretrained_encoder_and_saves_where_it_comes_from(encoder_model):
    assert encoder_model["fit"]["epochs"] == 1 and np.isfinite(encoder_model["fit"]["history"]["loss"]).all()
    model, metadata = models.load_model(encoder_model["path"])
    assert encoder.encoder_digests(model) == [encoderfile.WEIGHTS_SHA256]  # frozen: the shipped encoder
    heard = metadata["provenance"]["encoder"]
    assert heard["weights_sha256"] == [encoderfile.WEIGHTS_SHA256] and heard["fine_tuned"] is False
    assert heard["file_sha256"] == encoderfile.SOURCE["file_sha256"] and "VoxCeleb" in heard["trained_on"]
    windows = np.random.default_rng(0).standard_normal((4, Settings().frames, 40)).astype(np.float32)
    np.testing.assert_allclose(model.predict_on_batch(windows), encoder_model["model"].predict_on_batch(windows), atol=1e-6)
    from acoustics.verdict import describe_provenance

    assert describe_provenance(metadata).endswith("on top of a speaker encoder pretrained on thousands of voices (GE2E, Resemblyzer)")


@pytest.mark.parametrize("change", ["weights", "shipped"])
def test_a_model_whose_encoder_was_changed_is_refused_in_one_line(encoder_model, tmp_path, change):
    """Weights changed inside the file are refused; so is a frozen encoder that is not the shipped one,
    even when the file's record was changed to match."""
    import json

    path = tmp_path / "encoder.h5"
    shutil.copyfile(encoder_model["path"], path)
    with h5py.File(path, "a") as handle:
        names = []
        handle["model_weights"].visit(names.append)
        bias = next(name for name in names if name.endswith("linear/bias:0") or (name.endswith("bias") and "linear" in name))
        handle["model_weights"][bias][0] += 0.5
        if change == "shipped":
            provenance = json.loads(handle.attrs["acoustics_provenance"])
            model = encoder_model["model"]
            arrays = encoder.nested_encoders(model)[0].get_weights()
            arrays[-1] = arrays[-1].copy()
            arrays[-1][0] += 0.5
            provenance["encoder"]["weights_sha256"] = [encoderfile.weights_digest(arrays)]
            handle.attrs["acoustics_provenance"] = json.dumps(provenance)
    if change == "shipped":  # a file made consistent again, checksum and all
        restamp(path)
    with pytest.raises(BadModelError) as caught:
        models.load_model(path)
    words = "changed after it was saved" if change == "weights" else "differs from the shipped one"
    assert one_line(caught.value).startswith(f"{path}: ") and words in str(caught.value)


def test_utterance_embeddings_are_unit_length_and_tell_voices_apart(spoken_clips):
    from acoustics import audio

    settings = Settings()
    matrices = [features.mfcc(audio.trim_silence(audio.load_audio(spoken_clips[sex], 16000)[0], 30.0), settings)
                for sex in ("male", "female")]
    embeddings = encoder.embed_clips(matrices + [matrices[0] * 1.0], settings)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert embeddings[0] @ embeddings[2] == pytest.approx(1.0, abs=1e-5) and embeddings[0] @ embeddings[1] < 0.95


# Stage 5 with the reference model, which is the encoder network ---------------------------------
def test_stage5_segments_and_compares_with_the_encoder_reference_model(emodb_dir, encoder_model, tmp_path):
    """A fresh clone (no data/): --segments of a man, a pause and a woman of EmoDB answers with the shipped
    encoder network; --compare puts it beside the encoder network trained here."""
    import re

    import soundfile

    from acoustics import audio
    from acoustics.verdict import REFERENCE_MODEL
    from conftest import run_stage

    man, _ = audio.load_audio(emodb_dir / "wav" / "03a01Fa.wav", 16000)
    woman, _ = audio.load_audio(emodb_dir / "wav" / "08a01Fd.wav", 16000)
    conversation = tmp_path / "conversation.wav"
    soundfile.write(conversation, np.concatenate([man, np.zeros(16000, np.float32), woman]), 16000, subtype="PCM_16")
    environment = {"ACOUSTICS_DATA": str(tmp_path / "data")}
    done = run_stage("implement_model.py", "--segments", conversation, cwd=tmp_path, env=environment, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"Answering: the reference model ({REFERENCE_MODEL}), trained on ")
    assert "on top of a speaker encoder pretrained on thousands of voices" in done.stdout.splitlines()[0]
    labels = re.findall(r"^ +\d+\.\d{3} +\d+\.\d{3}  (male|female) ", done.stdout, re.M)
    assert labels and labels[0] == "male" and labels[-1] == "female", done.stdout
    done = run_stage("implement_model.py", emodb_dir / "wav" / "03a01Fa.wav", emodb_dir / "wav" / "08a01Fd.wav",
                     "--compare", encoder_model["path"], cwd=tmp_path, env=environment, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    header = next(line for line in done.stdout.splitlines() if line.startswith("file"))
    assert f"reference ({REFERENCE_MODEL})" in header, done.stdout
    assert f"encoder ({encoder_model['path']})" in header, done.stdout


def test_fine_tuning_trains_the_encoder_too_and_is_recorded(spoken_clips, tmp_path):
    """``fine_tune_epochs``: after the head, the whole network trains; the saved model says its encoder was
    fine-tuned, and loads although its encoder is no longer the shipped one."""
    from acoustics import audio, trainer

    settings = Settings()
    matrices, labels = [], []
    for sex in ("male", "female"):
        signal = audio.trim_silence(audio.load_audio(spoken_clips[sex], 16000)[0], 30.0)
        for gain in (0.5, 1.0):
            matrices.append(features.mfcc(signal * gain, settings))
            labels.append(int(sex == "male"))
    recipe = Recipe(encoder_epochs=1, fine_tune_epochs=1, batch_size=4)
    model, normalisation, fit = trainer.train_in_memory("encoder", matrices, np.array(labels), np.arange(4), settings,
                                                        recipe, seed=1)
    assert fit["epochs"] == 2 and len(fit["history"]["loss"]) == 2
    assert encoder.encoder_digests(model) != [encoderfile.WEIGHTS_SHA256]
    path = models.save_model(model, tmp_path / "tuned.h5", {"model_name": "encoder", "settings": settings,
                                                             "normalisation": normalisation, "recipe": recipe})
    again, metadata = models.load_model(path)
    assert metadata["provenance"]["encoder"]["fine_tuned"] is True
    assert encoder.encoder_digests(again) == encoder.encoder_digests(model)


@pytest.mark.parametrize("model, recipe, settings, outcome", [
    ("all", Recipe(), Settings(), "kept"),
    ("all", Recipe(), Settings(n_mels=64, n_mfcc=64), "left out"),
    ("encoder", Recipe(networks=("encoder",)), Settings(n_mels=64, n_mfcc=64), "refused"),
    ("ensemble", Recipe(ensemble_network="encoder+cnn"), Settings(hop_ms=20.0, window_ms=40.0), "refused"),
    ("cnn", Recipe(networks=("cnn",)), Settings(n_mels=64, n_mfcc=64), "kept"),
])
def test_stage4_leaves_out_or_refuses_an_encoder_that_cannot_hear_the_features(model, recipe, settings, outcome, capsys):
    """Before any training: --model all goes on without the encoder (saying why); asked for by name or in the
    ensemble, it is refused in one line."""
    import train_models

    if outcome == "refused":
        with pytest.raises(BadParameterError) as caught:
            train_models.without_unusable_encoder(recipe, settings, model)
        one_line(caught.value, "The encoder network")
        return
    kept = train_models.without_unusable_encoder(recipe, settings, model)
    assert ("encoder" in kept.networks) == ("encoder" in recipe.networks and outcome == "kept")
    assert ("Leaving the encoder network out." in capsys.readouterr().out) == (outcome == "left out")
