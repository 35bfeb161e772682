"""Shared package of the deep-learning-on-acoustics workshop: one module per concern.

settings   - the frozen Settings object (every feature parameter), its JSON form, comparison
errors     - AcousticsError and its subclasses; the message is the line a person reads
audio      - load any audio file to float32 mono at the settings' rate, trim, mix at an SNR, levels
features   - MFCCs (fast, librosa-exact) and fixed-size frame windows for the models
corpus     - find labelled recordings (SVD export, CSV manifest, folders) and make the demo corpus
database   - the SQLite feature database: schema, checks, transactions, batched reads
models     - the three Keras models, training glue, .h5 save/load with metadata
microphone - PyAudio capture, device discovery, voice activity detection
plots      - the pictures each stage saves
"""

__version__ = "1.0.0"
