"""Every training parameter of stage 4, in one frozen object: the recipe.

The feature side has :class:`acoustics.settings.Settings`; the training side has this. A recipe is
stored in every ``.h5`` (``models.save_model``) and in the ``runs`` table, shown by
``train_models.py --check``, and overridden for experiments with ``--recipe NAME=VALUE``. Stage 4,
``make reference`` and the benchmarks all train through ``models.train_network`` with one.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from .errors import BadParameterError
from .settings import from_stored_json, is_integer, is_number, parse_overrides

#: Every network stage 4 can train, in its order: three learn from scratch, ``encoder`` starts from a pretrained
#: speaker encoder. The one list that the recipe, the builders, stage 4's options and the benches read:
#: :func:`acoustics.networks.register_network` adds a network to it with its builder.
NETWORKS = ("cnn", "lstm", "cnnlstm", "encoder")


def register_network(name: str) -> None:
    """Add network ``name`` to :data:`NETWORKS` (:func:`acoustics.networks.register_network` does, with its builder)."""
    global NETWORKS
    if not isinstance(name, str) or not name.isidentifier() or name in ("ensemble", "all"):
        raise BadParameterError(f"A network's name must be a plain word other than ensemble and all, not {name!r}.")
    if name not in NETWORKS:
        NETWORKS = NETWORKS + (name,)


def ensembles() -> tuple:
    """What an ensemble can be made of: members of one network, or one encoder network and ConvNets."""
    return NETWORKS + ("encoder+cnn",)


#: Options of earlier versions that were measured and not kept (bench/README.md, rows D and E): stored
#: recipes that hold them still load, without them (what a model's inputs went through is checked apart,
#: in :func:`acoustics.modelfile.read_metadata`).
RETIRED = ("all_variants", "coefficients", "cmn")


@dataclass(frozen=True)
class Recipe:
    """How the networks are trained and how a clip's verdict is formed.

    Parameters
    ----------
    networks : tuple of str
        The networks stage 4 trains, from :data:`NETWORKS`.
    epochs : int
        Epochs of the networks that learn from scratch (cnn, lstm, cnnlstm): Adam's learning rate falls
        from ``learning_rate`` to 0 along a cosine over them, and the last epoch's weights are kept (the
        validation speakers only measure).
    learning_rate : float
        Adam's learning rate at the start of the cosine.
    width : float
        How many times as many filters and units as the workshop's networks (1: 32-64 filters).
    batch_size : int
        Training windows per batch.
    babble_probability, babble_snr_db
        Each training window gets, with this probability, 3 to 6 other windows of its batch (other
        voices) mixed in at an SNR (dB) drawn uniformly from the range.
    noise_probability, noise_snr_db
        ... and, with this probability, white, pink or brown noise at an SNR (dB) from this range.
    equaliser_probability, equaliser_tilt_db
        ... and, with this probability, a microphone response: a spectral tilt of up to this many dB
        per octave either way, and in half of those cases a band limit (high-pass 100-400 Hz and
        low-pass 3-7 kHz, as telephones and small microphones have).
    gain_db
        ... and every window a level change drawn uniformly within +-this many dB.
    loudness_weight_db : float
        A clip's P(male) is the mean of its windows' P(male), each weighted by
        ``exp((level - loudest level) / loudness_weight_db)``: the pauses, where only noise or other
        voices are heard, hardly vote.
    encoder_epochs, encoder_learning_rate
        The ``encoder`` network: its pretrained speaker encoder stays frozen while a new head learns
        male/female for this many epochs, Adam's learning rate falling from this one along a cosine.
    fine_tune_epochs, fine_tune_learning_rate
        ... then, if ``fine_tune_epochs`` is not 0, the whole network (encoder too) trains this many
        more epochs from this (small) learning rate. On a CPU an epoch of fine-tuning costs about 30
        times one of the head alone.
    ensemble_network, ensemble_size
        The ensemble stage 4 saves: this many networks of this kind, trained with the seeds
        seed, seed + 1, ... and averaged; ``ensemble_network`` "encoder+cnn" makes it one encoder
        network and ``ensemble_size - 1`` ConvNets.
    calibrate : bool
        Fit a temperature on the validation speakers' clips (:func:`acoustics.training.fit_temperature`)
        and store it with the model, so that its probabilities mean what they say.
    """

    networks: tuple = dataclasses.field(default_factory=lambda: NETWORKS)
    epochs: int = 10
    learning_rate: float = 1e-3
    width: float = 1.0
    batch_size: int = 64
    babble_probability: float = 0.5
    babble_snr_db: tuple = (0.0, 20.0)
    noise_probability: float = 0.5
    noise_snr_db: tuple = (-5.0, 20.0)
    equaliser_probability: float = 0.5
    equaliser_tilt_db: float = 3.0
    gain_db: float = 20.0
    loudness_weight_db: float = 2.0
    encoder_epochs: int = 3
    encoder_learning_rate: float = 0.1
    fine_tune_epochs: int = 0
    fine_tune_learning_rate: float = 2e-5
    ensemble_network: str = "cnn"
    ensemble_size: int = 3
    calibrate: bool = True

    def __post_init__(self) -> None:
        for name in ("networks", "babble_snr_db", "noise_snr_db"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        problems = []
        if not self.networks or any(network not in NETWORKS for network in self.networks) or not isinstance(self.networks, tuple):
            problems.append(f"networks must be some of {', '.join(NETWORKS)}, not {self.networks!r}")
        for name, low, high in (("epochs", 1, 1000), ("batch_size", 4, 4096),
                                ("ensemble_size", 1, 20), ("encoder_epochs", 1, 1000), ("fine_tune_epochs", 0, 1000)):
            value = getattr(self, name)
            if not is_integer(value) or not low <= value <= high:
                problems.append(f"{name} must be an integer from {low} to {high}, not {value!r}")
        for name, low, high in (("learning_rate", 1e-6, 1.0), ("encoder_learning_rate", 1e-6, 1.0),
                                ("fine_tune_learning_rate", 1e-7, 1.0), ("width", 0.25, 8.0), ("babble_probability", 0.0, 1.0),
                                ("noise_probability", 0.0, 1.0), ("equaliser_probability", 0.0, 1.0),
                                ("equaliser_tilt_db", 0.0, 12.0), ("gain_db", 0.0, 60.0),
                                ("loudness_weight_db", 0.1, 100.0)):
            value = getattr(self, name)
            if not is_number(value) or not low <= value <= high:
                problems.append(f"{name} must be a number from {low:g} to {high:g}, not {value!r}")
        for name in ("babble_snr_db", "noise_snr_db"):
            value = getattr(self, name)
            if (not isinstance(value, tuple) or len(value) != 2 or not all(is_number(item) for item in value)
                    or not -30 <= value[0] <= value[1] <= 60):
                problems.append(f"{name} must be two numbers low <= high between -30 and 60 dB, not {value!r}")
        if self.ensemble_network not in ensembles():
            problems.append(f"ensemble_network must be one of {', '.join(ensembles())}, not {self.ensemble_network!r}")
        if not isinstance(self.calibrate, bool):
            problems.append(f"calibrate must be true or false, not {self.calibrate!r}")
        if problems:
            raise BadParameterError("Bad recipe: " + "; ".join(problems) + ".")

    # JSON form ---------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        return {key: list(value) if isinstance(value, tuple) else value for key, value in values.items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Recipe":
        return from_stored_json(cls, text, "recipe", retired=RETIRED)

    def replace(self, **changes) -> "Recipe":
        return dataclasses.replace(self, **changes)

    def with_overrides(self, assignments) -> "Recipe":
        """This recipe with ``NAME=VALUE`` texts applied (values in JSON: ``epochs=20``,
        ``networks=["cnn"]``, ``calibrate=false``); raises BadParameterError naming a bad one."""
        return self.replace(**parse_overrides(assignments, [item.name for item in dataclasses.fields(self)], "--recipe"))

    def ensemble_members(self) -> list:
        """The network of each member of the ensemble, in training order (seeds seed, seed + 1, ...)."""
        if self.ensemble_network == "encoder+cnn":
            return ["encoder"] + ["cnn"] * (self.ensemble_size - 1)
        return [self.ensemble_network] * self.ensemble_size

    def describe(self) -> str:
        """The recipe in a few lines, for ``--check`` and the stage-4 heading."""
        return "\n".join(f"  {key:<22} {value}" for key, value in self.to_dict().items())
