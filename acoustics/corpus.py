"""Find labelled recordings: a corpus gives a list of :class:`LabelledRecording` and of :class:`Skipped`.

Three kinds of corpus:

- the Saarbruecken Voice Database export: ``male_speech/`` and ``female_speech/`` folders of WAV files
  whose speaker id is the file name's prefix before ``-`` (``1234-phrase.wav`` -> speaker ``1234``);
- a CSV manifest with columns ``path,sex,speaker`` (``file,gender,speaker_id`` as in EmoDB's
  ``labels.csv`` are accepted too); paths are relative to the manifest's folder;
- the demo corpus (:mod:`acoustics.democorpus`), whose ``manifest.csv`` is read as any other manifest.

SVD zips are unpacked here too, with checks against zip bombs and paths that leave the folder.
"""

from __future__ import annotations

import io
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .audio import AUDIO_SUFFIXES
from .errors import AcousticsError, BadParameterError
from .inputs import check_readable_file
from .outputs import NAME_MAX, check_path_lengths, path_length_problem

SEX_LABELS = {"male": "male", "m": "male", "man": "male", "mann": "male", "maennlich": "male", "männlich": "male",
              "female": "female", "f": "female", "w": "female", "woman": "female", "frau": "female",
              "weiblich": "female"}
COLUMN_ALIASES = {"path": ("path", "file", "filename"), "sex": ("sex", "gender", "label"),
                  "speaker": ("speaker", "speaker_id", "speaker_name")}

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


#: The SVD zips hold a few hundred MB; anything that unpacks to more than this is refused (zip bomb).
MAX_UNPACKED_BYTES = 4 * 1024**3
MAX_MEMBERS = 100_000


#: Compression methods Python's zipfile reads: stored, deflated, bzip2, lzma.
READABLE_METHODS = {0: "stored", 8: "deflate", 12: "bzip2", 14: "lzma"}
UNREADABLE_METHODS = {9: "deflate64", 99: "AES encryption", 93: "zstandard", 95: "xz", 98: "PPMd"}


def check_zip_members(zip_path, members) -> None:
    """Refuse, with one line each, an SVD zip that cannot be unpacked whole: no audio file in it, an
    encrypted entry, a compression method Python cannot read, a name used for a file and a folder, a
    name part longer than NAME_MAX (255) bytes. Checked before anything is written."""
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
            if len(os.fsencode(part)) > NAME_MAX:
                raise AcousticsError(f"{zip_path}: the entry {member.filename[:60]!r}... has a name longer than {NAME_MAX} bytes, "
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
