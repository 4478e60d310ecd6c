"""The audition engine's fast path: the same arithmetic as the lean loop, with less host work per frame.

The lean loop (`loop.lean_frames`) calls qwen-tts's decoder layers through HF: per frame one
talker forward (28 layers) and 15 code-predictor forwards (5 layers each), each a few hundred small
kernels plus Python (cache objects, mask building, kwargs plumbing) and two host syncs per sampled token
(`torch.multinomial` checks its input with `.item()`). The GPU work itself is a millisecond or two.

Here the layers are written out with the modules' own weights (no copies), op for op as qwen-tts and
transformers compute them, so the numbers are the same bits:

* `StaticCodePredictor`: codebooks 1..15 of a frame. Preallocated K/V for the predictor's 16 positions
  (2 + 14), rotary tables made once, every step's shapes fixed, sampling on the device with the
  sub-talker's processors (temperature, top-k, top-p: the ones `generate` builds for it) and
  `sample_token`, a sync-free copy of what `torch.multinomial(p, 1)` computes. On CUDA the whole
  15-step loop plus the frame's summed embedding is captured once into a `torch.cuda.CUDAGraph` and
  replayed per frame; if capture (or its self-check against the eager path) fails, the eager static
  path runs instead and the reason is kept and logged.
* `StaticTalker`: the talker's decode step with preallocated K/V (prompt + frame budget), rotary
  positions computed once per step instead of once per layer, no mask building (for one query over an
  unpadded prompt transformers' sdpa mask is None: checked by the equality tests). Eager, not captured:
  a captured talker step would have to attend over a masked fixed-length cache, which is a different
  kernel and not the same bits as stock.

`tests/audition/test_fastpath.py` checks the codes against the lean loop and stock
`generate_custom_voice` (greedy and seeded sampling), layer by layer and for the sampler.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from contract.errors import one_line
from inference.sampling import SubSampling, log, sample_token, warpers

GRAPH_CACHE = 4   # captured graphs kept per model (one per distinct sub-talker sampling setting)


# ---- the pieces, op for op as qwen-tts / transformers -------------------------------------------------
def rotate_half(x):
    import torch

    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def attention_function(attn):
    """What qwen-tts's attention module calls for its configured implementation."""
    if attn.config._attn_implementation == "eager":
        from qwen_tts.core.models.modeling_qwen3_tts import eager_attention_forward

        return eager_attention_forward
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    return ALL_ATTENTION_FUNCTIONS[attn.config._attn_implementation]


class _Norm:
    __slots__ = ("weight", "eps")

    def __init__(self, norm) -> None:
        self.weight, self.eps = norm.weight, norm.variance_epsilon


def _rms(x, norm: _Norm):
    """Qwen3TTSRMSNorm.forward, op for op, with the weight and epsilon held in a plain record."""
    import torch

    dtype = x.dtype
    h = x.to(torch.float32)
    variance = h.pow(2).mean(-1, keepdim=True)
    h = h * torch.rsqrt(variance + norm.eps)
    return norm.weight * h.to(dtype)


class _Layer:
    """References (not copies) to one decoder layer's weights, so the hot loop reads plain attributes
    instead of going through nn.Module.__getattr__ a few dozen times per layer."""
    __slots__ = ("attn", "in_norm", "post_norm", "q_norm", "k_norm", "q", "k", "v", "o", "gate", "up", "down", "act",
                 "head_dim", "scaling", "sliding_window")

    def __init__(self, layer) -> None:
        attn = layer.self_attn
        self.attn = attn
        self.in_norm, self.post_norm = _Norm(layer.input_layernorm), _Norm(layer.post_attention_layernorm)
        self.q_norm, self.k_norm = _Norm(attn.q_norm), _Norm(attn.k_norm)
        self.q, self.k, self.v, self.o = ((m.weight, m.bias) for m in (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj))
        self.gate, self.up, self.down = ((m.weight, m.bias) for m in (layer.mlp.gate_proj, layer.mlp.up_proj, layer.mlp.down_proj))
        self.act = layer.mlp.act_fn
        self.head_dim, self.scaling, self.sliding_window = attn.head_dim, attn.scaling, attn.sliding_window


def _layer_forward(x, L: _Layer, n: int, cos, sin, k_cache, v_cache, start: int, attn_fn):
    """One decoder layer (Qwen3TTSDecoderLayer / Qwen3TTSTalkerDecoderLayer with its attention) for `n` new
    positions written at [start, start + n) of the static cache, attending over [0, start + n). `cos`/`sin`
    are already shaped for the heads (what apply_rotary_pos_emb / apply_multimodal_rotary_pos_emb use)."""
    import torch.nn.functional as F

    end = start + n
    residual = x
    h = _rms(x, L.in_norm)
    shape = (1, n, -1, L.head_dim)
    q = _rms(F.linear(h, *L.q).view(shape), L.q_norm).transpose(1, 2)
    k = _rms(F.linear(h, *L.k).view(shape), L.k_norm).transpose(1, 2)
    v = F.linear(h, *L.v).view(shape).transpose(1, 2)
    q = (q * cos) + (rotate_half(q) * sin)
    k = (k * cos) + (rotate_half(k) * sin)
    k_cache[:, :, start:end].copy_(k)
    v_cache[:, :, start:end].copy_(v)
    # Contiguous, as HF's cache hands them over (torch.cat): the same layout, so the same kernel.
    out, _ = attn_fn(L.attn, q, k_cache[:, :, :end].contiguous(), v_cache[:, :, :end].contiguous(), None,
                     dropout=0.0, scaling=L.scaling, sliding_window=L.sliding_window)
    x = residual + F.linear(out.reshape(1, n, -1).contiguous(), *L.o)
    residual = x
    h = _rms(x, L.post_norm)
    return residual + F.linear(L.act(F.linear(h, *L.gate)) * F.linear(h, *L.up), *L.down)


def unsupported_reason(talker) -> str | None:
    """Why the fast path cannot run this model (None: it can). The lean loop runs instead."""
    cp = talker.code_predictor
    for name, cfg in (("talker", talker.config), ("code predictor", cp.config)):
        if cfg._attn_implementation not in ("sdpa", "eager"):
            return f"{name} attention {cfg._attn_implementation!r} (the fast path knows sdpa and eager)"
        if getattr(cfg, "sliding_window", None) is not None and getattr(cfg, "use_sliding_window", True):
            if name == "talker" or "sliding_attention" in getattr(cfg, "layer_types", ()):
                return f"{name} uses sliding-window attention"
    if talker.config.rope_scaling is None or "mrope_section" not in talker.config.rope_scaling:
        return "talker without multimodal rope sections"
    return None


# ---- the code predictor ------------------------------------------------------------------------------
@dataclass
class GraphStatus:
    enabled: bool = False            # graphs wanted (CUDA and not disabled)
    captured: int = 0                # graphs captured so far
    capture_s: float = 0.0           # seconds spent capturing (warm-up, capture, self-check), all graphs
    fallback: str | None = None      # why the eager static path runs instead (None: no fallback)
    keys: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"enabled": self.enabled, "captured": self.captured, "capture_s": round(self.capture_s, 3),
                "fallback": self.fallback}


class StaticCodePredictor:
    """Codebooks 1..15 of a frame, as `code_predictor.generate(max_new_tokens=15)` computes them.

    Step 0 feeds [past_hidden, codebook-0 embedding] at positions 0-1, step s feeds the embedding of
    code s at position s+1; K/V live in fixed [1, kv_heads, 16, head_dim] buffers and step s attends over
    the first s+2 of them (a fixed slice per step, so every step has the shapes HF's growing cache has)."""

    def __init__(self, talker, graphs: bool = False) -> None:
        import torch

        self.talker = talker
        self.cp = talker.code_predictor
        self.model = self.cp.model
        self.groups = talker.config.num_code_groups
        self.sub_embeds = self.cp.get_input_embeddings()
        self.layers = list(self.model.layers[: self.model.config.num_hidden_layers])
        self._layers = [_Layer(layer) for layer in self.layers]
        self._norm = _Norm(self.model.norm)
        self.attn_fn = attention_function(self.layers[0].self_attn)
        param = next(self.cp.parameters())
        self.device, self.dtype = param.device, param.dtype
        attn = self.layers[0].self_attn
        self.head_dim = attn.head_dim
        kv_heads = self.model.config.num_key_value_heads
        positions = torch.arange(self.groups + 1, device=self.device)
        hidden = talker.config.hidden_size
        with torch.inference_mode():
            # The rotary tables exactly as the model makes them for these positions (the lean loop's).
            dummy = torch.zeros((1, 1, self.model.config.hidden_size), dtype=self.dtype, device=self.device)
            rope = [self.model.rotary_emb(dummy, positions[:2][None])] + [
                self.model.rotary_emb(dummy, positions[i:i + 1][None]) for i in range(2, self.groups + 1)]
            self.rope = [(c.unsqueeze(1), s.unsqueeze(1)) for c, s in rope]
            shape = (1, kv_heads, self.groups, self.head_dim)
            self.k = [torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in self.layers]
            self.v = [torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in self.layers]
            # Static inputs and outputs of a captured frame.
            self.in_past = torch.zeros((1, 1, hidden), dtype=self.dtype, device=self.device)
            self.in_last = torch.zeros((1, 1, hidden), dtype=self.dtype, device=self.device)
        self.status = GraphStatus(enabled=bool(graphs) and self.device.type == "cuda")
        self._graphs: dict = {}      # SubSampling -> (graph, codes_out, embeds_out)
        self._warpers: dict = {}

    def warpers(self, sub: SubSampling) -> list:
        if sub not in self._warpers:
            self._warpers[sub] = warpers(sub.do_sample, sub.temperature, sub.top_k, sub.top_p)
        return self._warpers[sub]

    def _step(self, embeds, step: int):
        """One predictor forward over the static cache: float32 logits of code step+1."""
        import torch

        h = self.cp.small_to_mtp_projection(embeds)
        n = h.shape[1]
        start = 0 if step == 0 else step + 1
        cos, sin = self.rope[step]
        for i, layer in enumerate(self._layers):
            h = _layer_forward(h, layer, n, cos, sin, self.k[i], self.v[i], start, self.attn_fn)
        h = _rms(h, self._norm)
        return self.cp.lm_head[step](h)[:, -1, :].to(copy=True, dtype=torch.float32)

    def _frame(self, past_hidden, last_id_hidden, sub: SubSampling):
        """The 15 codes [1, 15] and the talker's next input embedding [1, 1, H] (sum of the frame's 16)."""
        import torch

        procs = self.warpers(sub)
        embeds = torch.cat((past_hidden, last_id_hidden), dim=1)
        tokens = []
        for step in range(self.groups - 1):
            if step > 0:
                embeds = self.sub_embeds[step - 1](tokens[-1][:, None])
            scores = self._step(embeds, step)
            for proc in procs:
                scores = proc(None, scores)
            tokens.append(sample_token(scores, sub.do_sample))
        codes = torch.stack(tokens, dim=1)
        # The talker's next input, as stock sums it (same order as the lean loop's frame_embedding).
        hiddens = torch.cat([last_id_hidden] + [self.sub_embeds[i](codes[..., i:i + 1]) for i in range(self.groups - 1)],
                            dim=1)
        return codes, hiddens.sum(1, keepdim=True)

    def codes(self, past_hidden, last_id_hidden, sub: SubSampling):
        graph = self._graph(sub) if self.status.enabled else None
        if graph is None:
            return self._frame(past_hidden, last_id_hidden, sub)
        g, codes, embeds = graph
        self.in_past.copy_(past_hidden)
        self.in_last.copy_(last_id_hidden)
        g.replay()
        return codes, embeds

    # ---- CUDA graph capture (CUDA only; the eager path above is what runs everywhere else) ----------
    def _graph(self, sub: SubSampling):
        if sub in self._graphs:
            return self._graphs[sub]
        if self.status.fallback is not None:
            return None
        t0 = time.perf_counter()
        try:
            captured = self._capture(sub)
        except Exception as exc:  # noqa: BLE001 - any failure means: run eagerly, say why
            captured = None
            self.status.fallback = f"CUDA graph capture failed ({one_line(exc)})"
        self.status.capture_s += time.perf_counter() - t0
        if captured is None:
            log(f"fast path without CUDA graph: {self.status.fallback}")
            return None
        if len(self._graphs) >= GRAPH_CACHE:
            self._graphs.pop(next(iter(self._graphs)))
        self._graphs[sub] = captured
        self.status.captured += 1
        self.status.keys.append(sub)
        log(f"captured the code predictor's frame as a CUDA graph in {time.perf_counter() - t0:.2f} s ({sub})")
        return captured

    def _capture(self, sub: SubSampling):
        """Warm up on a side stream, capture one frame, then check one replay against the eager path
        (same random inputs, same seed). The random state is restored afterwards: capturing must not
        change what the caller's seed produces."""
        import torch

        device = self.device
        with torch.cuda.device(device), torch.random.fork_rng(devices=[device], device_type=device.type), \
                torch.inference_mode():
            gen = torch.Generator(device=device).manual_seed(1234)
            past = torch.randn(self.in_past.shape, generator=gen, device=device).to(self.dtype)
            last = torch.randn(self.in_last.shape, generator=gen, device=device).to(self.dtype)
            self.in_past.copy_(past)
            self.in_last.copy_(last)
            side = torch.cuda.Stream(device=device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                for _ in range(2):
                    self._frame(self.in_past, self.in_last, sub)
            torch.cuda.current_stream(device).wait_stream(side)
            torch.cuda.synchronize(device)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                codes, embeds = self._frame(self.in_past, self.in_last, sub)
            # Self-check: replay and eager from the same random state give the same codes and embedding.
            torch.cuda.manual_seed(99)
            graph.replay()
            got = (codes.clone(), embeds.clone())
            torch.cuda.manual_seed(99)
            want = self._frame(past, last, sub)
            torch.cuda.synchronize(device)
            if not (torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])):
                raise RuntimeError("a replay of the captured frame differs from the eager frame")
        return graph, codes, embeds


# ---- the talker's decode step ------------------------------------------------------------------------
class StaticTalker:
    """The talker's decode step over preallocated K/V. `prefill` runs qwen-tts's own talker forward on the
    prompt (as the lean loop does) and copies its cache into buffers sized for the sentence; `step`
    then runs one position through the layers written out."""

    def __init__(self, talker) -> None:
        self.talker = talker
        self.model = talker.model
        self.layers = list(self.model.layers)
        self._layers = [_Layer(layer) for layer in self.layers]
        self._norm = _Norm(self.model.norm)
        self.attn_fn = attention_function(self.layers[0].self_attn)
        param = next(self.model.parameters())
        self.device, self.dtype = param.device, param.dtype
        rope = talker.config.rope_scaling
        self.mrope_section = list(rope["mrope_section"])
        self.interleaved = bool(rope.get("interleaved", False))
        self.k: list = []
        self.v: list = []
        self.capacity = 0
        self.positions = None

    def _reserve(self, length: int) -> None:
        import torch

        if length <= self.capacity:
            return
        attn = self.layers[0].self_attn
        shape = (1, self.talker.config.num_key_value_heads, length, attn.head_dim)
        self.k = self.v = []  # free the old buffers first
        self.k = [torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in self.layers]
        self.v = [torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in self.layers]
        self.capacity = length

    def prefill(self, p: dict, max_new: int):
        """(past_hidden, float32 logits) of the prompt; the cache ready for `max_new` steps."""
        import torch
        from transformers import DynamicCache

        embeds = p["inputs_embeds"]
        length = embeds.shape[1]
        cache = DynamicCache()
        out = self.talker(inputs_embeds=embeds, attention_mask=p["attention_mask"], past_key_values=cache,
                          use_cache=True, cache_position=torch.arange(length, device=embeds.device),
                          trailing_text_hidden=p["trailing_text_hidden"], tts_pad_embed=p["tts_pad_embed"])
        self._reserve(length + max_new)
        for i, layer in enumerate(cache.layers[: len(self.layers)]):
            self.k[i][:, :, :length].copy_(layer.keys)
            self.v[i][:, :, :length].copy_(layer.values)
        del cache
        # Decode positions: cache position + rope delta, as the talker's forward computes them (device side).
        self.positions = torch.arange(length + max_new + 1, device=embeds.device) + self.talker.rope_deltas.reshape(-1)[0]
        return out.past_hidden, out.logits[:, -1, :].to(copy=True, dtype=torch.float32)

    def _rope(self, x, pos: int):
        """cos/sin of one decode position, computed by the talker's rotary module and merged across the
        three mrope sections the way apply_multimodal_rotary_pos_emb does (a pure selection of values)."""
        import torch

        position_ids = self.positions[pos:pos + 1].view(1, 1).unsqueeze(0).expand(3, -1, -1)
        cos, sin = self.model.rotary_emb(x, position_ids)
        section = self.mrope_section
        if self.interleaved:
            modality = len(section)

            def interleave(t):
                out = t[0].clone()
                for i, n in enumerate(section[1:], 1):
                    out[..., i:n * modality:modality] = t[i, ..., i:n * modality:modality]
                return out

            half = cos.shape[-1] // 2
            cos = torch.cat([interleave(cos[..., :half])] * 2, dim=-1)
            sin = torch.cat([interleave(sin[..., :half])] * 2, dim=-1)
        else:
            doubled = section * 2
            cos = torch.cat([m[i % 3] for i, m in enumerate(cos.split(doubled, dim=-1))], dim=-1)
            sin = torch.cat([m[i % 3] for i, m in enumerate(sin.split(doubled, dim=-1))], dim=-1)
        return cos.unsqueeze(1), sin.unsqueeze(1)

    def step(self, embeds, pos: int):
        """Hidden state [1, 1, H] (after the final norm) of the input at cache position `pos`."""
        cos, sin = self._rope(embeds, pos)
        h = embeds
        for i, layer in enumerate(self._layers):
            h = _layer_forward(h, layer, 1, cos, sin, self.k[i], self.v[i], pos, self.attn_fn)
        return _rms(h, self._norm)

    def release(self) -> None:
        self.k, self.v, self.capacity, self.positions = [], [], 0, None


class FastPath:
    """Per loaded model: the static talker and code predictor (and its graphs)."""

    def __init__(self, talker, graphs: bool) -> None:
        self.talker = StaticTalker(talker)
        self.predictor = StaticCodePredictor(talker, graphs=graphs)

    def prepare(self, sub: SubSampling) -> None:
        """Capture the graph for these sub-talker settings now (CUDA), so no audition pays for it."""
        import torch

        if self.predictor.status.enabled:
            with torch.inference_mode():
                self.predictor._graph(sub)

    def status(self) -> dict:
        return self.predictor.status.as_dict()

    def release(self) -> None:
        """Drop the graphs and buffers (before the model itself goes)."""
        self.predictor._graphs.clear()
        self.talker.release()
