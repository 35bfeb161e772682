"""Stage 5's microphone modes: one sentence and its verdict (:func:`listen_once`), or a verdict per
sentence until Ctrl-C (:func:`listen_stream`), with what was heard saved as recordings and pictures.

The words these modes show go to a view (:mod:`acoustics.liveview`) the caller opens, so they appear as
plain lines or on the live screen; nothing here prints. The model arrives from a
:class:`acoustics.verdict.ModelLoader` while the person already speaks.
"""

from __future__ import annotations

import datetime
import time

from . import gate, utterances, verdict

#: What a person says to the model.
SENTENCE = "Guten Morgen, wie geht es Ihnen"
#: What to do instead when there is no microphone.
WAV_ALTERNATIVE = "classify a recording instead with 'python implement_model.py FILE' (or --wav FILE)"
#: Length of one microphone read: one detector frame, so a verdict follows the pause within ~30 ms.
CHUNK_SECONDS = utterances.FRAME_SECONDS
NO_SPEECH = ("No speech detected: the microphone heard only silence or steady noise. Speak closer and louder, "
             "check that it is not muted, and try again.")
STREAM_START = "Listening: speak, pause, and a verdict follows each sentence. Ctrl-C stops."


def microphone_source(settings):
    """The default source of stage 5: the microphone at the settings' rate, read a detector frame at a time."""
    from .microphone import Microphone

    return Microphone(settings.sample_rate, alternatives=WAV_ALTERNATIVE, chunk_seconds=CHUNK_SECONDS)


def listen_once(settings, loader, view, *, seconds: float, pause: float, source=None):
    """Listen for one sentence of up to ``seconds`` (ended by ``pause`` seconds of silence) and show its
    verdict in ``view``: ``(signal, Verdict, metadata)``, or None when no speech was heard. ``source``
    (:mod:`acoustics.sources`) is the microphone unless given."""
    signal, detected = utterances.record_utterance(
        microphone_source(settings) if source is None else source, max_seconds=seconds, pause_seconds=pause,
        on_start=lambda: view.say(f"Speak now: '{SENTENCE}' (listening for up to {seconds:g} s)"),
        on_chunk=lambda chunk, detector: view.hear(chunk, detector.in_speech),
    )
    if not detected:
        view.say(NO_SPEECH)
        return None
    view.deciding()
    model, metadata = loader.get()
    result = verdict.classify_signal(model, metadata, signal, "the recording")
    if result.label is None:
        view.verdict(f"No verdict: {result.note.removeprefix('no verdict: ')}", result)
    else:
        view.verdict(f"Verdict: {result.sentence()}.", result)
    return signal, result, metadata


def save_recording(signal, result, metadata: dict, paths) -> tuple:
    """Save what the microphone heard in ``paths.recordings`` and a picture of it with the verdict in
    ``paths.pictures``, both named after the time: ``(wav, png)``. Raises OSError where the disk refuses."""
    from . import audio, features, plots

    settings = metadata["settings"]
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")[:-3]
    wav = audio.write_wav(paths.recordings / f"{stamp}.wav", signal, settings.sample_rate)
    picture = plots.plot_verdict(signal, features.mfcc(signal, settings), settings.sample_rate, settings.hop_ms,
                                 paths.pictures / f"verdict-{stamp}.png", title=f"Verdict: {result.sentence()}")
    return wav, picture


class StreamRecordings:
    """The numbered recordings of --stream: recordings/stream-0001.wav and pictures/stream-0001.png, numbered
    on from the highest number already there (earlier sessions are kept); pictures drawn in a background
    thread. A disk that refuses is passed to ``on_warning`` as an OSError, from either thread."""

    def __init__(self, paths, on_warning) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.recordings, self.pictures, self.on_warning = paths.recordings, paths.pictures, on_warning
        names = [path.stem for folder in (self.recordings, self.pictures) for path in folder.glob("stream-*.*")]
        self.number = max([int(name[7:]) for name in names if name[7:].isdigit()], default=0)
        self._painter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pictures")

    def save(self, signal, result, metadata, heading: str):
        """Write the WAV now and queue its picture: ``(wav, png)``, or None if the disk refuses."""
        from . import audio

        self.number += 1
        while (self.recordings / f"stream-{self.number:04d}.wav").exists():
            self.number += 1
        name = f"stream-{self.number:04d}"
        try:
            wav = audio.write_wav(self.recordings / f"{name}.wav", signal, metadata["settings"].sample_rate)
        except OSError as error:
            self.on_warning(error)
            return None
        png = self.pictures / f"{name}.png"
        self._painter.submit(self._draw, signal, metadata["settings"], png, f"{heading}: {result.sentence()}")
        return wav, png

    def _draw(self, signal, settings, path, title: str) -> None:
        from . import features, plots

        try:
            plots.plot_verdict(signal, features.mfcc(signal, settings), settings.sample_rate, settings.hop_ms, path,
                               title=title)
        except OSError as error:
            self.on_warning(error)

    def close(self) -> None:
        """Wait for the pictures still being drawn."""
        self._painter.shutdown(wait=True)


def stream_line(heard: int, seconds: float, result, saved) -> str:
    """The verdict line of one --stream utterance, with where it was saved."""
    line = f"[{time.strftime('%H:%M:%S')}] utterance {heard} ({seconds:.1f} s): {result.sentence()}"
    return line + (f" (saved as {saved[0]}, picture {saved[1]})" if saved else "")


def listen_stream(settings, loader, view, *, seconds: float, pause: float, recordings=None, source=None) -> int:
    """Show in ``view`` a verdict for each sentence of the person at the microphone until Ctrl-C (or the
    end of ``source``, which is the microphone unless given); the room's talk is ignored
    (:mod:`acoustics.gate`), each utterance saved in ``recordings`` (a :class:`StreamRecordings`) unless
    None. Returns how many utterances got a verdict."""
    speaker_gate = gate.SpeakerGate(settings.sample_rate)
    floor = {"dbfs": None}  # the detector's noise floor, for the gate

    def on_chunk(chunk, detector) -> None:
        view.hear(chunk, detector.in_speech)
        floor["dbfs"] = detector.noise_floor_dbfs

    heard = 0
    try:
        for utterance in utterances.stream_utterances(
            microphone_source(settings) if source is None else source, max_utterance_seconds=seconds,
            pause_seconds=pause, on_chunk=on_chunk,
            on_start=lambda: view.say(STREAM_START),
        ):
            view.deciding()
            decision = speaker_gate.judge(utterance, floor["dbfs"])
            if not decision.accepted:
                view.ignored(decision.reason)
                continue
            heard += 1
            model, metadata = loader.get()
            result = verdict.classify_signal(model, metadata, utterance, f"utterance {heard}")
            saved = recordings.save(utterance, result, metadata, f"Utterance {heard}") if recordings else None
            view.verdict(stream_line(heard, utterance.size / settings.sample_rate, result, saved), result)
    except KeyboardInterrupt:
        pass
    return heard
