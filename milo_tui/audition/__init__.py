"""Audition on the dashboard's side (torch-free): the worker client, playback outputs, milo-listen,
the samples index, the text rules and the audition screen. The engine itself is inference/."""
