"""Code the benchmarks share, and the only part of bench/ that tests may import.

The entry points (bench/*.py) are thin: arguments in, JSON out. What two of them need, or a test
needs, lives here: rendered albums (albums), accuracy measures (metrics), cached faces (face_sets,
identity_cache), the calibration study (study), rendered-album search (rendered), synthetic events
in Postgres (synthetic_events), a fleet of real services (fleet) and the dev data folders (datasets).
"""
