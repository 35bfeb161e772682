"""Audio in and out: load any file to float32 mono at the settings' rate, check it, trim, mix noise.

Files are read by libsndfile (WAV, FLAC, Ogg Vorbis and Opus, MP3, AIFF ...) and, where it cannot read them,
by FFmpeg inside PyAV's wheels (m4a/AAC voice memos, mp4, mov, webm and mkv videos' sound track, wma, amr ...).
Both give the same blocks to the same downmix and resampler (:func:`mono_blocks`).

All signals are 1-D ``numpy.float32`` arrays in [-1, 1]; all durations are in seconds; levels in dBFS
(0 dBFS is a full-scale sine's RMS times sqrt(2), i.e. RMS 1.0).
"""

from __future__ import annotations

import errno
import functools
import math
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile

from .errors import BadAudioError

#: The suffixes a folder (or an SVD zip) is searched for: what libsndfile or FFmpeg reads. Any other file named
#: on the command line is tried too.
AUDIO_SUFFIXES = frozenset({
    ".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".aifc", ".au", ".caf",  # libsndfile
    ".m4a", ".aac", ".mp4", ".m4b", ".mov", ".3gp", ".webm", ".mkv", ".mka", ".wma", ".amr",  # FFmpeg
})
#: The FFmpeg demuxers a file may be read with: plain audio and video containers. Playlists, concat lists and
#: other formats that open further files or URLs are never used.
FFMPEG_DEMUXERS = "mov,matroska,mp3,ogg,aac,wav,flac,asf,amr,caf,aiff,au,w64"
#: Files longer than this (in seconds) are refused before they are read.
MAX_FILE_SECONDS = 600.0
#: Files of a higher sample rate (Hz) or more channels are refused from their header: nothing recorded
#: for speech needs more, and a header may claim anything.
MAX_SAMPLE_RATE = 192_000
#: Lowest sample rate read (Hz): below it the voice's own band is gone (telephones record at 8000), and a
#: header that says less (1 Hz) is damaged, not speech.
MIN_SAMPLE_RATE = 4000
MAX_CHANNELS = 8
#: Files are decoded, downmixed and resampled this many seconds at a time, so that memory holds a few
#: blocks and the output (at most 600 s at 16 kHz mono: 38 MB), not the whole decoded file.
BLOCK_SECONDS = 1.0
#: Every signal read (a file, the microphone) goes through a first-order high-pass at this frequency (Hz), which
#: takes out a DC offset: some microphones and recordings sit off zero, and the offset would count as loudness in
#: the lowest mel band and in each window's level. Speech (from 60 Hz) passes within 0.2 dB.
DC_CUTOFF_HZ = 10.0
#: A signal whose RMS level is below this (dBFS) is nearly silent: stage 2 warns about such a noise.
SILENCE_DBFS = -60.0
#: A signal whose RMS level is below this (dBFS; under one step of 16-bit audio) holds no sound.
NO_SOUND_DBFS = -90.0
#: A sample at or above this magnitude counts as clipped ...
CLIP_LEVEL = 0.98
#: ... a signal with more than this fraction of clipped samples gets a note (a warning in stage 2; more than
#: speechcheck.CLIP_REFUSED_FRACTION is refused).
CLIP_FRACTION = 0.005


@dataclass(frozen=True)
class AudioInfo:
    """What a file held before conversion."""

    path: str
    sample_rate: int
    channels: int
    #: From the header; an estimate from the stated duration for FFmpeg's containers (0 when none is stated).
    frames: int
    subtype: str
    #: "libsndfile" or "ffmpeg": which library decodes the file.
    decoder: str = "libsndfile"

    @property
    def duration_seconds(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def probe(path, *, max_seconds: float = MAX_FILE_SECONDS) -> AudioInfo:
    """Read only the header of ``path``; raise :class:`BadAudioError` if it is not usable audio."""
    path = Path(path)
    if not path.exists():
        raise BadAudioError(f"{path}: no such file; check the path.")
    if path.is_dir():
        raise BadAudioError(f"{path}: is a folder, not an audio file.")
    if not path.is_file():  # a FIFO, a device or a socket: read, it might never end
        raise BadAudioError(f"{path}: is not a regular file (a FIFO, a device or a socket); save the recording "
                            "to a file and give that.")
    if path.stat().st_size == 0:
        raise BadAudioError(f"{path}: the file is empty (0 bytes); record or copy it again.")
    try:
        info = soundfile.info(str(path))
    except Exception:  # libsndfile raises its own error types, and RuntimeError/TypeError on odd headers
        return _probe_ffmpeg(path, max_seconds)
    _check_format(path, int(info.channels), int(info.samplerate))
    if info.frames <= 0:
        raise BadAudioError(f"{path}: the file holds no samples; record or copy it again.")
    if info.format in ("WAV", "WAVEX"):
        declared = re.search(r"^data\s*:\s*(\d+) \(should be \d+\)", info.extra_info, re.MULTILINE)
        if declared and int(declared.group(1)) not in (0, 0xFFFFFFFF):  # 0 and 0xFFFFFFFF: streamed WAVs
            raise BadAudioError(f"{path}: the file is cut short (its header promises more audio than it holds); "
                                "copy or export it again.")
    duration = info.frames / info.samplerate
    if duration > max_seconds:
        raise _too_long(path, duration, max_seconds)
    return AudioInfo(str(path), int(info.samplerate), int(info.channels), int(info.frames), str(info.subtype))


def _check_format(path, channels: int, sample_rate: int) -> None:
    """Refuse a header that declares no channels or no rate, or more than the limits."""
    if channels < 1 or sample_rate < 1:
        raise BadAudioError(f"{path}: the header declares {channels} channels at {sample_rate} Hz; re-export the file.")
    if sample_rate < MIN_SAMPLE_RATE:
        raise BadAudioError(f"{path}: the header says {sample_rate} Hz, below the {MIN_SAMPLE_RATE} Hz that speech needs "
                            "(telephones use 8000); the header is damaged or the file was exported wrongly: export it "
                            "again at 16000 Hz.")
    if sample_rate > MAX_SAMPLE_RATE or channels > MAX_CHANNELS:
        raise BadAudioError(
            f"{path}: {channels} channels at {sample_rate} Hz, above the limit of {MAX_CHANNELS} channels at "
            f"{MAX_SAMPLE_RATE} Hz; convert it to mono 16 kHz, e.g. 'sox \"{path}\" -r 16000 -c 1 out.wav'."
        )


def _too_long(path, seconds: float, max_seconds: float) -> BadAudioError:
    return BadAudioError(
        f"{path}: {_minutes(seconds)} long, above the limit of {_minutes(max_seconds)}; "
        "cut it into shorter clips (e.g. with 'sox in.wav out.wav trim 0 60 : newfile : restart')."
    )


def _open_ffmpeg(handle):
    """An FFmpeg container reading the open binary file ``handle``, with only :data:`FFMPEG_DEMUXERS`."""
    import av  # imported here: 0.1 s that libsndfile's files never pay

    return av.open(handle, options={"format_whitelist": FFMPEG_DEMUXERS})


def _probe_ffmpeg(path: Path, max_seconds: float) -> AudioInfo:
    """:func:`probe` for a file libsndfile cannot read: its first sound track, as FFmpeg sees it."""
    try:
        with open(path, "rb") as handle, _open_ffmpeg(handle) as container:
            tracks = container.streams.audio
            if not tracks:
                raise BadAudioError(f"{path}: holds no sound track (a video without sound?); record or export it again with sound.")
            track = tracks[0]
            channels, sample_rate = len(track.layout.channels), int(track.rate or 0)
            if track.duration:
                seconds = float(track.duration * track.time_base)
            else:
                seconds = container.duration / 1_000_000 if container.duration else 0.0
            codec = track.codec_context.name
    except BadAudioError:
        raise
    except Exception:  # FFmpeg's error types for what no demuxer reads, and OSError
        raise BadAudioError(
            f"{path}: not a readable audio file (corrupt, or neither audio nor video); convert it to WAV, e.g. "
            f"'sox \"{path}\" -r 16000 -c 1 out.wav', or export it again."
        ) from None
    _check_format(path, channels, sample_rate)
    if seconds > max_seconds:
        raise _too_long(path, seconds, max_seconds)
    return AudioInfo(str(path), sample_rate, channels, int(round(seconds * sample_rate)), codec.upper(), "ffmpeg")


class DCBlocker:
    """Takes the DC offset out of a signal fed in blocks of any size: the first-order high-pass
    ``y[n] = g (x[n] - x[n-1]) + p y[n-1]`` with its pole ``p`` at :data:`DC_CUTOFF_HZ` and unit gain ``g``
    at the Nyquist frequency, its state carried from block to block (the blocks give what the whole signal
    gives). It starts settled on the first sample, so a signal that starts off zero has no step at its start.
    Returns float32 clipped to [-1, 1].

    Written with numpy (the recursion in closed form over pieces of :attr:`PIECE` samples) because
    ``scipy.signal`` takes 0.6 s to import, which stage 5's start would pay; ``tests/test_audio.py`` checks
    it against ``scipy.signal.lfilter``.
    """

    PIECE = 16384  # about a second at 16 kHz: pole**-PIECE stays far inside float64 (e**64 at 10 Hz)

    def __init__(self, sample_rate: int) -> None:
        self.pole = math.exp(-2.0 * math.pi * DC_CUTOFF_HZ / sample_rate)
        self.gain = (1.0 + self.pole) / 2.0
        self._powers, self._inverse = _pole_powers(self.pole, self.PIECE)
        self._last_input = None
        self._last_output = 0.0

    def __call__(self, block: np.ndarray) -> np.ndarray:
        block = np.asarray(block, dtype=np.float64).ravel()
        output = np.empty(block.size, dtype=np.float64)
        if block.size and self._last_input is None:
            self._last_input = block[0]
        for start in range(0, block.size, self.PIECE):
            piece = block[start:start + self.PIECE]
            size = piece.size
            steps = self.gain * np.diff(piece, prepend=self._last_input)
            powers = self._powers[:size]
            output[start:start + size] = powers * (self.pole * self._last_output + np.cumsum(steps * self._inverse[:size]))
            self._last_input, self._last_output = piece[-1], output[start + size - 1]
        return np.clip(output, -1.0, 1.0).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _pole_powers(pole: float, count: int) -> tuple:
    """``pole ** n`` and its inverse for n < ``count`` (read-only): one pair per sample rate, not per file."""
    powers = pole ** np.arange(count, dtype=np.float64)
    inverse = 1.0 / powers
    powers.flags.writeable = inverse.flags.writeable = False
    return powers, inverse


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} minutes" if seconds >= 120 else f"{seconds:.0f} seconds"


def resample(signal: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample a float32 mono signal from ``from_rate`` to ``to_rate`` Hz (soxr, high quality)."""
    if from_rate == to_rate:
        return signal.astype(np.float32, copy=False)
    import soxr  # a dependency of librosa; far faster than a per-file scipy filter design

    return soxr.resample(signal, from_rate, to_rate, quality="HQ").astype(np.float32, copy=False)


def load_audio(path, sample_rate: int, *, max_seconds: float = MAX_FILE_SECONDS) -> tuple:
    """Load ``path`` as float32 mono at ``sample_rate`` Hz.

    Any format libsndfile or FFmpeg reads (WAV of 8 to 32 bits, integer or float, FLAC, OGG, MP3, m4a ...), up to
    :data:`MAX_CHANNELS` channels (averaged) at up to :data:`MAX_SAMPLE_RATE` Hz (resampled). It is
    decoded :data:`BLOCK_SECONDS` at a time, so memory grows with the output, not with the file's rate
    or channel count. Returns ``(signal, AudioInfo)``. Raises :class:`BadAudioError` with the file name
    and the fix when the file is unusable, or too large to fit in memory.
    """
    info = probe(path, max_seconds=max_seconds)
    try:
        signal = _decode(info, sample_rate, max_seconds)
    except MemoryError:
        raise BadAudioError(
            f"{path}: too large to fit in memory ({info.channels} channels at {info.sample_rate} Hz, "
            f"{_minutes(info.duration_seconds)}); convert it to mono 16 kHz or cut it into shorter clips."
        ) from None
    if signal.size == 0:
        raise BadAudioError(f"{path}: the file holds no samples; record or copy it again.")
    return signal, info


def _decode(info: AudioInfo, sample_rate: int, max_seconds: float) -> np.ndarray:
    """The file of ``info`` as one float32 mono array at ``sample_rate`` Hz (:func:`mono_blocks`)."""
    pieces = list(mono_blocks(info, sample_rate, max_seconds=max_seconds))
    return np.concatenate(pieces).astype(np.float32, copy=False) if pieces else np.zeros(0, dtype=np.float32)


def mono_blocks(info: AudioInfo, sample_rate: int, *, max_seconds: float = math.inf,
                block_seconds: float = BLOCK_SECONDS) -> Iterator[np.ndarray]:
    """Yield the file of ``info`` (from :func:`probe`) as float32 mono blocks at ``sample_rate`` Hz, about
    ``block_seconds`` each: channels averaged, clipped to [-1, 1] (float files may exceed full scale
    slightly), rid of any DC offset (:class:`DCBlocker`) and resampled by soxr's stream (high quality, no
    seams between blocks). Memory holds a block,
    whatever the file's length. Raises :class:`BadAudioError` for NaN or infinite samples, or once more than
    ``max_seconds`` of audio has been decoded (a container may state no duration, or a wrong one), and for
    data that libsndfile or FFmpeg finds corrupt or cut short."""
    try:
        yield from _mono_blocks(info, sample_rate, max_seconds, block_seconds)
    except (BadAudioError, MemoryError):
        raise
    except Exception:  # libsndfile's and FFmpeg's own error types for corrupt data
        raise BadAudioError(f"{info.path}: the audio data is corrupt or cut short; copy or export the file again.") from None


def _mono_blocks(info: AudioInfo, sample_rate: int, max_seconds: float, block_seconds: float) -> Iterator[np.ndarray]:
    """:func:`mono_blocks` without its translation of the decoders' errors."""
    import soxr  # a dependency of librosa; far faster than a per-file scipy filter design

    stream = None
    if info.sample_rate != sample_rate:
        stream = soxr.ResampleStream(info.sample_rate, sample_rate, 1, dtype="float32", quality="HQ")
    block_frames = max(1024, int(info.sample_rate * block_seconds))
    limit, decoded = max_seconds * info.sample_rate, 0
    blocker = DCBlocker(info.sample_rate)  # before resampling: it settles on the file's own first sample
    for block in (_ffmpeg_blocks if info.decoder == "ffmpeg" else _libsndfile_blocks)(info, block_frames):
        decoded += block.shape[0]
        if decoded > limit:
            raise _too_long(info.path, decoded / info.sample_rate, max_seconds)
        if not np.isfinite(block).all():
            raise BadAudioError(f"{info.path}: holds NaN or infinite samples; re-export it as 16-bit PCM WAV.")
        mono = blocker(np.clip(block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0], -1.0, 1.0))
        if stream is not None:
            mono = stream.resample_chunk(mono)
        if mono.size:
            yield np.ascontiguousarray(mono, dtype=np.float32)
    if stream is not None:
        tail = stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        if tail.size:
            yield tail.astype(np.float32, copy=False)


def _libsndfile_blocks(info: AudioInfo, block_frames: int) -> Iterator[np.ndarray]:
    """``(frames, channels)`` float32 blocks of ``block_frames`` read by libsndfile."""
    with soundfile.SoundFile(info.path) as handle:
        yield from handle.blocks(blocksize=block_frames, dtype="float32", always_2d=True)


def _ffmpeg_blocks(info: AudioInfo, block_frames: int) -> Iterator[np.ndarray]:
    """``(frames, channels)`` float32 blocks of at least ``block_frames`` (the last one shorter) of the first
    sound track, decoded by FFmpeg and converted to interleaved float32 at the track's rate and layout."""
    import av

    with open(info.path, "rb") as handle, _open_ffmpeg(handle) as container:
        track = container.streams.audio[0]
        converter = av.AudioResampler(format="flt", layout=track.layout, rate=info.sample_rate)
        pieces, held = [], 0
        for frame in _with_end(container.decode(track)):
            for piece in converter.resample(frame):
                pieces.append(piece.to_ndarray().reshape(-1, info.channels))
                held += pieces[-1].shape[0]
            if held >= block_frames:
                yield np.concatenate(pieces)
                pieces, held = [], 0
        if pieces:
            yield np.concatenate(pieces)


def _with_end(frames):
    """``frames``, then None (which flushes FFmpeg's resampler)."""
    yield from frames
    yield None


def level_dbfs(signal: np.ndarray) -> float:
    """RMS level of ``signal`` in dBFS (-inf for digital silence)."""
    if signal.size == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(np.square(signal, dtype=np.float64))))
    return 20 * np.log10(rms) if rms > 0 else float("-inf")


def clipped_fraction(signal: np.ndarray) -> float:
    """Fraction of samples at or above :data:`CLIP_LEVEL` in magnitude."""
    return float(np.mean(np.abs(signal) >= CLIP_LEVEL)) if signal.size else 0.0


def trim_silence(signal: np.ndarray, top_db: float) -> np.ndarray:
    """Cut leading and trailing parts quieter than ``top_db`` below the peak.

    The same cut as ``librosa.effects.trim(signal, top_db=top_db, frame_length=1024, hop_length=256)``
    (frame RMS with centred, zero-padded frames, in dB relative to the loudest frame), written with the
    same float32 numpy operations: importing librosa.effects costs about 2 s per process, and its first
    call another second.
    """
    if signal.size < 2048:
        return signal
    frame_length, hop_length = 1024, 256
    padded = np.pad(signal, frame_length // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, frame_length)[::hop_length]
    rms = np.sqrt(np.mean(np.square(frames, dtype=np.float32), axis=1))
    power = np.square(rms)
    amin = 1e-5**2  # librosa.amplitude_to_db's amin, squared
    db = 10.0 * np.log10(np.maximum(amin, power)) - 10.0 * np.log10(np.maximum(amin, np.max(rms) ** 2))
    loud = np.flatnonzero(db > -top_db)
    if loud.size == 0:
        return signal[:0]
    return signal[loud[0] * hop_length : min(signal.size, (loud[-1] + 1) * hop_length)]


def write_wav(path, signal: np.ndarray, sample_rate: int) -> Path:
    """Write 16-bit PCM WAV atomically (:func:`acoustics.outputs.replaced_atomically`: a temporary file in
    the same folder, flushed to disk, then a rename). Raises OSError where the disk refuses (a full disk
    too, which libsndfile only calls a "System error"); ``path`` then stays as it was."""
    from .outputs import replaced_atomically

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with replaced_atomically(path) as temporary:
            soundfile.write(temporary, np.clip(signal, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")
    except soundfile.SoundFileError as error:
        try:
            full = shutil.disk_usage(path.parent).free < 2 * np.size(signal) + 4096
        except OSError:
            full = False
        raise (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)) if full else OSError(errno.EIO, f"libsndfile: {error}")) from None
    return path
