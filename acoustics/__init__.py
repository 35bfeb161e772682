"""Shared package of the deep-learning-on-acoustics workshop: one module per concern.

settings   - the frozen Settings object (every feature parameter), its JSON form, comparison
errors     - AcousticsError and its subclasses; the message is the line a person reads
audio      - load any audio file to float32 mono at the settings' rate, trim, mix at an SNR, levels
features   - MFCCs (fast, librosa-exact) and fixed-size frame windows for the models
corpus     - find labelled recordings (SVD export, CSV manifest, zips) and make the demo corpus
preparation- stage 3's work on one recording, and the worker pool for a corpus
database   - the SQLite feature database: schema, checks, transactions, batched reads
training   - speaker split, normalisation statistics, windows, augmentation, scores (no Keras)
models     - the three Keras models, training loop glue, .h5 save/load
modelfile  - a model file's metadata (settings, normalisation, scores), read without Keras
microphone - PyAudio capture, device discovery, voice activity detection
verdict    - a probability in words; classify one clip; load the model in the background
plots      - the pictures each stage saves
"""

__version__ = "1.0.0"
