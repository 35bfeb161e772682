"""Find labelled recordings, and make the synthetic demo corpus.

Three kinds of corpus, each giving a list of :class:`LabelledRecording`:

- the Saarbruecken Voice Database export: ``male_speech/`` and ``female_speech/`` folders of WAV files
  whose speaker id is the file name's prefix before ``-`` (``1234-phrase.wav`` -> speaker ``1234``);
- a CSV manifest with columns ``path,sex,speaker`` (``file,gender,speaker_id`` as in EmoDB's
  ``labels.csv`` are accepted too); paths are relative to the manifest's folder;
- the demo corpus, spoken by espeak-ng (and MBROLA voices where installed) into ``data/demo_corpus/``; where
  espeak-ng is missing, a demo corpus of real voices (EmoDB's actors in ``../shared/data``) instead.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .audio import AUDIO_SUFFIXES
from .errors import AcousticsError, BadParameterError
from .inputs import check_readable_file
from .outputs import check_path_lengths, path_length_problem
from .setup import espeak_program, install_command

SEX_LABELS = {"male": "male", "m": "male", "man": "male", "mann": "male", "maennlich": "male", "männlich": "male",
              "female": "female", "f": "female", "w": "female", "woman": "female", "frau": "female",
              "weiblich": "female"}
COLUMN_ALIASES = {"path": ("path", "file", "filename"), "sex": ("sex", "gender", "label"),
                  "speaker": ("speaker", "speaker_id", "speaker_name")}

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


@dataclass(frozen=True)
class LabelledRecording:
    """One audio file with its labels.

    ``source`` is the corpus name that namespaces ``speaker`` (a speaker is ``(source, speaker)``);
    ``listed`` says where the labels come from (``MANIFEST line N``; "" for the SVD layout).
    """

    path: Path
    sex: str
    speaker: str
    source: str
    synthetic: bool = False
    listed: str = field(default="", compare=False)


@dataclass(frozen=True)
class Skipped:
    """A file or manifest row that was not used, and why."""

    path: str
    reason: str


def normalise_sex(label) -> str | None:
    """'male' or 'female' for any common spelling, None for anything else."""
    return SEX_LABELS.get(str(label).strip().lower())


def audio_files(folder: Path) -> list:
    """Audio files under ``folder``, sorted; symbolic links to folders are not followed (no loops)."""
    found = []
    for directory, subdirectories, files in os.walk(folder, followlinks=False):
        subdirectories.sort()
        found.extend(Path(directory) / name for name in sorted(files) if Path(name).suffix.lower() in AUDIO_SUFFIXES)
    return found


def svd_folders(data_dir) -> list:
    """``[(sex, folder)]`` of the SVD export's layout under ``data_dir``: ``male_speech/``, ``female_speech/``."""
    return [(sex, Path(data_dir) / f"{sex}_speech") for sex in ("male", "female")]


def find_svd(data_dir) -> list:
    """Recordings of the SVD export under ``data_dir`` (``male_speech/``, ``female_speech/``)."""
    return [LabelledRecording(path, sex, path.stem.split("-")[0], "svd")
            for sex, folder in svd_folders(data_dir) if folder.is_dir() for path in audio_files(folder)]


def has_svd(data_dir) -> bool:
    return any(folder.is_dir() for _, folder in svd_folders(data_dir))


def find_listed(data_dir, manifests: Iterable, *, source: str | None = None) -> tuple:
    """``(recordings, skipped)`` of the SVD export under ``data_dir`` (if there is one) and of each of
    ``manifests`` (see :func:`read_manifest`; ``source`` names the corpus of all their speakers)."""
    recordings = find_svd(data_dir) if has_svd(data_dir) else []
    skipped = []
    for manifest in manifests:
        found, bad_rows = read_manifest(manifest, source=source)
        recordings += found
        skipped += bad_rows
    return recordings, skipped


#: Byte order marks and the encodings they announce (UTF-32 before UTF-16: its LE mark starts with UTF-16's).
BYTE_ORDER_MARKS = ((b"\xef\xbb\xbf", "utf-8-sig", "UTF-8"), (b"\xff\xfe\x00\x00", "utf-32", "UTF-32"),
                    (b"\x00\x00\xfe\xff", "utf-32", "UTF-32"), (b"\xff\xfe", "utf-16", "UTF-16"),
                    (b"\xfe\xff", "utf-16", "UTF-16"))


def manifest_text(manifest: Path) -> str:
    """The text of a manifest: UTF-8 (with or without a byte order mark), or UTF-16/UTF-32 with one.

    Anything else (Latin-1, Windows-1252, UTF-16 without a mark) raises :class:`BadParameterError`
    naming the file, the line, the encoding expected and the fix.
    """
    data = manifest.read_bytes()
    codec, name = "utf-8", "UTF-8"
    for mark, mark_codec, mark_name in BYTE_ORDER_MARKS:
        if data.startswith(mark):
            codec, name = mark_codec, mark_name
            break
    try:
        return data.decode(codec)
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1 if codec == "utf-8" else None
        where = f" at line {line}" if line else ""
        bad = data[error.start:error.start + 1].hex()
        guess = "; Latin-1 or Windows-1252?" if codec == "utf-8" else ""
        raise BadParameterError(
            f"{manifest}: is not {name} text (byte 0x{bad}{where}{guess}); "
            "save it as UTF-8 (e.g. 'CSV UTF-8' in a spreadsheet) and run again."
        ) from None


def path_too_long(path: Path) -> str:
    """Why ``path`` cannot name a file (:func:`acoustics.outputs.path_length_problem`) and the fix, or ""."""
    problem = path_length_problem(path)
    return f"{problem[0]}; {problem[1]}" if problem else ""


def read_manifest(manifest, *, source: str | None = None, synthetic: bool = False) -> tuple:
    """Read a CSV manifest; return ``(recordings, skipped)``.

    ``source`` is the corpus name of its speakers (default: the manifest's folder name), so that speaker
    "03" of two corpora stays two people and one corpus read through two manifests stays one.
    Rows with an unknown sex label or a missing file are skipped with a reason; a manifest without the
    needed columns raises :class:`BadParameterError`.
    """
    manifest = Path(manifest)
    table, columns = _manifest_table(manifest)
    source = source or manifest.parent.name or "manifest"
    recordings, skipped = [], []
    for row_number, row in enumerate(table.itertuples(index=False), start=2):
        values = dict(zip(table.columns, row))
        where = f"{manifest} line {row_number}"
        found = _manifest_row(values[columns["path"]], values[columns["sex"]], values[columns["speaker"]], manifest)
        if isinstance(found, str):
            skipped.append(Skipped(where, found))
        else:
            path, sex, speaker = found
            recordings.append(LabelledRecording(path, sex, speaker, source, synthetic, where))
    return recordings, skipped


def _manifest_table(manifest: Path) -> tuple:
    """``(table, columns)``: the manifest as a DataFrame of strings, and which of its columns holds each
    of ``path``, ``sex`` and ``speaker`` (by :data:`COLUMN_ALIASES`); raises :class:`BadParameterError`
    for a file that cannot be read or is not such a CSV table."""
    import pandas

    check_path_lengths([("--manifest", manifest)])
    check_readable_file(manifest, "--manifest", "a CSV manifest")
    try:
        text = manifest_text(manifest)
    except FileNotFoundError:
        raise BadParameterError(f"{manifest}: no such manifest; check the path.") from None
    except IsADirectoryError:
        raise BadParameterError(f"{manifest}: is a folder, not a CSV manifest; name the manifest file in it.") from None
    except OSError as error:
        raise BadParameterError(f"{manifest}: cannot be read ({error.strerror or type(error).__name__}); check its permissions.") from None
    try:
        table = pandas.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except Exception as error:
        raise BadParameterError(f"{manifest}: not a readable CSV manifest ({type(error).__name__}); it needs the columns path,sex,speaker.") from None
    lowered = {column.strip().lower(): column for column in table.columns}
    columns = {}
    for wanted, aliases in COLUMN_ALIASES.items():
        match = next((lowered[alias] for alias in aliases if alias in lowered), None)
        if match is None:
            raise BadParameterError(
                f"{manifest}: the manifest has no '{wanted}' column (it has: {', '.join(map(str, table.columns)) or 'none'}); "
                "it needs the columns path,sex,speaker."
            )
        columns[wanted] = match
    return table, columns


def _manifest_row(raw_path, sex_label, raw_speaker, manifest: Path):
    """``(path, sex, speaker)`` of one manifest row (a relative path is taken from the manifest's folder),
    or why the row is skipped: an empty path or speaker, an unknown sex label, a path too long."""
    raw_path, sex, speaker = str(raw_path).strip(), normalise_sex(sex_label), str(raw_speaker).strip()
    if not raw_path:
        return "empty path"
    if sex is None:
        return f"unknown sex label {sex_label!r} (use male or female)"
    if not speaker:
        return "empty speaker"
    path = Path(raw_path) if Path(raw_path).is_absolute() else manifest.parent / raw_path
    return path_too_long(path) or (path, sex, speaker)


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
                target = folder / "holdout" / f"{clip.sex}-{speaker}-{number}{clip.path.suffix.lower()}"
                temporary = target.with_name(f".{target.name}.tmp")
                shutil.copyfile(clip.path, temporary)
                os.replace(temporary, target)
        else:
            rows += [(str(clip.path.resolve()), clip.sex, speaker) for clip in _evenly(clips, REAL_DEMO_CLIPS)]
    source = source_manifest.parent.name or "real"
    (folder / REAL_DEMO_MARK).write_text(f"{source}\nReal voices from {source_manifest}, because espeak-ng is not installed.\n",
                                         encoding="utf-8")
    temporary_manifest = folder / ".manifest.csv.tmp"
    with open(temporary_manifest, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)
    os.replace(temporary_manifest, folder / "manifest.csv")  # written last: its presence means the corpus is whole
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


def _speak(text: str, path: Path, voice: str, pitch: int, speed: int) -> None:
    subprocess.run([espeak_program() or "espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(path), text],
                   check=True, capture_output=True, timeout=60)


def make_demo_corpus(folder, *, progress=None, real_voices: Path = REAL_DEMO_MANIFEST) -> Path:
    """Speak the demo corpus into ``folder`` (once) and return its manifest ``folder/manifest.csv``.

    Layout: ``male/`` and ``female/`` (training speakers), ``holdout/`` (voices no training speaker
    has, for stage 5), ``manifest.csv`` (path,sex,speaker). Existing files are reused. Where espeak-ng is
    missing, the demo is made of the real voices of the manifest ``real_voices`` instead
    (:func:`make_real_demo_corpus`); where that is missing too, :class:`AcousticsError` says how to get espeak-ng.
    """
    folder = Path(folder)
    manifest = folder / "manifest.csv"
    if manifest.exists():
        return manifest
    if espeak_program() is None:
        if Path(real_voices).exists():
            return make_real_demo_corpus(folder, Path(real_voices))
        raise AcousticsError(f"espeak-ng is not installed, so the demo corpus cannot be spoken; {install_command('espeak-ng')}; "
                             "or give recordings of real voices with --manifest FILE.")
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
            temporary = job[1].with_name(f".{job[1].name}.tmp.wav")
            _speak(job[0], temporary, *job[2:])
            os.replace(temporary, job[1])
    temporary_manifest = folder / ".manifest.csv.tmp"
    temporary_manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")
    os.replace(temporary_manifest, manifest)  # written last: its presence means the corpus is whole
    return manifest


#: The SVD zips hold a few hundred MB; anything that unpacks to more than this is refused (zip bomb).
MAX_UNPACKED_BYTES = 4 * 1024**3
MAX_MEMBERS = 100_000


#: Compression methods Python's zipfile reads: stored, deflated, bzip2, lzma.
READABLE_METHODS = {0: "stored", 8: "deflate", 12: "bzip2", 14: "lzma"}
UNREADABLE_METHODS = {9: "deflate64", 99: "AES encryption", 93: "zstandard", 95: "xz", 98: "PPMd"}


def check_zip_members(zip_path, members) -> None:
    """Refuse, with one line each, an SVD zip that cannot be unpacked whole: no audio file in it, an
    encrypted entry, a compression method Python cannot read, a name used for a file and a folder, a
    name part longer than 255 bytes. Checked before anything is written."""
    files = [member for member in members if not member.is_dir()]
    if not any(Path(member.filename).suffix.lower() in AUDIO_SUFFIXES for member in files):
        what = "is empty" if not members else f"holds no audio files ({len(files)} other files)"
        raise AcousticsError(f"{zip_path}: {what}, so it is not an SVD export; download male_speech.zip / "
                             "female_speech.zip again (the export's WAV files) and run again.")
    for member in members:
        if member.flag_bits & 0x1 or member.compress_type == 99:
            raise AcousticsError(f"{zip_path}: the entry {member.filename!r} is encrypted (needs a password); "
                                 "unpack it by hand into a folder of the same name without .zip, then run again.")
        if member.compress_type not in READABLE_METHODS:
            method = UNREADABLE_METHODS.get(member.compress_type, f"method {member.compress_type}")
            raise AcousticsError(f"{zip_path}: the entry {member.filename!r} uses a compression ({method}) Python cannot "
                                 "read; unpack it by hand (e.g. with 7z) into a folder of the same name without .zip, then run again.")
        for part in Path(member.filename).parts:
            if len(os.fsencode(part)) > 255:
                raise AcousticsError(f"{zip_path}: the entry {member.filename[:60]!r}... has a name longer than 255 bytes, "
                                     "more than a file system allows; rename it in the zip or unpack it by hand.")
    file_names = {Path(member.filename) for member in files}
    folders = {parent for member in members for parent in Path(member.filename).parents} | {
        Path(member.filename) for member in members if member.is_dir()}
    clash = sorted(file_names & folders)
    if clash:
        raise AcousticsError(f"{zip_path}: {clash[0].as_posix()!r} is both a file and a folder in the zip; "
                             "download it again or unpack it by hand.")


def unpack_svd_zip(zip_path, target) -> Path:
    """Unpack an SVD export zip (``male_speech.zip``) safely into the folder ``target``.

    Members that are absolute, climb out with ``..`` or are links are refused, as is an archive that
    would unpack to more than :data:`MAX_UNPACKED_BYTES` (counted while unpacking, not trusted from the
    header). It unpacks into a temporary folder first and renames it at the end, so ``target`` appears
    whole or not at all. The export's single top folder (``export/``) is dropped.
    """
    import zipfile

    zip_path, target = Path(zip_path), Path(target)
    if target.exists():
        return target
    temporary = target.with_name(f".{target.name}.unpacking")
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        with zipfile.ZipFile(zip_path) as archive:
            members = archive.infolist()
            _check_member_paths(zip_path, members)
            check_zip_members(zip_path, members)
            _extract(archive, members, temporary, zip_path)
    except zipfile.BadZipFile:
        shutil.rmtree(temporary, ignore_errors=True)
        raise AcousticsError(f"{zip_path}: not a complete zip file (download cut short?); download it again.") from None
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    entries = list(temporary.iterdir()) if temporary.exists() else []
    root = entries[0] if len(entries) == 1 and entries[0].is_dir() else temporary
    os.replace(root, target)
    shutil.rmtree(temporary, ignore_errors=True)
    return target


def _check_member_paths(zip_path, members) -> None:
    """Refuse a zip of more than :data:`MAX_MEMBERS` entries, or with an entry that is absolute, climbs
    out with ``..`` or is a link."""
    import stat

    if len(members) > MAX_MEMBERS:
        raise AcousticsError(f"{zip_path}: holds {len(members)} entries, more than an SVD export; unpack it by hand.")
    for member in members:
        name = Path(member.filename)
        if name.is_absolute() or ".." in name.parts or member.filename.startswith(("/", "\\")):
            raise AcousticsError(f"{zip_path}: the entry {member.filename!r} points outside the folder; refusing to unpack it.")
        if stat.S_ISLNK(member.external_attr >> 16):
            raise AcousticsError(f"{zip_path}: the entry {member.filename!r} is a link; refusing to unpack it.")


def _extract(archive, members, folder: Path, zip_path) -> None:
    """Write the checked ``members`` of ``archive`` under ``folder``, counting the bytes written: more
    than :data:`MAX_UNPACKED_BYTES` (a damaged file or a zip bomb) raises :class:`AcousticsError`."""
    written = 0
    for member in members:
        destination = folder / Path(member.filename)
        if member.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(member) as source, open(destination, "wb") as sink:
            for block in iter(lambda: source.read(1 << 20), b""):
                written += len(block)
                if written > MAX_UNPACKED_BYTES:
                    raise AcousticsError(
                        f"{zip_path}: unpacks to more than {MAX_UNPACKED_BYTES / 1024**3:.0f} GB, far more than "
                        "an SVD export (a damaged file or a zip bomb); download it again."
                    )
                sink.write(block)


def unpack_svd_zips(data_dir) -> list:
    """Unpack ``male_speech.zip`` / ``female_speech.zip`` in ``data_dir`` where the folder is missing."""
    unpacked = []
    for _, folder in svd_folders(data_dir):
        archive = folder.with_name(f"{folder.name}.zip")
        if archive.is_file() and folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
            folder.rmdir()  # left empty by an older version from a zip without audio: it must not block this zip
        if archive.is_file() and not folder.exists():
            unpacked.append(unpack_svd_zip(archive, folder))
    return unpacked


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
            temporary = path.with_name(f".{path.name}.tmp.wav")
            _speak(BABBLE_TEXT, temporary, voice, pitch, speed)
            os.replace(temporary, path)
        paths.append(path)
    return paths
