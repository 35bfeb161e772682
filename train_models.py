"""Stage 4: train a CNN, an LSTM and a CNN+LSTM to tell male from female speech, and keep the best.

Reads the MFCCs that speech_prep.py stored in the feature database (and its settings: no number is
declared here), splits the speakers into training, validation and test speakers (stored in the
database and reused while the speakers stay the same), trains each model for a fixed number of epochs,
scores it on the test speakers' clips (clean and at every SNR), and saves

    data/models/<model>.h5                 the network, its settings, normalisation and scores
    data/models/<model>_training.png       loss and accuracy per epoch
    data/models/<model>_confusion.png      test clips: true against predicted sex
    data/models/ensemble.h5                3 ConvNets (seeds S, S+1, S+2) in one, P(male) their mean
                                           (after --model all; models.ENSEMBLE_MODEL, ENSEMBLE_SIZE)
    data/models/best.h5                    a copy of the model with the best validation balanced accuracy
                                           (ties: lower validation log loss; --name NAME: NAME.h5 instead;
                                           --pick MODEL: that model instead)

It trains on whatever the database holds (any mix of corpora: stage 3 takes --manifest repeatedly and
--demo). Training uses the defaults that scored best in bench/accuracy.py: other voices mixed into half
of the training windows (training.BABBLE_*), no per-window cepstral mean normalisation (training.CMN),
and for each network 10 epochs with its learning rate (models.LEARNING_RATES) falling along a cosine
to 0 (models.FIXED_EPOCHS). The validation speakers are measured after every epoch, never used to stop.

Ctrl-C during training keeps the weights of the last finished epoch, saves that model and skips the
remaining ones.

    python train_models.py                      # all three models, at most 30 epochs each
    python train_models.py --model cnn --epochs 5
    python train_models.py --model cnnlstm --name reference   # data/models/reference.h5
    python train_models.py --pick ensemble      # best.h5 is the ensemble, whatever validation says
    python train_models.py --check data/models/best.h5
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from acoustics import training
from acoustics.database import FeatureDatabase
from acoustics.errors import AcousticsError
from acoustics.settings import Paths

MODEL_CHOICES = ("cnn", "lstm", "cnnlstm")


def positive_integer(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def non_negative_integer(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not {value}")
    return value


def file_name(text: str) -> str:
    name = text[:-3] if text.endswith(".h5") else text
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise argparse.ArgumentTypeError(f"must be a plain file name such as 'reference', not {text!r}")
    return name


def parse_arguments(argv=None) -> argparse.Namespace:
    paths = Paths()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, default=paths.database, help=f"feature database (default {paths.database})")
    parser.add_argument("--model", choices=MODEL_CHOICES + ("all",), default="all", help="which model to train (default all)")
    parser.add_argument("--epochs", type=positive_integer, default=30, help="most epochs per model; each network's schedule is shorter (models.FIXED_EPOCHS: 10) unless this cuts it (default 30)")
    parser.add_argument("--batch-size", type=positive_integer, default=64, help="windows per training batch (default 64)")
    parser.add_argument("--out", type=Path, default=paths.models, help=f"folder for the models and pictures (default {paths.models})")
    parser.add_argument("--seed", type=non_negative_integer, default=None, help="seed of the split, the shuffling and the weights (default: the database's)")
    parser.add_argument("--name", type=file_name, default="best", help="file name (without .h5) of the copy of the best model (default best)")
    parser.add_argument("--pick", choices=MODEL_CHOICES + ("ensemble",), default=None,
                        help="copy this model to NAME.h5 instead of the one best on the validation speakers (make reference "
                             "picks the ensemble, the best on unseen speakers in bench/accuracy.py)")
    parser.add_argument("--new-split", action="store_true", help="draw a new speaker split even if the stored one still fits")
    parser.add_argument("--check", type=Path, metavar="MODEL", help="only check that MODEL.h5 loads and matches the database, and show its scores")
    return parser.parse_args(argv)


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

    model, metadata = models.load_model(arguments.check)
    if arguments.db.exists():
        with FeatureDatabase(arguments.db, readonly=True) as database:
            models.check_model_settings(metadata, database.settings, source=f"The feature database {arguments.db}")
    test = metadata["scores"].get("test", {})
    print(f"{arguments.check}: {metadata['model_name']} model, {model.count_params()} parameters, saved {metadata['saved_at']} "
          f"by version {metadata['version']}; test accuracy {test.get('accuracy', float('nan')):.3f} on "
          f"{test.get('speakers', '?')} speakers; settings match {arguments.db}.")
    return 0


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


def train_all(arguments) -> int:
    check_outputs(arguments)
    with FeatureDatabase(arguments.db) as database:
        settings = database.settings
        seed = settings.seed if arguments.seed is None else arguments.seed
        index, _, reused = training.prepare_data(database, seed, new_split=arguments.new_split)
        print(f"Speaker split ({'stored, reused' if reused else f'new, seed {seed}'}):\n{describe_split(index)}", flush=True)
        subsets = {subset: index[index["subset"] == subset] for subset in ("train", "validation", "test")}
        train_rows = subsets["train"]
        normalisation = training.feature_statistics(database, train_rows["feature_id"], settings)
        class_weights = training.balanced_class_weights(
            train_rows["label"], training.window_counts(train_rows["frame_count"], settings.frames))
        print("Loading TensorFlow ...", flush=True)
        from acoustics import models, plots

        arguments.out.mkdir(parents=True, exist_ok=True)
        names = MODEL_CHOICES if arguments.model == "all" else (arguments.model,)
        results, trained = [], []

        def score_and_save(name, model, fit):
            scores = {subset: training.clip_scores(subsets[subset], models.predict_clips(model, database, subsets[subset], settings,
                                                                                    normalisation))
                      for subset in ("validation", "test")}
            scores.update(epochs=fit["epochs"], best_epoch=fit["best_epoch"], interrupted=fit["interrupted"], seed=seed,
                          training_seconds=round(fit["seconds"], 1), parameters=models.parameter_count(model))
            path = models.save_model(model, arguments.out / f"{name}.h5", {
                "model_name": name, "settings": settings, "normalisation": normalisation,
                "scores": scores, "history": fit["history"]})
            if fit["history"]:
                plots.plot_training_curves(fit["history"], arguments.out / f"{name}_training.png", f"{name}: training curves")
            plots.plot_confusion_matrix(scores["test"]["confusion"], list(training.CLASS_NAMES), arguments.out / f"{name}_confusion.png",
                                        f"{name}: test clips ({scores['test']['speakers']} speakers)")
            test = scores["test"]
            database.record_run(model=name, path=path, scores=scores, test_accuracy=test["accuracy"],
                                balanced_accuracy=test["balanced_accuracy"], test_speakers=test["speakers"],
                                epochs=fit["epochs"], training_seconds=fit["seconds"], parameters=scores["parameters"])
            results.append((name, path, scores))
            return path

        def train_one(name, network_seed):
            train = models.WindowBatches(arguments.db, train_rows, settings, normalisation, batch_size=arguments.batch_size,
                                         shuffle=True, seed=network_seed, class_weights=class_weights,
                                         babble=training.BABBLE_PROBABILITY)
            validation = models.WindowBatches(arguments.db, subsets["validation"], settings, normalisation, batch_size=256)
            model = models.build_model(name, settings, network_seed)
            return model, models.fit_model(model, train, validation, epochs=arguments.epochs)

        interrupted = "Stopped by Ctrl-C: saved the model as trained so far; the remaining models are skipped."
        for name in names:
            print(f"\n=== {name}: {models.training_plan(name, arguments.epochs)} ===", flush=True)
            model, fit = train_one(name, seed)
            path = score_and_save(name, model, fit)
            trained.append((name, model, fit))
            kept = "the last" if name in models.FIXED_EPOCHS else "the best"
            print(f"Saved {path} ({kept} epoch, {fit['best_epoch']} of {fit['epochs']}).", flush=True)
            if fit["interrupted"]:
                print(interrupted, flush=True)
                break
        if len(trained) == len(MODEL_CHOICES) and not any(fit["interrupted"] for _, _, fit in trained):
            # The mean of several ConvNets trained with different seeds beat every single network and the
            # mean of the three architectures on unseen speakers, and depended least on the seed
            # (bench/accuracy.py; models.ENSEMBLE_SIZE).
            members = [(model, fit) for name, model, fit in trained if name == models.ENSEMBLE_MODEL]
            for member_seed in range(seed + 1, seed + models.ENSEMBLE_SIZE):
                print(f"\n=== ensemble: one more {models.ENSEMBLE_MODEL} with seed {member_seed} "
                      f"({len(members) + 1} of {models.ENSEMBLE_SIZE}), {models.training_plan(models.ENSEMBLE_MODEL, arguments.epochs)} ===",
                      flush=True)
                members.append(train_one(models.ENSEMBLE_MODEL, member_seed))
                if members[-1][1]["interrupted"]:
                    print(interrupted, flush=True)
                    break
            else:
                ensemble = models.combine_models([model for model, _ in members], settings)
                path = score_and_save("ensemble", ensemble, {
                    "history": {}, "epochs": 0, "best_epoch": 0, "interrupted": False,
                    "seconds": sum(fit["seconds"] for _, fit in members)})
                print(f"Saved {path}: the mean of {len(members)} {models.ENSEMBLE_MODEL} models' probabilities "
                      f"(seeds {seed} to {seed + len(members) - 1}).", flush=True)

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
    print("Next: python implement_model.py")
    return 0


def summary_table(results, index):
    import pandas

    variants = training.variant_order(index)
    rows = []
    for name, _, scores in results:
        test = scores["test"]
        row = {"model": name, "accuracy": test["accuracy"]}
        row.update({variant: test["per_variant"].get(variant, float("nan")) for variant in variants})
        row.update({"balanced accuracy": test["balanced_accuracy"], "test speakers": test["speakers"],
                    "seconds": scores["training_seconds"], "parameters": scores["parameters"]})
        rows.append(row)
    return pandas.DataFrame(rows)


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    try:
        return check(arguments) if arguments.check else train_all(arguments)
    except AcousticsError as error:
        print(error, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nInterrupted; the models saved before this point are complete (saving is atomic).", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
