"""A pre-norm transformer decoder layer whose block order and norms are arguments.

SmoothSA uses it twice: the preheater runs cross-attention first with no norm before it, and the
feature decoder's first layer has its self-attention norm lifted out and applied once up front.

Axes: b batch, q query tokens, m memory tokens, c channels.
"""

import torch
from torch import nn


class PreNormDecoderLayer(nn.Module):
    """`x + SelfAttention(norm(x))`, `x + CrossAttention(norm(x), memory)`, `x + FFN(norm(x))`.

    Args:
        dim: channels c of queries and memory.
        num_heads: attention heads.
        cross_attention_first: run the cross-attention block before the self-attention block.
        norm_before_self, norm_before_cross: whether a LayerNorm precedes that block.
        dropout: dropout inside the attention and feed-forward blocks.

    No linear layer or norm has a bias; the feed-forward is c -> 4c -> c with GELU.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        cross_attention_first: bool = False,
        norm_before_self: bool = True,
        norm_before_cross: bool = True,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.cross_attention_first = cross_attention_first
        self.self_attention = nn.MultiheadAttention(
            dim, num_heads, dropout=dropout, bias=False, batch_first=True
        )
        self.cross_attention = nn.MultiheadAttention(
            dim, num_heads, dropout=dropout, bias=False, batch_first=True
        )
        self.norm_self = nn.LayerNorm(dim, bias=False) if norm_before_self else nn.Identity()
        self.norm_cross = nn.LayerNorm(dim, bias=False) if norm_before_cross else nn.Identity()
        self.norm_feedforward = nn.LayerNorm(dim, bias=False)
        self.feedforward = nn.Sequential(
            nn.Linear(dim, 4 * dim, bias=False),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(4 * dim, dim, bias=False),
        )
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        memory_padding_mask: torch.Tensor | None = None,
        return_cross_attention: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """
        Args:
            x: queries `[b,q,c]`.
            memory: `[b,m,c]`.
            memory_padding_mask: `[b,m]`, True where a memory token must be ignored.
            return_cross_attention: also return the cross-attention weights.

        Returns:
            `[b,q,c]`, and the cross-attention weights averaged over heads `[b,q,m]` (or None).
        """
        cross_attention = None

        def attend_memory(x):
            nonlocal cross_attention
            h = self.norm_cross(x)
            h, cross_attention = self.cross_attention(
                h, memory, memory,
                key_padding_mask=memory_padding_mask,
                need_weights=return_cross_attention,
            )
            return x + self.dropout(h)

        def attend_self(x):
            h = self.norm_self(x)
            h, _ = self.self_attention(h, h, h, need_weights=False)
            return x + self.dropout(h)

        if self.cross_attention_first:
            x = attend_self(attend_memory(x))
        else:
            x = attend_memory(attend_self(x))
        x = x + self.dropout(self.feedforward(self.norm_feedforward(x)))
        return x, cross_attention
