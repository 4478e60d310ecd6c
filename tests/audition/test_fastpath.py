"""The fast path (inference/fastpath.py) against the lean loop and stock qwen-tts on the tiny model, with the
CUDA graph off (CPU): the same bits layer by layer, the same codes greedy and sampled, the same random
draws as torch.multinomial, the sub-talker's processors as stock builds them, and the fallbacks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from inference import fastpath
from inference.engine import CPU_DEFAULT_PATH, Engine, EngineError
from inference.loop import CodePredictor
from inference.stock import stock_generate
from inference.sampling import sample_token, warpers as _warpers

TEXT = "hello world, this is milo."


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def lean(tiny_custom_voice):
    e = Engine(device="cpu", path="lean")
    e.load(tiny_custom_voice)
    return e


@pytest.fixture(scope="module")
def fast(tiny_custom_voice):
    e = Engine(device="cpu", path="fast")
    e.load(tiny_custom_voice)
    return e


def _codes(engine, sampling, seed, text=TEXT):
    torch.manual_seed(seed)
    return torch.stack(list(engine.frames(text, sampling=sampling)))


def test_paths_are_chosen_and_reported(lean, fast, tiny_custom_voice):
    assert lean.loaded.path == "lean" and lean.loaded.fast is None
    assert fast.loaded.path == "fast" and fast.loaded.describe()["graph"]["enabled"] is False  # no CUDA here
    auto = Engine(device="cpu")
    auto.load(tiny_custom_voice)
    assert auto.loaded.path == CPU_DEFAULT_PATH and "CPU" in auto.loaded.path_reason
    with pytest.raises(EngineError, match="unknown engine path 'quick'"):
        Engine(device="cpu", path="quick")


def test_greedy_codes_equal_lean_and_stock(lean, fast):
    sampling = lean.sampling(do_sample=False, subtalker_dosample=False, max_new_tokens=60)
    wav, stock = stock_generate(lean.loaded.tts, TEXT, "milo_demo", seed=0, sampling=sampling)
    ours = _codes(fast, sampling, seed=7)
    assert stock.shape[0] >= 10
    assert torch.equal(ours, stock) and torch.equal(ours, _codes(lean, sampling, seed=8))
    assert np.array_equal(fast.decode(ours), wav)


@pytest.mark.parametrize("overrides", [
    {},                                                                   # the checkpoint's defaults
    {"top_p": 0.8, "subtalker_top_p": 0.7, "temperature": 0.7, "subtalker_temperature": 1.3,
     "top_k": 20, "subtalker_top_k": 10},                                 # top-p on: one more warper
    {"subtalker_dosample": False},                                        # greedy sub-talker, sampled talker
    {"do_sample": False, "subtalker_top_k": 0, "subtalker_temperature": 1.0},  # no sub-talker warpers at all
], ids=["defaults", "top-p", "greedy-subtalker", "greedy-talker"])
def test_sampled_codes_equal_stock_for_the_same_seed(lean, fast, overrides):
    sampling = lean.sampling(max_new_tokens=40, **overrides)
    _, stock = stock_generate(lean.loaded.tts, TEXT, "milo_demo", seed=11, sampling=sampling)
    ours = _codes(fast, sampling, seed=11)
    assert torch.equal(ours, stock)
    assert torch.equal(ours, _codes(lean, sampling, seed=11))
    if sampling.subtalker_dosample:
        assert not torch.equal(_codes(fast, sampling, seed=12), stock)


def test_same_seed_same_audio_as_the_lean_loop_across_sentences(lean, fast):
    sampling = lean.sampling(max_new_tokens=20)
    text = "First one here. Then a second one!"
    a, ta = fast.synthesize(text, seed=5, sampling=sampling)
    b, tb = lean.synthesize(text, seed=5, sampling=sampling)
    assert ta.sentences == 2 and ta.frames == tb.frames > 20
    assert np.array_equal(a, b)


def test_sample_token_draws_what_multinomial_draws():
    """Same token and the same random stream afterwards, for peaked, flat and masked distributions."""
    gen = torch.Generator().manual_seed(0)
    for seed in range(200):
        logits = torch.randn((1, 2048), generator=gen) * (0.5 + seed % 4)
        if seed % 3 == 0:
            logits[0, torch.randperm(2048, generator=gen)[:2000]] = float("-inf")  # as top-k leaves it
        torch.manual_seed(seed)
        want = torch.multinomial(torch.softmax(logits, dim=-1), num_samples=1).squeeze(1)
        after_want = torch.rand(4)
        torch.manual_seed(seed)
        got = sample_token(logits, True)
        after_got = torch.rand(4)
        assert torch.equal(got, want) and torch.equal(after_got, after_want), seed
    assert torch.equal(sample_token(logits, False), torch.argmax(logits, dim=-1))


def test_subtalker_warpers_are_the_ones_stock_generate_builds(lean, monkeypatch):
    """The processors transformers' generate() builds for the code predictor, caught in the act, are the
    ones the lean and fast paths apply (same classes, same order, same settings)."""
    from transformers.generation.utils import GenerationMixin

    seen = []
    original = GenerationMixin._get_logits_processor

    def spy(self, *args, **kwargs):
        procs = original(self, *args, **kwargs)
        if type(self).__name__.endswith("CodePredictorModelForConditionalGeneration"):
            seen.append([(type(p).__name__, dict(vars(p))) for p in procs])
        return procs

    monkeypatch.setattr(GenerationMixin, "_get_logits_processor", spy)
    sampling = lean.sampling(max_new_tokens=3, subtalker_top_p=0.6, subtalker_temperature=0.5, subtalker_top_k=7)
    stock_generate(lean.loaded.tts, TEXT, "milo_demo", seed=1, sampling=sampling)
    ours = [(type(p).__name__, dict(vars(p))) for p in _warpers(True, 0.5, 7, 0.6)]
    assert seen and all(s == ours for s in seen)
    assert [name for name, _ in ours] == ["TemperatureLogitsWarper", "TopKLogitsWarper", "TopPLogitsWarper"]


def test_warpers_mask_and_scale_fixed_logits_as_documented():
    """Sampling semantics on fixed logits: temperature divides, top-k keeps k, top-p keeps the smallest set
    above p; the sampler then only ever picks kept tokens, in proportion to their probabilities."""
    logits = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0, -1.0]])
    scores = logits
    for proc in _warpers(True, 2.0, 3, 1.0):
        scores = proc(None, scores)
    assert torch.equal(scores[0, :3], logits[0, :3] / 2.0) and torch.isinf(scores[0, 3:]).all()
    scores = logits
    for proc in _warpers(True, 1.0, 0, 0.7):
        scores = proc(None, scores)
    p = torch.softmax(logits, dim=-1)[0]
    assert p[0] < 0.7 <= p[0] + p[1]
    assert torch.isfinite(scores[0, :2]).all() and torch.isinf(scores[0, 2:]).all()
    torch.manual_seed(0)
    picks = torch.stack([sample_token(scores, True) for _ in range(4000)]).flatten()
    assert set(picks.tolist()) <= {0, 1}
    want = (p[0] / (p[0] + p[1])).item()
    assert abs((picks == 0).float().mean().item() - want) < 0.03


def test_static_steps_equal_hf_layers_bit_for_bit(lean):
    """Each of the 15 code-predictor steps (logits) and a talker decode step (hidden state) against qwen-tts's
    own layers through HF, on the same inputs: torch.equal, not allclose."""
    from transformers import DynamicCache

    talker = lean.loaded.tts.model.talker
    hidden = talker.config.hidden_size
    gen = torch.Generator().manual_seed(3)
    ref = CodePredictor(talker)
    static = fastpath.StaticCodePredictor(talker)
    with torch.inference_mode():
        embeds = torch.randn((1, 2, hidden), generator=gen)
        cache = DynamicCache()
        for step in range(talker.config.num_code_groups - 1):
            if step > 0:
                embeds = ref.sub_embeds[step - 1](torch.randint(0, 2048, (1, 1), generator=gen))
            assert torch.equal(static._step(embeds, step), ref._forward(embeds, step, cache)), step

        prompt = torch.randn((1, 9, hidden), generator=gen)
        mask = torch.ones((1, 9), dtype=torch.long)
        p = {"inputs_embeds": prompt, "attention_mask": mask, "trailing_text_hidden": torch.zeros((1, 1, hidden)),
             "tts_pad_embed": torch.zeros((1, 1, hidden))}
        fast_talker = fastpath.StaticTalker(talker)
        past_fast, logits_fast = fast_talker.prefill(p, max_new=4)
        cache = DynamicCache()
        out = talker(inputs_embeds=prompt, attention_mask=mask, past_key_values=cache, use_cache=True,
                     cache_position=torch.arange(9), trailing_text_hidden=p["trailing_text_hidden"],
                     tts_pad_embed=p["tts_pad_embed"])
        assert torch.equal(past_fast, out.past_hidden) and torch.equal(logits_fast, out.logits[:, -1, :].float())
        for step in range(3):
            x = torch.randn((1, 1, hidden), generator=gen)
            mask = torch.cat([mask, torch.ones((1, 1), dtype=torch.long)], dim=-1)
            position = torch.tensor([9 + step])
            position_ids = (position + talker.rope_deltas).view(1, 1, 1).expand(3, -1, -1)
            want = talker.model(inputs_embeds=x, attention_mask=mask, position_ids=position_ids, past_key_values=cache,
                                use_cache=True, cache_position=position).last_hidden_state
            assert torch.equal(fast_talker.step(x, 9 + step), want), step


def test_a_failed_graph_capture_falls_back_to_the_eager_path_and_says_why(lean, monkeypatch, capsys):
    talker = lean.loaded.tts.model.talker
    predictor = fastpath.StaticCodePredictor(talker)
    predictor.status.enabled = True  # as on CUDA; the capture itself then fails

    def broken(sub):
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(predictor, "_capture", broken)
    sub = fastpath.SubSampling(False, None, None, None)
    gen = torch.Generator().manual_seed(1)
    with torch.inference_mode():
        past, last = torch.randn((2, 1, 1, talker.config.hidden_size), generator=gen)
        codes, embeds = predictor.codes(past, last, sub)
        want_codes, want_embeds = predictor._frame(past, last, sub)
        predictor.codes(past, last, sub)  # no second attempt
    assert torch.equal(codes, want_codes) and torch.equal(embeds, want_embeds) and codes.shape == (1, 15)
    status = predictor.status.as_dict()
    assert status["captured"] == 0 and "CUDA graph capture failed (RuntimeError: operation not permitted" in status["fallback"]
    assert capsys.readouterr().err.count("fast path without CUDA graph") == 1


def test_a_model_the_fast_path_does_not_know_runs_the_lean_loop(tiny_custom_voice, capsys):
    e = Engine(device="cpu", path="fast")
    loaded = e.load(tiny_custom_voice)
    talker = loaded.tts.model.talker
    talker.code_predictor.config._attn_implementation = "flash_attention_2"
    try:
        assert "flash_attention_2" in fastpath.unsupported_reason(talker)
        e._choose_path(loaded)
    finally:
        talker.code_predictor.config._attn_implementation = "sdpa"
    assert loaded.path == "lean" and "cannot run this model" in loaded.path_reason
    assert "cannot run this model" in capsys.readouterr().err


def _fresh_fast(tiny_custom_voice):
    e = Engine(device="cpu", path="fast")
    e.load(tiny_custom_voice)
    return e


def test_a_fast_loop_failing_before_the_first_frame_is_redone_by_the_lean_loop(lean, tiny_custom_voice,
                                                                                 monkeypatch, capsys):
    """The fast loop's own failure (here its code predictor, as a kernel the GPU lacks would) costs the
    operator nothing: the sentence comes from the lean loop with the same random state (the seed's
    codes), and the model stays on the lean loop."""
    e = _fresh_fast(tiny_custom_voice)
    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("no kernel image is available for execution on the device\nsecond line")

    monkeypatch.setattr(e.loaded.fast.predictor, "codes", broken)
    sampling = lean.sampling(max_new_tokens=40)
    got = _codes(e, sampling, seed=11)
    assert len(calls) == 1 and torch.equal(got, _codes(lean, sampling, seed=11))
    assert e.loaded.path == "lean" and e.loaded.fast is None
    assert "failed while generating (RuntimeError: no kernel image is available" in e.loaded.path_reason
    assert "second line" not in e.loaded.path_reason
    assert capsys.readouterr().err.count("[engine] the fast path failed while generating") == 1
    assert torch.equal(_codes(e, sampling, seed=12), _codes(lean, sampling, seed=12)) and len(calls) == 1


def test_a_fast_loop_failing_mid_sentence_reports_the_error_and_the_next_sentence_runs_lean(
        lean, tiny_custom_voice, monkeypatch):
    e = _fresh_fast(tiny_custom_voice)

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(e.loaded.fast.talker, "step", broken)
    sampling = lean.sampling(max_new_tokens=40)
    torch.manual_seed(5)
    frames = e.frames(TEXT, sampling=sampling)
    first = next(frames)  # made before the talker's first decode step
    with pytest.raises(RuntimeError, match="illegal memory access"):
        next(frames)
    assert first.shape == (16,) and e.loaded.path == "lean"
    assert torch.equal(_codes(e, sampling, seed=5), _codes(lean, sampling, seed=5))


def test_a_fast_path_that_cannot_be_prepared_leaves_the_model_loaded_on_the_lean_loop(tiny_custom_voice,
                                                                                       monkeypatch):
    def broken(self, sub):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")

    monkeypatch.setattr(fastpath.FastPath, "prepare", broken)
    e = _fresh_fast(tiny_custom_voice)
    assert e.loaded.path == "lean" and e.loaded.fast is None
    assert "failed while preparing (OutOfMemoryError: CUDA out of memory" in e.loaded.path_reason
    assert len(list(e.frames(TEXT, sampling=e.sampling(max_new_tokens=8)))) > 0
