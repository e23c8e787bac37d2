"""A Llama-family decoder on packed rows: RMSNorm pre-norm, RoPE, SwiGLU, grouped-query attention.

Single-device code; parallelism is applied from outside (`parallelize.py`). Rows arrive packed: several
documents per row, position ids restarting at each document, and `cu_seqlens` giving the documents'
offsets in the flattened (B·L) token stream, so attention never crosses a document boundary. The whole
model works on that flattened stream, T = B·L tokens. Hot ops come from `ops.py` (kernel or reference).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gristmill.trainer.config import ModelConfig
from gristmill.trainer.ops import Ops, build_ops


class RMSNorm(nn.Module):
    """Holds the scale of one RMSNorm; the norm itself is an op (kernel or reference)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))


class Attention(nn.Module):
    """Causal self-attention within documents, n_kv_heads ≤ n_heads (GQA), RoPE on q and k."""

    def __init__(self, config: ModelConfig, ops: Ops) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = config.n_heads, config.n_kv_heads, config.head_dim
        self.rope_theta = config.rope_theta
        self.ops = ops
        self.wq = nn.Linear(config.hidden_size, config.n_heads * config.head_dim, bias=False)
        self.wk = nn.Linear(config.hidden_size, config.n_kv_heads * config.head_dim, bias=False)
        self.wv = nn.Linear(config.hidden_size, config.n_kv_heads * config.head_dim, bias=False)
        self.wo = nn.Linear(config.n_heads * config.head_dim, config.hidden_size, bias=False)

    def forward(
        self, x: torch.Tensor, position_ids: torch.Tensor, cu_seqlens: torch.Tensor, max_seqlen: int
    ) -> torch.Tensor:
        """Return the attention output, (T, hidden), for x (T, hidden)."""
        t = x.shape[0]
        q = self.wq(x).view(t, self.n_heads, self.head_dim)  # (T, nh, hd)
        k = self.wk(x).view(t, self.n_kv_heads, self.head_dim)  # (T, nkv, hd)
        v = self.wv(x).view(t, self.n_kv_heads, self.head_dim)  # (T, nkv, hd)
        q, k = self.ops.apply_rope(q, k, position_ids, self.rope_theta)
        out = self.ops.attention(q, k, v, cu_seqlens, max_seqlen, causal=True)  # (T, nh, hd)
        return self.wo(out.reshape(t, self.n_heads * self.head_dim))  # (T, hidden)


class FeedForward(nn.Module):
    """SwiGLU MLP: down(silu(gate(x)) * up(x))."""

    def __init__(self, config: ModelConfig, ops: Ops) -> None:
        super().__init__()
        self.ops = ops
        self.w_gate = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.w_up = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.w_down = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the MLP output, (T, hidden)."""
        return self.w_down(self.ops.swiglu(self.w_gate(x), self.w_up(x)))


class Block(nn.Module):
    """One pre-norm transformer block: h += attn(norm(h)); h += mlp(norm(h)).

    Both residual additions are fused into the RMSNorm that follows them: the block takes the previous
    block's MLP output (None for the first block) and adds it into h inside its attention norm, and
    returns its own MLP output for the next norm (the next block's, or the final one) to add.
    """

    def __init__(self, config: ModelConfig, ops: Ops) -> None:
        super().__init__()
        self.ops, self.eps = ops, config.norm_eps
        self.attention_norm = RMSNorm(config.hidden_size)
        self.attention = Attention(config, ops)
        self.ffn_norm = RMSNorm(config.hidden_size)
        self.feed_forward = FeedForward(config, ops)

    def forward(
        self,
        h: torch.Tensor,
        pending: torch.Tensor | None,
        position_ids: torch.Tensor,
        cu_seqlens: torch.Tensor,
        max_seqlen: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (h, mlp): the residual stream with everything but this block's MLP output added, and that
        output; h + mlp is the stream after the block. All (T, hidden)."""
        if pending is None:
            normed = self.ops.rms_norm(h, self.attention_norm.weight, self.eps)
        else:
            normed, h = self.ops.rms_norm_residual(pending, h, self.attention_norm.weight, self.eps)
        a = self.attention(normed, position_ids, cu_seqlens, max_seqlen)
        normed, h = self.ops.rms_norm_residual(a, h, self.ffn_norm.weight, self.eps)
        return h, self.feed_forward(normed)


class Transformer(nn.Module):
    """The decoder: embedding, blocks, final norm, LM head (optionally tied to the embedding)."""

    def __init__(self, config: ModelConfig, ops: Ops | None = None) -> None:
        super().__init__()
        if config.vocab_size is None:
            raise ValueError("the model config has no vocab_size; resolve it from the build first")
        self.config = config
        self.ops = ops if ops is not None else build_ops(config.ops, "cpu")
        self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(Block(config, self.ops) for _ in range(config.n_layers))
        self.norm = RMSNorm(config.hidden_size)
        self.lm_head = (
            None if config.tie_embeddings else nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        )
        self.init_weights()

    @property
    def output_weight(self) -> torch.Tensor:
        """Return the LM head's (vocab, hidden) weight: the embedding's when tied."""
        return self.embed.weight if self.lm_head is None else self.lm_head.weight

    @torch.no_grad()
    def init_weights(self) -> None:
        """Normal(0, init_std) matrices, output projections scaled by 1/√(2·n_layers) (GPT-2); unit norms."""
        std = self.config.init_std
        for name, p in self.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            elif name.endswith(("wo.weight", "w_down.weight")):
                p.normal_(0.0, std / math.sqrt(2 * self.config.n_layers))
            else:
                p.normal_(0.0, std)

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        cu_seqlens: torch.Tensor,
        max_seqlen: int,
        targets: torch.Tensor | None = None,
        loss_reduction: str = "mean",
    ) -> torch.Tensor:
        """Return the loss over targets (-100: no loss) when given, else the logits (B, L, vocab).

        input_ids, position_ids, targets: (B, L); cu_seqlens: (segments + 1,) int32 offsets into the
        flattened B·L stream. The loss goes through the fused linear cross-entropy, so training never
        materialises the (B·L, vocab) logits; `loss_reduction` is "mean" over counted targets or "sum", or
        "none" for evaluation: each target's negative log-likelihood, (B·L,) fp32, 0 where ignored.
        """
        b, l = input_ids.shape
        h = self.embed(input_ids.reshape(b * l))  # (T, hidden)
        positions = position_ids.reshape(b * l)  # (T,)
        pending = None  # the last block's MLP output, added into h by the next norm
        for layer in self.layers:
            h, pending = layer(h, pending, positions, cu_seqlens, max_seqlen)
        eps = self.config.norm_eps
        if pending is None:
            h = self.ops.rms_norm(h, self.norm.weight, eps)  # (T, hidden)
        else:
            h, _ = self.ops.rms_norm_residual(pending, h, self.norm.weight, eps)  # (T, hidden)
        if targets is None:
            return F.linear(h, self.output_weight).view(b, l, -1)  # (B, L, vocab)
        if loss_reduction == "none":
            return token_nll(h, self.output_weight, targets.reshape(b * l))
        return self.ops.linear_cross_entropy(
            h, self.output_weight, targets.reshape(b * l), z_loss=self.config.z_loss, reduction=loss_reduction
        )


def token_nll(
    h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100
) -> torch.Tensor:
    """Return each target's negative log-likelihood under logits h @ weight.T, (T,) fp32, 0 where ignored.

    For evaluation (no gradient): fp32 logits a chunk of tokens at a time, at most _NLL_CHUNK_BYTES each.
    """
    out = torch.zeros(h.shape[0], dtype=torch.float32, device=h.device)
    chunk = max(1, _NLL_CHUNK_BYTES // (4 * weight.shape[0]))
    for a in range(0, h.shape[0], chunk):
        t = targets[a : a + chunk]
        keep = t != ignore_index
        logits = _logits_fp32(h[a : a + chunk], weight)  # (chunk, vocab)
        picked = logits.gather(1, t.clamp(min=0)[:, None])[:, 0]
        out[a : a + chunk] = torch.where(keep, torch.logsumexp(logits, dim=-1) - picked, 0.0)
    return out


_NLL_CHUNK_BYTES = 256 << 20


def _logits_fp32(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x @ weight.T in fp32; 16-bit inputs keep the GEMM's fp32 accumulator where torch can (CUDA)."""
    if x.dtype == torch.float32:
        return x @ weight.T
    try:
        return torch.mm(x, weight.T, out_dtype=torch.float32)
    except (RuntimeError, TypeError, NotImplementedError):
        return (x @ weight.T).float()


def count_parameters(config: ModelConfig, include_embedding: bool = False) -> int:
    """Return the number of weights: blocks, final norm and LM head, plus the embedding when asked.

    With tied embeddings the shared matrix is counted once, as the LM head.
    """
    h, v = config.hidden_size, config.vocab_size or 0
    attention = h * config.head_dim * (2 * config.n_heads + 2 * config.n_kv_heads)
    mlp = 3 * h * config.intermediate_size
    blocks = config.n_layers * (attention + mlp + 2 * h)
    head = v * h
    embedding = v * h if include_embedding and not config.tie_embeddings else 0
    return blocks + h + head + embedding


def flops_per_token(config: ModelConfig, seq_len: int) -> float:
    """Return the training FLOPs per token (forward + backward): 6·N for the matmul weights plus causal
    attention scores 6·layers·heads·head_dim·L (PaLM's appendix B, halved for the causal mask)."""
    return 6.0 * count_parameters(config) + 6.0 * config.n_layers * config.n_heads * config.head_dim * seq_len
