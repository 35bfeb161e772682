"""The networks stage 4 can train, and how one is built: Keras Functional models from MFCC windows
``(frames, n_mfcc)`` to ``Dense(1, sigmoid)`` = P(male).

Three learn from scratch (the workshop's ConvNet, LSTM and ConvNet+LSTM, small enough to train on a laptop
CPU); the fourth, ``encoder`` (a pretrained speaker encoder with a new head), is built in
:mod:`acoustics.encoder`. The one list of their names is :data:`acoustics.recipe.NETWORKS`;
:func:`register_network` adds one with its builder. The networks hold no normalisation and no Lambda
layer, so any saved ``.h5`` loads with ``keras.models.load_model`` and ``safe_mode=True``.
"""

from __future__ import annotations

from . import recipe as recipes
from .quiet import import_keras
from .recipe import Recipe
from .settings import Settings
from .training import Normalisation

keras = import_keras()


# Builders (Functional API; input (frames, n_mfcc), output P(male)) -------------------------------
def build_cnn(frames: int, n_mfcc: int, width: float = 1.0) -> keras.Model:
    """1-D convolutions over time (coefficients as channels), global average pooling; ``width`` scales
    the number of filters (32, 64, 64 at 1)."""
    inputs = keras.Input(shape=(frames, n_mfcc), name="mfcc_window")
    x = inputs
    for filters, kernel in ((_scaled(32, width), 5), (_scaled(64, width), 3), (_scaled(64, width), 3)):
        x = keras.layers.Conv1D(filters, kernel, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.Activation("relu")(x)
        x = keras.layers.MaxPooling1D(2)(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    x = keras.layers.Dropout(0.3)(x)
    x = keras.layers.Dense(_scaled(32, width), activation="relu")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="p_male")(x)
    return keras.Model(inputs, outputs, name="cnn")


def build_lstm(frames: int, n_mfcc: int, width: float = 1.0) -> keras.Model:
    """One LSTM (64 units at ``width`` 1) over the frames; its last state decides."""
    inputs = keras.Input(shape=(frames, n_mfcc), name="mfcc_window")
    x = keras.layers.LSTM(_scaled(64, width))(inputs)
    x = keras.layers.Dropout(0.3)(x)
    x = keras.layers.Dense(_scaled(32, width), activation="relu")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="p_male")(x)
    return keras.Model(inputs, outputs, name="lstm")


def build_cnnlstm(frames: int, n_mfcc: int, width: float = 1.0) -> keras.Model:
    """A convolutional front end over time (4x shorter sequence), then an LSTM (32 and 64 filters, 48
    units at ``width`` 1)."""
    inputs = keras.Input(shape=(frames, n_mfcc), name="mfcc_window")
    x = inputs
    for filters, kernel in ((_scaled(32, width), 5), (_scaled(64, width), 3)):
        x = keras.layers.Conv1D(filters, kernel, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling1D(2)(x)
    x = keras.layers.LSTM(_scaled(48, width))(x)
    x = keras.layers.Dropout(0.3)(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="p_male")(x)
    return keras.Model(inputs, outputs, name="cnnlstm")


def _scaled(units: int, width: float) -> int:
    return max(4, int(round(units * width)))


#: The builder of each network that learns from scratch: ``builder(frames, n_mfcc, width)`` -> a Functional
#: model from MFCC windows ``(frames, n_mfcc)`` to ``Dense(1, sigmoid)`` P(male). The ``encoder`` network is
#: built by :func:`acoustics.encoder.build_encoder_network`.
BUILDERS = {"cnn": build_cnn, "lstm": build_lstm, "cnnlstm": build_cnnlstm}


def register_network(name: str, builder) -> None:
    """Make network ``name`` one that stage 4 trains (``--model all``, ``--model NAME``, ``--pick NAME``), the
    recipe accepts and the benches can name; ``builder`` as in :data:`BUILDERS`."""
    recipes.register_network(name)
    BUILDERS[name] = builder


def combine_models(members, settings: Settings, name: str = "ensemble") -> keras.Model:
    """One Functional model whose P(male) is the mean of its trained ``members``' P(male): an ensemble.

    The members (models with the same input, such as several ConvNets trained with different seeds)
    are nested unchanged under their names numbered (``cnn_1``, ``cnn_2``, ...); their outputs are
    concatenated and averaged by a frozen ``Dense(1)`` with weights ``1/len(members)``, so the result
    saves and loads like any single model (plain ``keras.models.load_model``, ``safe_mode=True``).
    """
    members = list(members)
    if len(members) < 2:
        raise ValueError(f"combine_models: needs two or more models, not {len(members)}")
    inputs = keras.Input(shape=(settings.frames, settings.n_mfcc), name="mfcc_window")
    renamed = [keras.Model(member.input, member.output, name=f"{member.name}_{position}")
               for position, member in enumerate(members, start=1)]
    outputs = keras.layers.Concatenate(name="member_p_male")([member(inputs) for member in renamed])
    average = keras.layers.Dense(1, use_bias=False, trainable=False, name="p_male",
                                 kernel_initializer=keras.initializers.Constant(1.0 / len(members)))(outputs)
    return keras.Model(inputs, average, name=name)


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow, and make TensorFlow's ops deterministic."""
    import tensorflow

    keras.utils.set_random_seed(int(seed))
    tensorflow.config.experimental.enable_op_determinism()


def training_plan(recipe: Recipe, name: str = "cnn") -> str:
    """How network ``name`` trains, in words (for the stage-4 headings)."""
    if name == "encoder":
        plan = (f"a pretrained speaker encoder (heard thousands of voices), frozen; a new head learns male/female in "
                f"{recipe.encoder_epochs} epoch{'s' * (recipe.encoder_epochs != 1)}")
        if recipe.fine_tune_epochs:
            plan += f", then the whole network {recipe.fine_tune_epochs} more at learning rate {recipe.fine_tune_learning_rate:g}"
        return plan
    return f"{recipe.epochs} epoch{'s' * (recipe.epochs != 1)}, the learning rate falling along a cosine"


def build_model(name: str, settings: Settings, seed: int, learning_rate: float = 1e-3, width: float = 1.0, *,
                normalisation: Normalisation | None = None, fine_tune: bool = False) -> keras.Model:
    """A freshly seeded, compiled model ``name`` (one of :data:`acoustics.recipe.NETWORKS`), ``width`` times as wide.

    ``encoder`` (:func:`acoustics.encoder.build_encoder_network`) takes no width; it needs the
    ``normalisation`` its input windows come with, and its pretrained encoder trains only with ``fine_tune``.
    """
    if name not in recipes.NETWORKS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(recipes.NETWORKS)}")
    set_seed(seed)
    if name == "encoder":
        from .encoder import build_encoder_network

        if normalisation is None:
            raise ValueError("build_model: the encoder network needs the normalisation of its input windows")
        model = build_encoder_network(settings, normalisation, fine_tune=fine_tune)
    else:
        model = BUILDERS[name](settings.frames, settings.n_mfcc, width)
    compile_model(model, float(learning_rate))
    return model


def compile_model(model: keras.Model, learning_rate) -> None:
    """Compile ``model`` for P(male): Adam at ``learning_rate`` (a number or a Keras schedule)."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy", metrics=["accuracy"])
