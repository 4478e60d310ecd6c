"""Checkpoint scores from real, trained models that ship inside their wheels (no download):

  speaker similarity   resemblyzer's GE2E encoder: cosine to the corpus centroid
  intelligibility      pocketsphinx (English) by default, or a local Whisper folder; WER and CER by jiwer
  quality              DNSMOS P.835 (SIG, BAK, OVRL) from speechmos on onnxruntime
  delivery             speaking rate against the corpus median, runaway, silence ratio, clipping

`measures` holds the pure signal and text arithmetic, `models` the recognizers and encoders (each loaded
on first use; one that cannot load makes its fields "not scored: <why>"), `scorer` puts them together for
a clip, a checkpoint or a run; `prompts` reads the prompt set and the run's reference voice, `rows` makes a
run's ceiling and baseline rows, `evaluate` is `milo-train eval`, `queue` the run's scorer, `hooks` their
test hooks, and `python -m inference.scoring` (`__main__`) only the command line.
Schema and file names: contract/scores.py, docs/run-folder.md.
"""
