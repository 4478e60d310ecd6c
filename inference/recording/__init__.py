"""The take checker of a recording session: the corpus audit's models on one take at a time (checks.py), in a
child process the record screen talks to over JSON lines (__main__.py; docs/recording.md)."""
