"""Stage 4: train a ConvNet, an LSTM and a ConvNet+LSTM to tell male from female speech, and keep the best.

Reads the MFCCs that speech_prep.py stored in the feature database (and its settings: no number is
declared here), splits the speakers into training, validation and test speakers (stored in the
database and reused while the speakers stay the same), trains each network as the recipe says
(acoustics/recipe.py: epochs, learning rate, augmentation with other voices, coloured noise,
microphone responses and levels), calibrates its probabilities on the validation speakers, scores it
on the test speakers' clips (clean and at every SNR), and saves

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
import os
import shutil
import sys
import tempfile
from pathlib import Path

from acoustics import locks, trainer, verdict
from acoustics.database import FeatureDatabase
from acoustics.errors import AcousticsError, printable
from acoustics.recipe import Recipe
from acoustics.settings import Paths, command_line, non_negative_integer

MODEL_CHOICES = ("cnn", "lstm", "cnnlstm")
DESCRIPTION = """Stage 4: train three kinds of network to tell male from female speech, and keep the best.

It learns from what speech_prep.py stored in the feature database. The speakers are split into
training, validation and test speakers, so that every score is measured on voices the network never
heard. Each network (cnn: a convolutional network, lstm: a recurrent one, cnnlstm: both) is saved
in data/models/ with pictures of its training and its mistakes; after all three, an ensemble of
three cnn networks too. The validation speakers also calibrate each model, so that its probabilities
mean what they say. The one best on the validation speakers is copied to data/models/best.h5,
which implement_model.py uses if it has heard real voices. Ctrl-C saves the network as trained so
far and skips the rest.
"""
EXAMPLES = """examples:
  python train_models.py                        # all three networks and the ensemble (minutes)
  python train_models.py --model cnn --epochs 5 # one quick network
  python train_models.py --recipe noise_probability=0 --recipe epochs=20   # change the recipe
  python train_models.py --check data/models/best.h5                # what a model holds and heard
"""


def positive_integer(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def file_name(text: str) -> str:
    name = text[:-3] if text.endswith(".h5") else text
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise argparse.ArgumentTypeError(f"must be a plain file name such as 'reference', not {text!r}")
    return name


def parse_arguments(argv=None) -> argparse.Namespace:
    paths = Paths()
    parser = argparse.ArgumentParser(description=DESCRIPTION, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", metavar="PATH", type=Path, default=paths.database, help=f"feature database (default {paths.database})")
    parser.add_argument("--model", choices=MODEL_CHOICES + ("ensemble", "all"), default="all",
                        help="which network to train, or only the ensemble (default all: the three networks and the ensemble)")
    parser.add_argument("--recipe", action="append", default=[], metavar="NAME=VALUE",
                        help="change one training setting, e.g. epochs=20 or noise_probability=0 (repeatable; "
                             "--check MODEL shows them all)")
    parser.add_argument("--epochs", type=positive_integer, default=None,
                        help="passes over the training data per network (default: the recipe's, 10)")
    parser.add_argument("--batch-size", metavar="N", type=positive_integer, default=None,
                        help="1-second pieces of speech per training step (default: the recipe's, 64)")
    parser.add_argument("--out", metavar="FOLDER", type=Path, default=paths.models, help=f"folder for the models and pictures (default {paths.models})")
    parser.add_argument("--seed", type=non_negative_integer, default=None, help="seed of the split, the shuffling and the weights (default: the database's)")
    parser.add_argument("--name", type=file_name, default="best", help="file name (without .h5) of the copy of the best model (default best)")
    parser.add_argument("--pick", choices=MODEL_CHOICES + ("ensemble",), default=None,
                        help="copy this model to NAME.h5 instead of the one best on the validation speakers")
    parser.add_argument("--new-split", action="store_true", help="draw a new speaker split even if the stored one still fits")
    parser.add_argument("--fractions", type=float, nargs=3, metavar=("TRAIN", "VALIDATION", "TEST"), default=None,
                        help="draw a new split with these shares of each sex's speakers (default 0.70 0.15 0.15)")
    parser.add_argument("--bench", type=Path, metavar="JSON", help="store these bench/accuracy.py figures with the models "
                        "(make reference stores bench/accuracy.json's); with --check: in that model")
    parser.add_argument("--check", type=Path, metavar="MODEL", help="only check MODEL.h5: what it holds, heard and scored")
    return parser.parse_args(argv)


def recipe_of(arguments) -> Recipe:
    """The default recipe with the command line's changes."""
    recipe = Recipe().with_overrides(arguments.recipe)
    changes = {"epochs": arguments.epochs, "batch_size": arguments.batch_size}
    recipe = recipe.replace(**{key: value for key, value in changes.items() if value is not None})
    if arguments.model in MODEL_CHOICES:
        recipe = recipe.replace(networks=(arguments.model,))
    return recipe


def describe_split(index) -> str:
    lines = []
    for subset in ("train", "validation", "test"):
        rows = index[index["subset"] == subset]
        speakers = rows.groupby("sex")["speaker_id"].nunique()
        lines.append(f"  {subset:<10} {speakers.get('female', 0):>4} female, {speakers.get('male', 0):>4} male speakers, {len(rows):>6} clips")
    return "\n".join(lines)


def copy_atomically(source: Path, destination: Path) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".tmp.h5", dir=destination.parent)
    os.close(handle)
    try:
        shutil.copyfile(source, temporary)
        os.chmod(temporary, 0o644)
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def check(arguments) -> int:
    from acoustics import models
    from acoustics.modelfile import add_provenance

    if arguments.bench:
        add_provenance(arguments.check, bench_figures(arguments.bench))
        print(f"Stored the figures of {arguments.bench} in {arguments.check}.")
    model, metadata = models.load_model(arguments.check)
    if arguments.db.exists():
        with FeatureDatabase(arguments.db, readonly=True) as database:
            models.check_model_settings(metadata, database.settings, source=f"The feature database {arguments.db}")
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


def provenance_lines(heard: dict) -> list:
    """A model's provenance in lines: each corpus's speakers and clips, date and commit, bench figures."""
    lines = [f"  {printable(corpus):<12} {int(counts['female_speakers']):>4} female, {int(counts['male_speakers']):>4} male "
             f"speakers, {int(counts['clips']):>6} clips{' (synthetic)' if counts['synthetic'] else ''}"
             for corpus, counts in sorted(heard.get("corpora", {}).items())]
    if "commit" in heard:
        lines.append(f"  trained {printable(heard.get('date', '?'))} at commit {printable(heard['commit'])}")
    figures = heard.get("bench", {}).get("accuracy")
    if figures:
        lines.append("  bench/accuracy.py, each corpus held out of training: " + "; ".join(
            f"{printable(corpus)} " + ", ".join(f"{printable(condition)} {float(value):.3f}" for condition, value in conditions.items())
            for corpus, conditions in figures.get("per_corpus", {}).items()))
    return lines


def check_outputs(arguments) -> None:
    """Refuse, before any work, an --out that is a file, or a model or picture in it that would
    overwrite the database or another kind of file."""
    from acoustics import outputs

    if arguments.out.exists() and not arguments.out.is_dir():
        raise AcousticsError(f"--out {arguments.out} is a file, not a folder; choose another folder.")
    names = MODEL_CHOICES + ("ensemble",) if arguments.model == "all" else (arguments.model,)
    protected = {"the feature database": arguments.db}
    for name in names:
        outputs.check_output_path(arguments.out / f"{name}.h5", "--out", "HDF5 file (a model)", protected)
        for picture in ("training", "confusion"):
            outputs.check_picture_path(arguments.out / f"{name}_{picture}.png", "--out", protected)
    outputs.check_output_path(arguments.out / f"{arguments.name}.h5", "--name", "HDF5 file (a model)", protected)


def remove_leftovers(arguments) -> int:
    """Remove, from --out, the temporary files of saves that a killed run (SIGKILL) left behind, and say how many."""
    from acoustics import outputs

    removed = outputs.remove_stale_temporaries(arguments.out, MODEL_CHOICES + ("ensemble", arguments.name))
    if removed:
        print(f"Removed {removed} leftover temporary file{'s' if removed != 1 else ''} of an interrupted save "
              f"(.NAME.h5.*.tmp.h5) from {arguments.out}.", flush=True)
    return removed


def bench_figures(path) -> dict:
    """``{"bench": figures}`` from a bench/accuracy.py JSON file, for a model's provenance ({} for none)."""
    import json

    if path is None:
        return {}
    try:
        return {"bench": json.loads(Path(path).read_text(encoding="utf-8"))}
    except (OSError, ValueError) as error:
        raise AcousticsError(f"--bench {path}: not a readable JSON file of bench/accuracy.py's figures ({error}).") from None


def train_all(arguments) -> int:
    recipe = recipe_of(arguments)
    check_outputs(arguments)
    remove_leftovers(arguments)
    extra = bench_figures(arguments.bench)
    with FeatureDatabase(arguments.db) as database:
        seed = database.settings.seed if arguments.seed is None else arguments.seed
        split = trainer.load_split(database, recipe, seed, new_split=arguments.new_split, fractions=arguments.fractions)
        print(f"Speaker split ({'stored, reused' if split.reused else f'new, seed {seed}'}):\n{describe_split(split.index)}", flush=True)
        print("Loading TensorFlow ...", flush=True)
        from acoustics import models

        arguments.out.mkdir(parents=True, exist_ok=True)
        names = () if arguments.model == "ensemble" else recipe.networks
        results, trained = [], {}
        interrupted = "Stopped by Ctrl-C: saved the model as trained so far; the remaining models are skipped."
        for name in names:
            print(f"\n=== {name}: {models.training_plan(recipe)} ===", flush=True)
            model, fit = trainer.train(name, split, recipe, seed)
            path = arguments.out / f"{name}.h5"
            scores = trainer.score_and_save(name, model, fit, split, recipe, database, path, seed=seed, extra_provenance=extra)
            results.append((name, path, scores))
            trained[name] = (model, fit)
            print(f"Saved {path} (the last epoch, {fit['best_epoch']} of {fit['epochs']}; "
                  f"calibration temperature {scores['temperature']:.2f}).", flush=True)
            if fit["interrupted"]:
                print(interrupted, flush=True)
                break
        if arguments.model in ("all", "ensemble") and not any(fit["interrupted"] for _, fit in trained.values()):
            results += train_ensemble(arguments, split, recipe, database, seed, trained.get(recipe.ensemble_network), extra)
    return report(arguments, results, split.index)


def train_ensemble(arguments, split, recipe, database, seed, first, extra) -> list:
    """Train the ensemble's members (reusing ``first``, the network trained with ``seed``), save the ensemble."""
    from acoustics import models

    members = [first] if first is not None else []
    for member_seed in range(seed + len(members), seed + recipe.ensemble_size):
        print(f"\n=== ensemble: {recipe.ensemble_network} with seed {member_seed} ({len(members) + 1} of "
              f"{recipe.ensemble_size}), {models.training_plan(recipe)} ===", flush=True)
        members.append(trainer.train(recipe.ensemble_network, split, recipe, member_seed))
        if members[-1][1]["interrupted"]:
            print("Stopped by Ctrl-C: the ensemble is not saved.", flush=True)
            return []
    ensemble = members[0][0] if len(members) == 1 else models.combine_models([model for model, _ in members], split.settings)
    path = arguments.out / "ensemble.h5"
    scores = trainer.score_and_save("ensemble", ensemble, trainer.members_fit([fit for _, fit in members]), split, recipe,
                                    database, path, seed=seed, extra_provenance=extra)
    print(f"Saved {path}: the mean of {len(members)} {recipe.ensemble_network} models' probabilities "
          f"(seeds {seed} to {seed + len(members) - 1}; calibration temperature {scores['temperature']:.2f}).", flush=True)
    return [("ensemble", path, scores)]


def report(arguments, results, index) -> int:
    """Copy the best (or --pick) model to NAME.h5 and print the test table and the next command."""
    if not results:
        print("No model was saved.")
        return 130
    # Best on the validation speakers: balanced accuracy, then (for ties) the lower log loss; or --pick.
    best_name, best_path, best_scores = max(results, key=lambda result: (result[2]["validation"]["balanced_accuracy"],
                                                                        -result[2]["validation"]["log_loss"]))
    validation_best = f"{best_name} ({best_scores['validation']['balanced_accuracy']:.3f})"
    reason = f"Best by validation balanced accuracy: {validation_best}"
    picked = [result for result in results if result[0] == arguments.pick]
    if picked:
        best_name, best_path, best_scores = picked[0]
        reason = (f"Picked with --pick: {best_name} (validation balanced accuracy {best_scores['validation']['balanced_accuracy']:.3f}; "
                  f"the best was {validation_best})")
    elif arguments.pick:
        reason += f" (--pick {arguments.pick}: that model was not trained, so the validation speakers chose)"
    best_copy = arguments.out / f"{arguments.name}.h5"
    if best_copy != best_path:
        copy_atomically(best_path, best_copy)
    print("\nTest speakers' clips (accuracy at clip level; a clip's verdict is the mean over its 1 s windows, the louder ones counting more):")
    print(summary_table(results, index).to_string(index=False, float_format=lambda value: f"{value:.3f}"))
    print(f"\n{reason}; copied to {best_copy}. Pictures are beside the models in {arguments.out}.")
    paths = Paths()
    print("Next: " + command_line("implement_model.py", ("--db", arguments.db, paths.database),
                                  ("--model", best_copy, paths.models / "best.h5")))
    return 0


def summary_table(results, index):
    import pandas

    from acoustics import training

    variants = training.variant_order(index)
    rows = []
    for name, _, scores in results:
        test = scores["test"]
        row = {"model": name, "accuracy": test["accuracy"]}
        row.update({variant: test["per_variant"].get(variant, float("nan")) for variant in variants})
        row.update({"balanced accuracy": test["balanced_accuracy"], "ECE": test.get("ece", float("nan")),
                    "test speakers": test["speakers"],
                    "seconds": scores["training_seconds"], "parameters": scores["parameters"]})
        rows.append(row)
    return pandas.DataFrame(rows)


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
