"""acoustics.recipe: the one object of training parameters, its checks and its JSON form."""

from __future__ import annotations

import json

import pytest

from acoustics.errors import BadParameterError
from acoustics.recipe import Recipe


def test_json_round_trip_keeps_every_field():
    recipe = Recipe(epochs=3, networks=("cnn",), noise_snr_db=(0.0, 10.0), calibrate=False)
    again = Recipe.from_json(recipe.to_json())
    assert again == recipe and isinstance(again.networks, tuple) and isinstance(again.noise_snr_db, tuple)


def test_overrides_from_the_command_line():
    recipe = Recipe().with_overrides(["epochs=20", "networks=[\"cnn\", \"lstm\"]", "calibrate=false", "ensemble-network=lstm",
                                      "noise_snr_db=[-10, 5]"])
    assert recipe.epochs == 20 and recipe.networks == ("cnn", "lstm") and recipe.calibrate is False
    assert recipe.ensemble_network == "lstm" and recipe.noise_snr_db == (-10, 5)


@pytest.mark.parametrize("changes, words", [
    ({"epochs": 0}, "epochs"),
    ({"epochs": 2.5}, "epochs"),
    ({"learning_rate": float("nan")}, "learning_rate"),
    ({"noise_probability": 1.5}, "noise_probability"),
    ({"noise_snr_db": (10.0, 0.0)}, "noise_snr_db"),
    ({"babble_snr_db": (0.0,)}, "babble_snr_db"),
    ({"networks": ("cnn", "transformer")}, "networks"),
    ({"networks": ()}, "networks"),
    ({"ensemble_network": "gru"}, "ensemble_network"),
    ({"ensemble_network": "encoder+lstm"}, "ensemble_network"),
    ({"encoder_learning_rate": 0.0}, "encoder_learning_rate"),
    ({"encoder_epochs": 0}, "encoder_epochs"),
    ({"fine_tune_epochs": -1}, "fine_tune_epochs"),
    ({"calibrate": 1}, "calibrate"),
    ({"gain_db": -3}, "gain_db"),
])
def test_bad_values_are_refused_in_one_line(changes, words):
    with pytest.raises(BadParameterError) as caught:
        Recipe().replace(**changes)
    message = str(caught.value)
    assert message.startswith("Bad recipe:") and words in message and "\n" not in message


@pytest.mark.parametrize("text, words", [
    ("not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('{"epochs": 3, "dropout": 0.5}', "dropout"),
    ('{"epochs": "many"}', "epochs"),
])
def test_bad_stored_recipes_are_refused(text, words):
    with pytest.raises(BadParameterError, match=words):
        Recipe.from_json(text)


def test_options_of_earlier_versions_load_without_them_and_cannot_be_set():
    """cmn, coefficients and all_variants were measured and not kept (bench/README.md): every .h5 saved before
    holds them, and such a model's recipe still loads; the command line no longer takes them."""
    stored = Recipe(epochs=4).to_dict() | {"cmn": False, "coefficients": 40, "all_variants": False}
    assert Recipe.from_json(json.dumps(stored)) == Recipe(epochs=4)
    for retired in ("cmn=true", "coefficients=20", "all_variants=true"):
        with pytest.raises(BadParameterError, match=retired.split("=")[0]):
            Recipe().with_overrides([retired])


@pytest.mark.parametrize("assignment", ["epochs", "speed=3", "=3"])
def test_bad_overrides_name_the_form(assignment):
    with pytest.raises(BadParameterError, match="NAME=VALUE"):
        Recipe().with_overrides([assignment])


@pytest.mark.parametrize("network, size, members", [
    ("cnn", 3, ["cnn", "cnn", "cnn"]),
    ("encoder+cnn", 3, ["encoder", "cnn", "cnn"]),
    ("encoder", 1, ["encoder"]),
])
def test_ensemble_members_in_training_order(network, size, members):
    assert Recipe(ensemble_network=network, ensemble_size=size).ensemble_members() == members
