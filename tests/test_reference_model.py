"""The reference model shipped in models/reference.h5: made with today's feature settings and recipe,
trained on real voices, and ready to answer on a fresh clone without training."""

from __future__ import annotations

import os

import numpy as np

from acoustics.encoderfile import WEIGHTS_SHA256
from acoustics.modelfile import read_metadata
from acoustics.recipe import Recipe
from acoustics.settings import Settings
from acoustics.verdict import REFERENCE_MODEL
from conftest import ROOT, run_stage

REAL_CORPORA = ("emodb", "librispeech", "ravdess", "speechocean762")


def test_it_is_in_the_repository_and_small():
    assert REFERENCE_MODEL == ROOT / "models" / "reference.h5" and REFERENCE_MODEL.is_file()
    assert REFERENCE_MODEL.stat().st_size < 8 * 1024**2  # the pretrained encoder is most of it


def test_its_settings_and_recipe_are_todays_defaults():
    """When the feature settings or the recipe change, retrain it ('make reference') and commit it."""
    metadata = read_metadata(REFERENCE_MODEL)
    assert metadata["settings"] == Settings(), "models/reference.h5 has other feature settings: run 'make reference'"
    recipe = metadata["recipe"]  # the default recipe, stage 4 asked for the encoder network alone (make reference)
    assert recipe.networks == ("encoder",), "models/reference.h5 is not the encoder network: run 'make reference'"
    assert recipe.replace(networks=Recipe().networks) == Recipe(), "models/reference.h5 was trained with another recipe: run 'make reference'"
    assert 0.05 <= metadata["temperature"] <= 50 and metadata["model_name"] == "encoder"


def test_it_says_what_it_heard():
    heard = read_metadata(REFERENCE_MODEL)["provenance"]
    assert set(REAL_CORPORA) | {"demo"} <= set(heard["corpora"])
    for corpus in REAL_CORPORA:
        assert heard["corpora"][corpus]["female_speakers"] >= 4 and heard["corpora"][corpus]["male_speakers"] >= 4
        assert not heard["corpora"][corpus]["synthetic"]
    assert heard["corpora"]["demo"]["synthetic"] and heard["real_speakers"] >= 250
    assert heard["commit"] and heard["date"] and "accuracy" in heard.get("bench", {})
    assert heard["encoder"]["weights_sha256"] == [WEIGHTS_SHA256] and not heard["encoder"]["fine_tuned"]


def test_check_prints_its_provenance():
    done = run_stage("train_models.py", "--check", REFERENCE_MODEL, "--db", ROOT / "no-such-database.db", timeout=120)
    assert done.returncode == 0, done.stderr
    assert "It heard: trained on" in done.stdout and "librispeech" in done.stdout and "Recipe:" in done.stdout
    assert "on top of a speaker encoder pretrained on thousands of voices" in done.stdout


def test_a_fresh_clone_classifies_real_voices_with_it(emodb_dir, tmp_path):
    """No data/ folder, no training: stage 5 answers with the reference model and says so."""
    clips = [emodb_dir / "wav" / name for name in ("03a01Fa.wav", "10a01Nb.wav", "08a01Fd.wav", "16a01Lb.wav")]
    done = run_stage("implement_model.py", *clips, cwd=tmp_path, env={"ACOUSTICS_DATA": str(tmp_path / "data")}, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"Answering: the reference model ({REFERENCE_MODEL}), trained on ")
    verdicts = [line.split(": ", 1)[1] for line in lines if line.startswith(str(emodb_dir))]
    assert [verdict.split(" ")[0] for verdict in verdicts] == ["male", "male", "female", "female"], done.stdout
    assert not (tmp_path / "data").exists() and not os.listdir(tmp_path)


def test_work_in_large_batches_predicts_through_xla_as_the_plain_path_does(emodb_dir):
    """Many files and --segments load the model with ``xla=True``: its predictions go through XLA (in a fresh
    process: Keras refuses XLA once a training has made TensorFlow's ops deterministic) and give the plain
    path's P(male) on real speech, clip by clip and window by window. Live, the loader keeps TensorFlow
    to one thread within an operation."""
    import json
    import subprocess
    import sys

    clips = [str(path) for path in sorted((emodb_dir / "wav").glob("*.wav"))[:40]]
    code = f"""
import json
import numpy as np
import tensorflow
from acoustics import fileverdicts, models, verdict
plain = verdict.ModelLoader(verdict.REFERENCE_MODEL, threads=1).get()[0]  # as stage 5 live loads it
fast, metadata = verdict.ModelLoader(verdict.REFERENCE_MODEL, xla=True).get()  # as stage 5 given files does
threads = tensorflow.config.threading.get_intra_op_parallelism_threads()
items = [fileverdicts.prepare_file(metadata, path) for path in {clips!r}]
p = [[v.probability_male for v in verdict.classify_prepared(model, metadata, items)] for model in (fast, plain)]
width = metadata["settings"].frames
long = [item.matrix for item in items if len(getattr(item, "matrix", ())) > width][:8]
windows = np.concatenate([metadata["normalisation"].apply(np.stack([matrix[:width], matrix[-width:]])) for matrix in long])
w = [models.predict_windows(model, windows).tolist() for model in (fast, plain)]
print(json.dumps({{"xla": [fast.jit_compile, plain.jit_compile], "threads": threads, "clips": p, "windows": w}}))
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2"), stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["xla"] == [True, False] and result["threads"] == 1
    fast, plain = (np.array(values, dtype=float) for values in result["clips"])
    assert len(fast) == 40 and np.isfinite(fast).all()
    np.testing.assert_allclose(fast, plain, atol=1e-5)
    assert len(result["windows"][0]) == 16
    np.testing.assert_allclose(*result["windows"], atol=1e-5)
