"""What every stage script shares: --help written for an attendee, pictures named after their database,
and the next command with the options the person gave."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
from conftest import run_stage

from acoustics.settings import Paths, command_line

STAGES = ("set_up_sql.py", "collect_background_noise.py", "speech_prep.py", "train_models.py", "implement_model.py")
#: Words of the code, not of the workshop: module names, libraries, constants.
JARGON = re.compile(r"(?i:h5py|keras|tensorflow|numpy|\b(acoustics|models|training|verdict|audio)\.(?!py\b)\w)|[A-Z]{3,}_[A-Z]+")


@pytest.mark.parametrize("script", STAGES)
def test_help_explains_with_examples_and_without_jargon(script):
    done = run_stage(script, "--help", timeout=60)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    examples = text.split("\nexamples:\n", 1)[1].splitlines() if "\nexamples:\n" in text else []
    assert 2 <= sum(line.strip().startswith(f"python {script}") for line in examples) <= 4, text
    found = JARGON.search(text)
    assert not found, found and found.group(0)


@pytest.mark.parametrize("script, name", [("collect_background_noise", "background_noise"), ("speech_prep", "speech_prep")])
def test_pictures_are_named_after_their_database(script, name, monkeypatch, tmp_path):
    monkeypatch.setenv("ACOUSTICS_DATA", str(tmp_path))
    stage = importlib.import_module(script)
    assert stage.parse_arguments([]).picture == str(tmp_path / "pictures" / f"{name}.png")
    assert stage.parse_arguments(["--db", str(tmp_path / "features.db")]).picture == str(tmp_path / "pictures" / f"{name}.png")
    assert (stage.parse_arguments(["--db", "elsewhere/reference.db"]).picture
            == str(tmp_path / "pictures" / f"reference_{name}.png"))
    assert stage.parse_arguments(["--db", "x.db", "--picture", "p.png"]).picture == "p.png"


def test_picture_paths():
    paths = Paths(Path("data"))
    assert str(paths.picture("speech_prep")) == "data/pictures/speech_prep.png"
    assert str(paths.picture("speech_prep", "data/features.db")) == "data/pictures/speech_prep.png"
    assert str(paths.picture("speech_prep", "data/reference.db")) == "data/pictures/reference_speech_prep.png"


def test_command_line_repeats_what_differs_from_the_defaults():
    assert command_line("train_models.py", ("--db", "data/features.db", Paths(Path("data")).database)) == "python train_models.py"
    assert command_line("speech_prep.py", ("--db", "my data/x.db", "data/features.db"), ("--manifest", ["a.csv", "b.csv"], None),
                        ("--demo", True, None), ("--svd", None, "data")) == \
        "python speech_prep.py --db 'my data/x.db' --manifest a.csv --manifest b.csv --demo"
    assert command_line("speech_prep.py", ("--demo", False, None), ("--manifest", [], None)) == "python speech_prep.py"


def test_speech_prep_says_how_to_continue_with_its_corpus_options():
    import speech_prep

    arguments = speech_prep.parse_arguments(["--db", "data/reference.db", "--demo", "--manifest", "emodb.csv", "--limit", "3"])
    assert speech_prep.same_command(arguments) == "python speech_prep.py --db data/reference.db --manifest emodb.csv --demo"
