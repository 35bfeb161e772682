"""The pictures each stage saves (matplotlib, Agg backend)."""

import bisect

import matplotlib

from .errors import shown as escaped  # titles hold file names: escaped, as on the terminal

matplotlib.use("Agg")


def _save(figure, path):
    """Save ``figure`` to ``path`` atomically (:func:`acoustics.outputs.replaced_atomically`) and close it."""
    from pathlib import Path

    import matplotlib.pyplot as pyplot

    from .outputs import replaced_atomically

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with replaced_atomically(path) as temporary:
            figure.savefig(temporary, dpi=110, format=path.suffix.lstrip(".") or "png")
    finally:
        pyplot.close(figure)
    return path


def plot_speech_variants(clean, noisy, clean_mfcc, noisy_mfcc, sample_rate: int, hop_ms: float, path, title: str,
                         noisy_label: str = "with noise"):
    """Waveform and MFCCs of one recording, clean and with noise: a 2 x 2 grid."""
    import matplotlib.pyplot as pyplot
    import numpy as np

    figure, axes = pyplot.subplots(2, 2, figsize=(11, 6), sharex="col")
    for column, (signal, matrix, label) in enumerate(((clean, clean_mfcc, "clean"), (noisy, noisy_mfcc, noisy_label))):
        time = np.arange(signal.size) / sample_rate
        axes[0, column].plot(time, signal, linewidth=0.5)
        axes[0, column].set_title(f"Waveform, {label}")
        axes[0, column].set_ylim(-1, 1)
        axes[0, column].set_ylabel("amplitude")
        shown = (matrix - matrix.mean(axis=0)) / (matrix.std(axis=0) + 1e-6)  # per coefficient, for display
        image = axes[1, column].imshow(shown.T, vmin=-3, vmax=3, origin="lower", aspect="auto", cmap="coolwarm",
                                       extent=(0, matrix.shape[0] * hop_ms / 1000, 0, matrix.shape[1]))
        axes[1, column].set_title(f"MFCCs, {label}")
        axes[1, column].set_xlabel("time (s)")
        axes[1, column].set_ylabel("coefficient")
        figure.colorbar(image, ax=axes[1, column], label="standardised value")
    figure.suptitle(escaped(title))
    figure.tight_layout()
    return _save(figure, path)


def plot_training_curves(history_dict: dict, path, title: str):
    """Loss and accuracy per epoch, training and validation (Keras history keys), side by side."""
    import matplotlib.pyplot as pyplot
    from matplotlib.ticker import MaxNLocator

    figure, axes = pyplot.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ("loss", "accuracy")):
        for key, label in ((metric, "training"), (f"val_{metric}", "validation")):
            values = history_dict.get(key, [])
            if values:
                axis.plot(range(1, len(values) + 1), values, marker="o", label=label)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_ylabel(metric + (" (window level)" if metric == "accuracy" else ""))
        axis.grid(alpha=0.3)
        axis.legend()
    axes[1].set_ylim(0, 1.02)
    figure.suptitle(escaped(title))
    figure.tight_layout()
    return _save(figure, path)


def plot_confusion_matrix(matrix, class_names, path, title: str):
    """Counts of true (rows) against predicted (columns) classes, with the counts written in."""
    import matplotlib.pyplot as pyplot
    import numpy as np

    matrix = np.asarray(matrix)
    figure, axis = pyplot.subplots(figsize=(4.5, 4))
    axis.imshow(matrix, cmap="Blues", vmin=0)
    for row in range(matrix.shape[0]):
        for column in range(matrix.shape[1]):
            dark = matrix[row, column] > matrix.max() / 2
            axis.text(column, row, str(int(matrix[row, column])), ha="center", va="center",
                      color="white" if dark else "black")
    axis.set_xticks(range(len(class_names)), class_names)
    axis.set_yticks(range(len(class_names)), class_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(escaped(title))
    figure.tight_layout()
    return _save(figure, path)


def plot_noise(signal, sample_rate: int, path, title: str, max_seconds: float = 60.0):
    """Waveform and spectrogram (dB) of a background noise recording; at most its first ``max_seconds``."""
    import matplotlib.pyplot as pyplot
    import numpy as np

    shown = np.asarray(signal, dtype=np.float32)[: int(max_seconds * sample_rate)]
    step = max(1, shown.size // 20000)  # a picture needs no more points than pixels
    figure, axes = pyplot.subplots(2, 1, figsize=(10, 6), sharex=True)
    axes[0].plot(np.arange(0, shown.size, step) / sample_rate, shown[::step], linewidth=0.5)
    peak = float(np.max(np.abs(shown))) if shown.size else 0.0
    axes[0].set_ylim(-max(peak, 1e-3) * 1.1, max(peak, 1e-3) * 1.1)
    axes[0].set_ylabel("amplitude (full scale = 1)")
    axes[0].set_title("Waveform")
    window = 512 if sample_rate >= 16000 else 256
    spectrum, _, _, image = axes[1].specgram(shown.astype(np.float64) + 1e-9, NFFT=window, Fs=sample_rate,
                                             noverlap=window * 3 // 4, cmap="magma", scale="dB")
    top = 10 * np.log10(max(float(spectrum.max()), 1e-20))
    image.set_clim(top - 70, top)  # 70 dB of range: quiet bands stay visible, the padding floor does not
    axes[1].set_xlabel("time (s)")
    axes[1].set_ylabel("frequency (Hz)")
    axes[1].set_title("Spectrogram")
    figure.colorbar(image, ax=axes, label="power (dB)")
    figure.suptitle(escaped(title))
    return _save(figure, path)


def plot_verdict(signal, mfcc_matrix, sample_rate: int, hop_ms: float, path, title: str):
    """Waveform and MFCCs of one classified recording, with the verdict as the title."""
    import matplotlib.pyplot as pyplot
    import numpy as np

    figure, axes = pyplot.subplots(2, 1, figsize=(9, 5.5), sharex=True)
    axes[0].plot(np.arange(signal.size) / sample_rate, signal, linewidth=0.5)
    axes[0].set_ylim(-1, 1)
    axes[0].set_ylabel("amplitude")
    axes[0].set_title("What the model heard")
    shown = (mfcc_matrix - mfcc_matrix.mean(axis=0)) / (mfcc_matrix.std(axis=0) + 1e-6)
    image = axes[1].imshow(shown.T, origin="lower", aspect="auto", cmap="coolwarm", vmin=-3, vmax=3,
                           extent=(0, mfcc_matrix.shape[0] * hop_ms / 1000, 0, mfcc_matrix.shape[1]))
    axes[1].set_ylabel("MFCC")
    axes[1].set_xlabel("time (s)")
    figure.colorbar(image, ax=axes, label="standardised value", shrink=0.6)
    figure.suptitle(escaped(title))
    return _save(figure, path)


#: Colours of the segment labels in the timeline picture.
SEGMENT_COLOURS = {"male": "tab:blue", "female": "tab:red", "no_speech": "0.85"}


def drawn_spans(segments, duration: float, most: int = 2000) -> dict:
    """``{label: [(start, width), ...]}`` to colour a timeline of ``segments``: the segments themselves when
    there are at most ``most``, else runs of the label heard at the middle of each of ``most`` equal parts
    of ``duration`` (a picture cannot show more, and drawing a long recording's every turn costs memory)."""
    if len(segments) <= most:
        pieces = [(segment.label, segment.start, segment.stop) for segment in segments]
    else:
        starts = [segment.start for segment in segments]
        step = duration / most
        labels = [segments[max(0, bisect.bisect_right(starts, (index + 0.5) * step) - 1)].label for index in range(most)]
        pieces = []
        for index, label in enumerate(labels):
            if pieces and pieces[-1][0] == label:
                pieces[-1][2] = (index + 1) * step
            else:
                pieces.append([label, index * step, (index + 1) * step])
    spans = {}
    for label, start, stop in pieces:
        spans.setdefault(label, []).append((start, stop - start))
    return spans


def plot_segments(segmentation, path, title: str, max_points: int = 20000):
    """Timeline of a segmented recording: its waveform envelope (the peak of each 10 ms frame) over the
    coloured male / female / no_speech spans (:func:`drawn_spans`), and P(male) per speech frame; at most
    ``max_points`` points."""
    import matplotlib.pyplot as pyplot
    import numpy as np
    from matplotlib.patches import Patch

    frame = segmentation.frame_seconds
    step = max(1, -(-segmentation.peaks.size // max_points))
    count = segmentation.peaks.size // step * step or segmentation.peaks.size
    peaks = segmentation.peaks[:count].reshape(-1, step).max(axis=1) if count >= step else segmentation.peaks
    p_male = segmentation.p_male[:count].reshape(-1, step)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: no speech there
            p_male = np.nanmean(p_male, axis=1) if count >= step else segmentation.p_male
    time = (np.arange(peaks.size) * step + step / 2) * frame
    figure, axes = pyplot.subplots(2, 1, figsize=(11, 5), sharex=True, gridspec_kw={"height_ratios": (2, 1)})
    drawn = drawn_spans(segmentation.segments, segmentation.duration)
    for label, colour in SEGMENT_COLOURS.items():
        spans = drawn.get(label, [])
        for axis in axes:
            axis.broken_barh(spans, (-1.1, 2.2) if axis is axes[0] else (0, 1), facecolors=colour, alpha=0.35, linewidth=0)
    top = max(float(peaks.max()) if peaks.size else 0.0, 1e-3) * 1.1
    axes[0].fill_between(time, -peaks, peaks, color="black", linewidth=0)
    axes[0].set_ylim(-top, top)
    axes[0].set_ylabel("amplitude")
    axes[0].legend(handles=[Patch(color=colour, alpha=0.5, label=label) for label, colour in SEGMENT_COLOURS.items()],
                   loc="upper right", ncol=3, fontsize="small")
    axes[1].plot(time, p_male, color="black", linewidth=0.8)
    axes[1].axhline(0.5, color="0.4", linewidth=0.5, linestyle="--")
    axes[1].set_ylim(0, 1)
    axes[1].set_ylabel("P(male)")
    axes[1].set_xlabel("time (s)")
    axes[1].set_xlim(0, max(segmentation.duration, frame))
    figure.suptitle(escaped(title))
    figure.tight_layout()
    return _save(figure, path)
