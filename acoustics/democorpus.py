"""The demo corpus and the babble talkers, spoken by espeak-ng: voices for a workshop without a corpus.

The demo corpus is 41 German synthetic speakers (21 male, 20 female; MBROLA voices too where installed),
four sentences each, and four held-out voices for stage 5; where espeak-ng is missing, a demo corpus of
real voices (EmoDB's actors in ``../shared/data``) instead. The babble talkers are six voices of other
languages that the benchmarks mix into babble. Every file is written under a temporary name and renamed
into place, and a corpus's ``manifest.csv`` last, so a corpus with a manifest is whole.
"""

from __future__ import annotations

import contextlib
import csv
import shutil
import subprocess
from pathlib import Path

from .corpus import read_manifest
from .errors import AcousticsError, shown
from .outputs import replaced_atomically
from .setup import espeak_program, install_command

DEMO_SENTENCES = (
    "Guten Morgen, wie geht es Ihnen",
    "Ich komme heute etwas später nach Hause",
    "Das Wetter ist schön, wir gehen spazieren",
    "Können Sie mir bitte den Weg zum Bahnhof zeigen",
)
#: Demo speakers: (voice, pitch, speed). 21 male and 20 female synthetic speakers.
DEMO_MALE = tuple((f"de+m{variant}", pitch, 140 + 10 * variant) for variant in range(1, 8) for pitch in (25, 40, 55))
DEMO_FEMALE = tuple((f"de+f{variant}", pitch, 135 + 12 * variant) for variant in range(1, 6) for pitch in (45, 57, 69, 80))
#: Held-out voices for stage 5's demo: pitches and speeds no demo speaker has.
DEMO_HOLDOUT = (("de+m2", 33, 165, "male"), ("de+m6", 48, 150, "male"), ("de+f3", 63, 160, "female"), ("de+f1", 52, 175, "female"))
HOLDOUT_SENTENCE = "Hallo, wie geht es Ihnen heute"
#: MBROLA German voices (optional) and their sex.
MBROLA_VOICES = {"mb-de1": "female", "mb-de2": "male", "mb-de3": "female", "mb-de4": "male",
                 "mb-de5": "female", "mb-de6": "male", "mb-de7": "female"}

#: The real voices the demo is made of where espeak-ng is missing: EmoDB's ten actors beside the repository.
REAL_DEMO_MANIFEST = Path(__file__).resolve().parents[2] / "shared" / "data" / "emodb" / "labels.csv"
#: Clips of each training speaker in such a demo, and of each of its two holdout speakers (one per sex).
REAL_DEMO_CLIPS = 12
REAL_DEMO_HOLDOUT_CLIPS = 3
#: The file that marks a demo corpus of real voices; it holds the corpus name of their speakers.
REAL_DEMO_MARK = "real_voices.txt"


def demo_source(folder) -> tuple:
    """``(source, synthetic)`` of the demo corpus in ``folder``: ("demo", True) for espeak-ng's voices, or the
    real corpus's name and False."""
    mark = Path(folder) / REAL_DEMO_MARK
    if mark.exists():
        return mark.read_text(encoding="utf-8").split()[0], False
    return "demo", True


def make_real_demo_corpus(folder: Path, source_manifest: Path) -> Path:
    """A demo corpus of real voices in ``folder``: the last speaker of each sex of ``source_manifest`` (by
    speaker name) gives :data:`REAL_DEMO_HOLDOUT_CLIPS` clips copied into ``holdout/``; every other speaker
    gives :data:`REAL_DEMO_CLIPS` clips, listed (not copied) in ``manifest.csv``. Returns the manifest."""
    recordings, _ = read_manifest(source_manifest)
    by_speaker = {}
    for recording in sorted(recordings, key=lambda item: (item.speaker, str(item.path))):
        by_speaker.setdefault(recording.speaker, []).append(recording)
    holdout = {sex: max(speaker for speaker, clips in by_speaker.items() if clips[0].sex == sex) for sex in ("male", "female")
               if any(clips[0].sex == sex for clips in by_speaker.values())}
    (folder / "holdout").mkdir(parents=True, exist_ok=True)
    rows = [("path", "sex", "speaker")]
    for speaker, clips in by_speaker.items():
        if speaker in holdout.values():
            for number, clip in enumerate(_evenly(clips, REAL_DEMO_HOLDOUT_CLIPS), start=1):
                with _written(folder / "holdout" / f"{clip.sex}-{speaker}-{number}{clip.path.suffix.lower()}") as temporary:
                    shutil.copyfile(clip.path, temporary)
        else:
            rows += [(str(clip.path.resolve()), clip.sex, speaker) for clip in _evenly(clips, REAL_DEMO_CLIPS)]
    source = source_manifest.parent.name or "real"
    (folder / REAL_DEMO_MARK).write_text(f"{source}\nReal voices from {source_manifest}, because espeak-ng is not installed.\n",
                                         encoding="utf-8")
    with _written(folder / "manifest.csv") as temporary:  # written last: its presence means the corpus is whole
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            csv.writer(handle, lineterminator="\n").writerows(rows)
    return folder / "manifest.csv"


def _evenly(items: list, count: int) -> list:
    """``count`` of ``items`` spread evenly over them (all of them if there are fewer)."""
    if len(items) <= count:
        return list(items)
    return [items[round(index * (len(items) - 1) / (count - 1))] for index in range(count)] if count > 1 else items[:1]


def mbrola_voices() -> dict:
    """The optional MBROLA German voices that are installed: {voice: sex}."""
    return {voice: sex for voice, sex in MBROLA_VOICES.items()
            if Path(f"/usr/share/mbrola/{voice[3:]}/{voice[3:]}").exists()}


@contextlib.contextmanager
def _written(path: Path):
    """:func:`acoustics.outputs.replaced_atomically` for one file of a corpus: a disk that refuses it, or an
    espeak-ng that fails to speak it, is one line (:class:`AcousticsError`), and nothing half-written stays."""
    try:
        with replaced_atomically(path) as temporary:
            yield temporary
    except OSError as error:
        raise AcousticsError(f"Cannot write {shown(path)} ({error.strerror or error}); free some space in "
                             f"{shown(path.parent)} and run again.") from None
    except subprocess.CalledProcessError as error:
        said = (error.stderr or b"").decode(errors="replace").strip().splitlines()
        raise AcousticsError(f"espeak-ng could not speak {shown(path.name)} ({shown(said[-1]) if said else f'exit status {error.returncode}'}); "
                             "check it with 'espeak-ng --version' and run again.") from None
    except subprocess.TimeoutExpired:
        raise AcousticsError(f"espeak-ng took over a minute to speak {shown(path.name)}; check it with 'espeak-ng --version' "
                             "and run again.") from None


def _speak(text: str, path: Path, voice: str, pitch: int, speed: int) -> None:
    subprocess.run([espeak_program() or "espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(path), text],
                   check=True, capture_output=True, timeout=60)


def make_demo_corpus(folder, *, progress=None, real_voices: Path = REAL_DEMO_MANIFEST, announce=None) -> Path:
    """Speak the demo corpus into ``folder`` (once) and return its manifest ``folder/manifest.csv``.

    Layout: ``male/`` and ``female/`` (training speakers), ``holdout/`` (voices no training speaker
    has, for stage 5), ``manifest.csv`` (path,sex,speaker). Existing files are reused. Where espeak-ng is
    missing, the demo is made of the real voices of the manifest ``real_voices`` instead
    (:func:`make_real_demo_corpus`); where that is missing too, :class:`AcousticsError` says how to get espeak-ng.
    ``announce(sentence)``, if given, hears which of the two is about to be made (nothing when it exists).
    """
    folder = Path(folder)
    manifest = folder / "manifest.csv"
    if manifest.exists():
        return manifest
    announce = announce or (lambda sentence: None)
    if espeak_program() is None:
        if Path(real_voices).exists():
            announce(f"espeak-ng is not installed ({install_command('espeak-ng')}), so the demo corpus is made of the "
                     f"real voices in {Path(real_voices).parent} instead: {folder} ...")
            return make_real_demo_corpus(folder, Path(real_voices))
        raise AcousticsError(f"espeak-ng is not installed, so the demo corpus cannot be spoken; {install_command('espeak-ng')}; "
                             "or give recordings of real voices with --manifest FILE.")
    announce(f"Speaking the demo corpus into {folder} with espeak-ng (once) ...")
    speakers = [(voice, pitch, speed, "male") for voice, pitch, speed in DEMO_MALE]
    speakers += [(voice, pitch, speed, "female") for voice, pitch, speed in DEMO_FEMALE]
    for voice, sex in mbrola_voices().items():
        speakers += [(voice, pitch, 150, sex) for pitch in ((35, 50) if sex == "male" else (50, 65))]
    rows = ["path,sex,speaker"]
    jobs = []
    for voice, pitch, speed, sex in speakers:
        speaker = f"{voice.replace('+', '-')}-p{pitch}"
        for number, sentence in enumerate(DEMO_SENTENCES, start=1):
            relative = Path(sex) / f"{speaker}-{number}.wav"
            jobs.append((sentence, folder / relative, voice, pitch, speed))
            rows.append(f"{relative.as_posix()},{sex},{speaker}")
    for voice, pitch, speed, sex in DEMO_HOLDOUT:
        jobs.append((HOLDOUT_SENTENCE, folder / "holdout" / f"{sex}-{voice.replace('+', '-')}-p{pitch}.wav", voice, pitch, speed))
    for job in jobs if progress is None else progress(jobs):
        job[1].parent.mkdir(parents=True, exist_ok=True)
        if not job[1].exists():
            with _written(job[1]) as temporary:
                _speak(job[0], temporary, *job[2:])
    with _written(manifest) as temporary:  # written last: its presence means the corpus is whole
        temporary.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return manifest


#: Babble talkers (voice, pitch, speed, sex): espeak-ng voices of other languages than the demo
#: corpus's German ones, half male, half female, each reading a few sentences (see make_babble_voices).
BABBLE_TALKERS = (("en+m3", 40, 170, "male"), ("fr+m4", 30, 160, "male"), ("it+m2", 50, 175, "male"),
                  ("en+f2", 65, 165, "female"), ("fr+f4", 70, 170, "female"), ("it+f3", 60, 160, "female"))
BABBLE_TEXT = ("One, two, three, the quick brown fox jumps over the lazy dog while everybody keeps talking. "
               "Meanwhile at the station the trains were late again, and nobody knew why.")


def make_babble_voices(folder) -> list:
    """Speak :data:`BABBLE_TALKERS` with espeak-ng into ``folder`` (once): the WAV paths, one per talker.

    Mix them with :func:`acoustics.mixing.babble_noise` to get babble (several voices at once).
    """
    folder = Path(folder)
    if espeak_program() is None:
        raise AcousticsError(f"espeak-ng is not installed, so no babble can be spoken; {install_command('espeak-ng')}.")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for voice, pitch, speed, sex in BABBLE_TALKERS:
        path = folder / f"babble-{sex}-{voice.replace('+', '-')}-p{pitch}.wav"
        if not path.exists():
            with _written(path) as temporary:
                _speak(BABBLE_TEXT, temporary, voice, pitch, speed)
        paths.append(path)
    return paths
