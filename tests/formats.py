"""The same speech written in the formats people have: WAV, FLAC, MP3, Ogg Vorbis, Opus, m4a/AAC, mp4 and webm.

Written with libsndfile (WAV, FLAC, Ogg Vorbis) and with the FFmpeg inside PyAV's wheels (the rest, as phones,
messengers and video calls write them: AAC at 44.1 kHz stereo, Opus at 48 kHz, a video track beside the sound
in mp4 and webm). Each frame carries its time, so the container marks the samples the encoder adds in front
(AAC's 1024, Opus's pre-skip) as the ffmpeg command and phones do, and a decoder drops them. Used by the
tests and by ``bench/formats.py``.
"""

from __future__ import annotations

import fractions
from pathlib import Path

import av
import numpy as np
import soundfile

import acoustics.audio as audio

#: name -> (suffix, container format, codec, sample rate, channels, with a video track); None: libsndfile.
FORMATS = {
    "wav": (".wav", None, "PCM_16", 16000, 1, False),
    "flac": (".flac", None, "PCM_16", 16000, 1, False),
    "ogg/vorbis": (".ogg", None, "VORBIS", 44100, 2, False),
    "mp3": (".mp3", "mp3", "libmp3lame", 44100, 1, False),
    "opus": (".opus", "ogg", "libopus", 48000, 1, False),
    "m4a/aac": (".m4a", "ipod", "aac", 44100, 2, False),
    "mp4": (".mp4", "mp4", "aac", 48000, 2, True),
    "webm": (".webm", "webm", "libopus", 48000, 2, True),
}


def write(signal: np.ndarray, rate: int, path: Path, name: str) -> Path:
    """Write the float32 mono ``signal`` (at ``rate`` Hz) to ``path`` in the format ``name`` of :data:`FORMATS`."""
    suffix, container, codec, target_rate, channels, video = FORMATS[name]
    signal = audio.resample(np.asarray(signal, np.float32), rate, target_rate)
    layout = np.stack([signal] * channels)
    if container is None:
        kind = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}[suffix]
        soundfile.write(path, layout.T, target_rate, subtype=codec, format=kind)
        return path
    with av.open(str(path), "w", format=container) as output:
        picture = None
        if video:
            picture = output.add_stream("libvpx" if container == "webm" else "mpeg4", rate=10)
            picture.width, picture.height, picture.pix_fmt = 64, 48, "yuv420p"
        sound = output.add_stream(codec, rate=target_rate, layout="stereo" if channels == 2 else "mono")
        for start in range(0, signal.size, 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(layout[:, start:start + 1024]), format="fltp",
                                               layout="stereo" if channels == 2 else "mono")
            frame.sample_rate = target_rate
            frame.pts, frame.time_base = start, fractions.Fraction(1, target_rate)  # so the encoder's priming is marked
            output.mux(sound.encode(frame))
        output.mux(sound.encode(None))
        if picture is not None:
            black = np.zeros((48, 64, 3), np.uint8)
            for _ in range(max(1, int(signal.size / target_rate * 10))):
                output.mux(picture.encode(av.VideoFrame.from_ndarray(black, format="rgb24")))
            output.mux(picture.encode(None))
    return path


def write_all(signal: np.ndarray, rate: int, folder: Path, stem: str) -> dict:
    """``{format name: path}`` of ``signal`` written in every format of :data:`FORMATS` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    return {name: write(signal, rate, folder / f"{stem}{suffix}", name) for name, (suffix, *_) in FORMATS.items()}
