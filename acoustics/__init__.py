"""Shared package of the deep-learning-on-acoustics workshop: one module per concern.

settings   - the frozen Settings object (every feature parameter), its JSON form, comparison
recipe     - the frozen Recipe object (every training parameter), its JSON form, --recipe overrides
errors     - AcousticsError and its subclasses; the message is the line a person reads
outputs    - output paths checked before any work (never over an input, a database or a model), atomic writes
noise      - stage 2's background noise: its settings, from a file or synthetic, level checks, the WAV
audio      - load any audio or video file (libsndfile, else FFmpeg) to float32 mono at the settings' rate, trim, write
mixing     - noise for tests and benches (room noise, babble) and speech mixed with it at a chosen SNR
speechcheck- does a recording hold speech a person can hear (against its own noise floor), and what is poor about it
features   - MFCCs (fast, librosa-exact) and fixed-size frame windows for the models
corpus     - find labelled recordings: SVD export, CSV manifests, SVD zips unpacked with checks
democorpus - the demo corpus spoken by espeak-ng (real voices where it is missing) and the benches' babble talkers
identity   - one recording one row, one person one speaker: listings sorted before stage 3 stores them
preparation- stage 3's work on one recording, and the worker pool for a corpus
storing    - stage 3's run: database under the requested SNRs, the noise registered, tasks sorted, batches stored
dbfile     - the feature database's file: schema, opening it as ours, creating and resetting it, SQLite errors in words
database   - the SQLite feature database: what is stored and read, in transactions and batches
locks      - advisory locks: one train_models.py per --out folder, no reset of a database a training reads
training   - speaker split, normalisation statistics, windows, calibration, scores (no Keras)
augment    - training windows changed on the fly: babble, coloured noise, microphone responses, levels
quiet      - the libraries' start-up noise kept off the terminal; Keras imported once
networks   - the networks stage 4 trains: one list, a builder each, register_network for a new one
batches    - batches of training windows for Keras: from the database or from memory, augmented
models     - the training loop, prediction, .h5 save/load with the project's metadata
encoder    - the pretrained speaker encoder in Keras and the encoder network built on it (transfer learning)
encoderfile- the encoder's shipped weights: converted from the Resemblyzer wheel, provenance, checked on reading
torchfile  - a PyTorch checkpoint's tensors read with pickle and numpy alone (no torch, no code run from it)
trainer    - stage 4's one path from (recipe, speaker split) to saved, scored, calibrated models
modelfile  - a model file's metadata (settings, recipe, provenance, calibration), read without Keras
sources    - what a live input is (sample_rate, chunk_samples, read()), and an array played as one
microphone - the PyAudio microphone as a source, device discovery, stage 2's recording
utterances - voice activity detection, and one utterance or a stream of them from any source
gate       - --stream's speaker gate: the person at the microphone, not the room
liveview   - stage 5's live screen (level meter, state, verdict bar) and its plain-line fallback
listening  - stage 5's microphone modes: one sentence, or a verdict per sentence; what they save
verdict    - a probability in words; classify one clip; which model answers; load it in the background
fileverdicts - verdicts of many files: read ahead, predicted in batches, as CSV rows and JSON lines
compare    - two models side by side on labelled voices
segments   - who speaks when: male, female and no_speech segments of long recordings
noisefloor - where the speech is in a recording: band levels against their own noise floors, streamed
segmentreport - --segments over many files: their lines, CSV rows, timeline pictures and totals
plots      - the pictures each stage saves
setup      - python -m acoustics.setup: what this computer has and lacks, with the command that installs each part
"""

__version__ = "1.0.0"
