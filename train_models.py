"""Stage 4: train a ConvNet, an LSTM, a ConvNet+LSTM and a pretrained speaker encoder with a new head to tell
male from female speech, and keep the best.

Reads the MFCCs and settings that speech_prep.py stored in the feature database; the work (speaker
split, training as the recipe says, calibration on the validation speakers, scores on the test
speakers' clips, saving) is acoustics/trainer.py's, the path `make reference` takes too; this script
reads the command line, shows the progress and the test table, and copies the best model. It saves

    data/models/<model>.h5                 the network with its settings, normalisation, recipe,
                                           calibration, what it heard (provenance) and scores
    data/models/<model>_training.png       loss and accuracy per epoch
    data/models/<model>_confusion.png      test clips: true against predicted sex
    data/models/ensemble.h5                recipe.ensemble_size networks (seeds S, S+1, ...) in one,
                                           P(male) their mean
    data/models/best.h5                    a copy of the model with the best validation balanced accuracy
                                           (ties: lower validation log loss; --name NAME: NAME.h5 instead;
                                           --pick MODEL: that model instead)

Ctrl-C during training keeps the weights of the last finished epoch, saves that model and skips the
remaining ones.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from acoustics import features, locks, outputs, trainer
from acoustics.database import FeatureDatabase
from acoustics.errors import AcousticsError
from acoustics import recipe as recipes
from acoustics.recipe import Recipe
from acoustics.settings import Paths, Settings, command_line, non_negative_integer, plain_file_name, positive_integer
from acoustics.training import DEFAULT_FRACTIONS

DESCRIPTION = """Stage 4: train four kinds of network to tell male from female speech, and keep the best.

It learns from what speech_prep.py stored in the feature database. The speakers are split into
training, validation and test speakers, so that every score is measured on voices the network never
heard. Three networks learn from scratch (cnn: a convolutional network, lstm: a recurrent one,
cnnlstm: both); the fourth, encoder, starts from a speaker encoder that has already heard thousands
of voices and only learns a new head: transfer learning. Each is saved in data/models/ with pictures
of its training and its mistakes; after all four, an ensemble (three cnn networks) too. The validation speakers also calibrate each model, so that its probabilities
mean what they say. The one best on the validation speakers is copied to data/models/best.h5,
which implement_model.py uses if it has heard real voices. Ctrl-C saves the network as trained so
far and skips the rest.
"""
EXAMPLES = """examples:
  python train_models.py                        # all four networks and the ensemble (minutes)
  python train_models.py --model encoder        # transfer learning alone: the pretrained encoder, a new head
  python train_models.py --recipe noise_probability=0 --recipe epochs=20   # change the recipe
  python train_models.py --check data/models/best.h5                # what a model holds and heard
"""


def parse_arguments(argv=None) -> argparse.Namespace:
    paths, recipe = Paths(), Recipe()
    parser = argparse.ArgumentParser(description=DESCRIPTION, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", metavar="PATH", type=Path, default=paths.database, help=f"feature database (default {paths.database})")
    parser.add_argument("--model", choices=recipes.NETWORKS + ("ensemble", "all"), default="all",
                        help="which network to train, or only the ensemble (default all: the four networks and the ensemble)")
    parser.add_argument("--recipe", action="append", default=[], metavar="NAME=VALUE",
                        help="change one training setting, e.g. epochs=20 or noise_probability=0 (repeatable; "
                             "--check MODEL shows them all)")
    parser.add_argument("--epochs", type=positive_integer, default=None,
                        help=f"passes over the training data per network (default: the recipe's, {recipe.epochs}, and "
                             f"{recipe.encoder_epochs} for the encoder network's head)")
    parser.add_argument("--batch-size", metavar="N", type=positive_integer, default=None,
                        help=f"windows of speech ({Settings.frames * Settings.hop_ms / 1000:g} s at the default settings) per training step (default: the recipe's, {recipe.batch_size})")
    parser.add_argument("--out", metavar="FOLDER", type=Path, default=paths.models, help=f"folder for the models and pictures (default {paths.models})")
    parser.add_argument("--seed", type=non_negative_integer, default=None, help="seed of the split, the shuffling and the weights (default: the database's)")
    parser.add_argument("--name", type=plain_file_name, default="best", help="file name (without .h5) of the copy of the best model (default best)")
    parser.add_argument("--pick", choices=recipes.NETWORKS + ("ensemble",), default=None,
                        help="copy this model to NAME.h5 instead of the one best on the validation speakers")
    parser.add_argument("--new-split", action="store_true", help="draw a new speaker split even if the stored one still fits")
    parser.add_argument("--fractions", type=float, nargs=3, metavar=("TRAIN", "VALIDATION", "TEST"), default=None,
                        help="draw a new split with these shares of each sex's speakers (default "
                             f"{' '.join(f'{share:.2f}' for share in DEFAULT_FRACTIONS)})")
    parser.add_argument("--bench", type=Path, metavar="JSON", help="store these bench/accuracy.py figures with the models "
                        "(make reference stores bench/accuracy.json's); with --check: in that model")
    parser.add_argument("--check", type=Path, metavar="MODEL", help="only check MODEL.h5: what it holds, heard and scored")
    arguments = parser.parse_args(argv)
    trained = trained_models(arguments.model)
    if arguments.pick and not arguments.check and arguments.pick not in trained:
        parser.error(f"--pick {arguments.pick}: this run trains only {' and '.join(trained)}; "
                     f"add --model {arguments.pick} (or --model all), or leave --pick out")
    return arguments


def trained_models(model: str) -> tuple:
    """The models a run with ``--model model`` trains and saves."""
    return recipes.NETWORKS + ("ensemble",) if model == "all" else (model,)


def check(arguments) -> int:
    """--check MODEL: print what the model holds, heard and scored (after storing --bench's figures in it)."""
    from acoustics.modelfile import add_provenance, check_model_settings, provenance_lines, read_metadata

    if arguments.bench:
        add_provenance(arguments.check, trainer.bench_provenance(arguments.bench))
        print(f"Stored the figures of {arguments.bench} in {arguments.check}.")
    metadata = read_metadata(arguments.check)  # h5py alone: a foreign file or other settings are refused at once
    if arguments.db.exists():
        with FeatureDatabase(arguments.db, readonly=True) as database:
            check_model_settings(metadata, database.settings, source=f"The feature database {arguments.db}")
    from acoustics import models, verdict

    model, metadata = models.load_model(arguments.check)
    test = metadata["scores"].get("test", {})
    matches = f"settings match {arguments.db}" if arguments.db.exists() else "no feature database to compare with"
    print(f"{arguments.check}: {metadata['model_name']} model, {model.count_params()} parameters, saved {metadata['saved_at']} "
          f"by version {metadata['version']}; test accuracy {test.get('accuracy', float('nan')):.3f} on "
          f"{test.get('speakers', '?')} speakers; {matches}.")
    try:
        print(f"It heard: {verdict.describe_provenance(metadata)}.")
        print("\n".join(provenance_lines(metadata["provenance"])))
    except (AttributeError, KeyError, TypeError, ValueError):
        print("  (the rest of what it heard is damaged in the file)")
    print(f"Calibration temperature {metadata['temperature']:.2f}. Recipe:\n{metadata['recipe'].describe()}")
    return 0


def recipe_of(arguments) -> Recipe:
    """The default recipe with the command line's changes."""
    recipe = Recipe().with_overrides(arguments.recipe)
    changes = {"epochs": arguments.epochs, "encoder_epochs": arguments.epochs, "batch_size": arguments.batch_size}
    recipe = recipe.replace(**{key: value for key, value in changes.items() if value is not None})
    return recipe.replace(networks=(arguments.model,)) if arguments.model in recipes.NETWORKS else recipe


def without_unusable_encoder(recipe: Recipe, settings, model: str) -> Recipe:
    """``recipe`` without the encoder network when the database's feature settings are not the ones the
    encoder was pretrained with: said in a line when it was only part of
    ``--model all``, refused (raised) when it was asked for by name or is part of the ensemble to train."""
    from acoustics.encoderfile import check_settings
    from acoustics.errors import BadParameterError

    wanted = "encoder" in recipe.networks and model != "ensemble"
    in_ensemble = "encoder" in recipe.ensemble_members() and model in ("all", "ensemble")
    if not (wanted or in_ensemble):
        return recipe
    try:
        check_settings(settings)
    except BadParameterError as error:
        if model != "all" or in_ensemble:
            raise
        print(f"Leaving the encoder network out. {error}", flush=True)
        return recipe.replace(networks=tuple(network for network in recipe.networks if network != "encoder"))
    return recipe


def augmentation_note(settings, recipe) -> str:
    """The line that says the recipe's augmentation (acoustics.augment) cannot work on these features, or ""."""
    if features.invertible(settings) or not max(recipe.babble_probability, recipe.noise_probability,
                                                recipe.equaliser_probability, recipe.gain_db) > 0:
        return ""
    return (f"No augmentation (other voices, noise, microphone responses, levels): it works on the mel bands, which "
            f"{settings.n_mfcc} MFCCs of {settings.n_mels} bands do not give back; a database made with the default "
            "settings (python set_up_sql.py --reset) has it.")


def train_all(arguments) -> int:
    recipe = recipe_of(arguments)
    trainer.check_outputs(arguments.out, trained_models(arguments.model), arguments.name, database=arguments.db)
    removed = outputs.remove_stale_temporaries(arguments.out, recipes.NETWORKS + ("ensemble", arguments.name))
    if removed:
        print(f"Removed {removed} leftover temporary file{'s' if removed != 1 else ''} of an interrupted save "
              f"(.NAME.h5.*.tmp.h5) from {arguments.out}.", flush=True)
    extra = trainer.bench_provenance(arguments.bench)
    with FeatureDatabase(arguments.db) as database:
        seed = database.settings.seed if arguments.seed is None else arguments.seed
        recipe = without_unusable_encoder(recipe, database.settings, arguments.model)
        note = augmentation_note(database.settings, recipe)
        if note:
            print(note, flush=True)
        split = trainer.load_split(database, recipe, seed, new_split=arguments.new_split, fractions=arguments.fractions)
        print(f"Speaker split ({'stored, reused' if split.reused else f'new, seed {seed}'}):\n{split.describe()}", flush=True)
        print("Loading TensorFlow ...", flush=True)
        from acoustics import models  # noqa: F401  (TensorFlow loads here, after the line that says so)

        arguments.out.mkdir(parents=True, exist_ok=True)
        results = []
        for event in trainer.train_models(() if arguments.model == "ensemble" else recipe.networks, split, recipe, database,
                                          arguments.out, seed=seed, ensemble=arguments.model in ("all", "ensemble"),
                                          extra_provenance=extra):
            if isinstance(event, trainer.Saved):
                results.append(event)
            print(progress_line(event, recipe), flush=True)
    return report(arguments, results, split.index, database.settings)


def progress_line(event, recipe: Recipe) -> str:
    """What the person reads when a network starts training, a model is saved, or Ctrl-C stopped the training."""
    from acoustics.networks import training_plan

    if isinstance(event, trainer.Starting) and event.member:
        return (f"\n=== ensemble: {event.name} with seed {event.seed} ({event.member} of {event.members}), "
                f"{training_plan(recipe, event.name)} ===")
    if isinstance(event, trainer.Starting):
        return f"\n=== {event.name}: {training_plan(recipe, event.name)} ==="
    if isinstance(event, trainer.Stopped):
        return ("Stopped by Ctrl-C: the ensemble is not saved." if event.name == "ensemble" else
                "Stopped by Ctrl-C: saved the model as trained so far; the remaining models are skipped.")
    fit, temperature = event.fit, event.scores["temperature"]
    if "members" in fit:
        seed = event.scores["seed"]
        kinds = (f"1 encoder and {fit['members'] - 1} cnn" if fit["network"] == "encoder+cnn"
                 else f"{fit['members']} {fit['network']}")
        return (f"Saved {event.path}: the mean of {kinds} models' probabilities "
                f"(seeds {seed} to {seed + fit['members'] - 1}; calibration temperature {temperature:.2f}).")
    return f"Saved {event.path} (the last epoch, {fit['best_epoch']} of {fit['epochs']}; calibration temperature {temperature:.2f})."


def report(arguments, results, index, settings) -> int:
    """Copy the best (or --pick) model to NAME.h5 and print the test table and the next command."""
    if not results:
        print("No model was saved.")
        return 130
    chosen, best = trainer.choose(results, arguments.pick)
    validation_best = f"{best.name} ({best.scores['validation']['balanced_accuracy']:.3f})"
    reason = f"Best by validation balanced accuracy: {validation_best}"
    if chosen.name == arguments.pick:
        reason = (f"Picked with --pick: {chosen.name} (validation balanced accuracy "
                  f"{chosen.scores['validation']['balanced_accuracy']:.3f}; the best was {validation_best})")
    elif arguments.pick:
        reason += f" (--pick {arguments.pick}: that model was not trained, so the validation speakers chose)"
    best_copy = arguments.out / f"{arguments.name}.h5"
    if best_copy != chosen.path:
        outputs.copy_atomically(chosen.path, best_copy)
    print(f"\nTest speakers' clips (accuracy at clip level; a clip's verdict is the mean over its {settings.window_seconds:.1f} s windows, the louder ones counting more):")
    print(trainer.summary_table(results, index).to_string(index=False, float_format=lambda value: f"{value:.3f}"))
    print(f"\n{reason}; copied to {best_copy}. Pictures are beside the models in {arguments.out}.")
    paths = Paths()
    print("Next: " + command_line("implement_model.py", ("--db", arguments.db, paths.database),
                                  ("--model", best_copy, paths.models / "best.h5")))
    return 0


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    try:
        if arguments.check:
            return check(arguments)
        with locks.hold_for_training(arguments.out, arguments.db):  # best.h5 and the stored split: one run's
            return train_all(arguments)
    except AcousticsError as error:
        print(error, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nInterrupted; the models saved before this point are complete (saving is atomic).", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
