"""Slot Attention (Locatello et al., 2020) as SmoothSA runs it, with bi-level truncation.

Axes: b batch, n slots, p input tokens, c input channels, d slot channels.
"""

import torch
from einops import rearrange
from torch import nn

RENORMALISATION_EPS = 1e-5


class SlotAttention(nn.Module):
    """Iterative competitive attention from queries (slots) over input tokens.

    Each iteration: `q = W_q LayerNorm(slots)`; attention logits `q . k / sqrt(d)` with the
    softmax over SLOTS (slots compete for tokens), renormalised over tokens; `updates = a v`;
    `slots = GRU(updates, slots)`; `slots = slots + MLP(LayerNorm(slots))`. Before the last
    iteration the slots are detached except for a straight-through path to the initial queries
    (bi-level truncation, BO-QSA), so gradients reach the queries but not earlier iterations;
    `truncate=False` backpropagates through every iteration, as the original Slot Attention.

    Args:
        input_dim: channels c of the input tokens.
        slot_dim: channels d of the slots.
        num_iterations: default number of iterations; `forward` can override it per call.
        truncate: bi-level truncation of the gradients.
    """

    def __init__(
        self, input_dim: int, slot_dim: int, num_iterations: int = 3, truncate: bool = True
    ):
        super().__init__()
        self.num_iterations = num_iterations
        self.truncate = truncate
        self.norm_slots = nn.LayerNorm(slot_dim)
        self.to_q = nn.Linear(slot_dim, slot_dim, bias=False)
        self.norm_inputs = nn.LayerNorm(input_dim)
        self.to_k = nn.Linear(input_dim, slot_dim, bias=False)
        self.to_v = nn.Linear(input_dim, slot_dim, bias=False)
        self.gru = nn.GRUCell(slot_dim, slot_dim)
        self.norm_mlp = nn.LayerNorm(slot_dim)
        self.mlp = nn.Sequential(
            nn.Linear(slot_dim, 4 * slot_dim), nn.GELU(), nn.Linear(4 * slot_dim, slot_dim)
        )

    def forward(
        self,
        inputs: torch.Tensor,
        queries: torch.Tensor,
        num_iterations: int | None = None,
        slot_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            inputs: tokens `[b,p,c]`.
            queries: initial slots `[b,n,d]`.
            num_iterations: iterations for this call (default: the constructor's).
            slot_mask: `[b,n]` bool, True for slots that take part; masked slots get no
                attention.

        Returns:
            slots `[b,n,d]` and the last iteration's attention `[b,n,p]` (softmax over slots).
        """
        num_iterations = num_iterations or self.num_iterations
        inputs = self.norm_inputs(inputs)
        k, v = self.to_k(inputs), self.to_v(inputs)
        slots = queries
        for iteration in range(num_iterations):
            if self.truncate and iteration == num_iterations - 1:
                slots = slots.detach() + queries - queries.detach()
            slots_prev = slots
            q = self.to_q(self.norm_slots(slots))
            updates, attention = self.attend(q, k, v, slot_mask)
            slots = self.gru(
                rearrange(updates, "b n d -> (b n) d"), rearrange(slots_prev, "b n d -> (b n) d")
            )
            slots = rearrange(slots, "(b n) d -> b n d", b=queries.shape[0])
            slots = slots + self.mlp(self.norm_mlp(slots))
        return slots, attention

    @staticmethod
    def attend(
        q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, slot_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Inverted attention: softmax over slots `n`, then a weighted mean over tokens `p`.

        Returns updates `[b,n,d]` and the attention before renormalisation `[b,n,p]`.
        """
        logits = torch.einsum("bnd,bpd->bnp", q * q.shape[-1] ** -0.5, k)
        if slot_mask is not None:
            logits = logits.masked_fill(~slot_mask[:, :, None], float("-inf"))
        attention = logits.softmax(dim=1)
        weights = attention / (attention.sum(dim=2, keepdim=True) + RENORMALISATION_EPS)
        return torch.einsum("bnp,bpd->bnd", weights, v), attention
