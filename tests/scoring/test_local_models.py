"""The published-protocol path (docs/scoring.md): a local Whisper folder for WER and a local
WavLMForXVector folder for similarity, exercised with tiny random-weight models of the same classes
(their numbers mean nothing; that the scorer runs them and says so does)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from contract.scores import is_score
from inference.scoring.scorer import Scorer
from tests.scoring.conftest import HELD_OUT
from tests.training.tiny_whisper import TRANSCRIPT, build_tiny_whisper


def build_tiny_wavlm(out: Path) -> Path:
    import torch
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMForXVector

    cfg = WavLMConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                      conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=16,
                      num_conv_pos_embedding_groups=2, tdnn_dim=(16, 16), tdnn_kernel=(3, 1), tdnn_dilation=(1, 1),
                      xvector_output_dim=8, num_buckets=8, max_bucket_distance=16)
    torch.manual_seed(0)
    WavLMForXVector(cfg).save_pretrained(out)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=True).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def local_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("local-models")
    return build_tiny_whisper(root / "tiny-whisper"), build_tiny_wavlm(root / "tiny-wavlm")


def test_a_local_whisper_and_wavlm_score_as_the_published_protocol_does(local_models, voices):
    whisper, wavlm = local_models
    scorer = Scorer(whisper=str(whisper), wavlm=str(wavlm))
    assert scorer.models() == {"speaker": "WavLM x-vector (tiny-wavlm)", "asr": "whisper (tiny-whisper)",
                               "quality": "DNSMOS P.835 (speechmos)"}
    reference = scorer.reference(voices.reference)
    assert reference.clips == 6 and reference.centroid.shape == (8,)
    row = scorer.score_file(voices.slt, HELD_OUT, reference)
    assert row["asr"] == "whisper (tiny-whisper)" and row["transcript"] == TRANSCRIPT  # the model it was given ran
    assert row["wer"] == 1.0 and is_score(row["similarity"]) and -1 <= row["similarity"] <= 1
    same = scorer.score_file(voices.slt, HELD_OUT, reference)
    assert same["similarity"] == row["similarity"]  # the same clip, the same embedding
    assert np.isfinite(row["dnsmos_ovrl"])
