"""Initial slot queries: SmoothSA's preheater, the plain shared Gaussian it improves on, and
BO-QSA's learned per-slot queries.

Axes: b batch, n slots, p tokens, c token channels, d slot channels.
"""

import torch
from torch import nn

from ocl.decoder_layer import PreNormDecoderLayer


def draw_noise(
    shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """Standard normal noise of `shape` with `like`'s dtype and device, from `generator` (which
    may live on another device: a CPU generator gives the same noise to a model on any device)."""
    device = like.device if generator is None else generator.device
    return torch.randn(shape, generator=generator, dtype=like.dtype, device=device).to(like.device)


class ColdStart(nn.Module):
    """Queries that do not read the frame; `sample(batch_size, noise, generator)` gives them."""

    def forward(
        self,
        tokens: torch.Tensor,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[None, torch.Tensor]:
        """No initial queries to distil; the cold-start queries `[b,n,d]` for `tokens` `[b,p,c]`."""
        return None, self.sample(tokens.shape[0], noise, generator)


class SharedGaussianQueries(ColdStart):
    """Slot Attention's initialisation: every slot drawn from one learned Gaussian `[1,1,d]`.

    The noise is drawn in evaluation too, as in SmoothSA's shared Gaussian.
    """

    def __init__(self, num_slots: int, slot_dim: int):
        super().__init__()
        self.num_slots = num_slots
        self.mean = nn.Parameter(torch.zeros(1, 1, slot_dim))
        self.logstd = nn.Parameter(torch.zeros(1, 1, slot_dim))

    def sample(
        self, batch_size: int, noise: torch.Tensor | None, generator: torch.Generator | None
    ) -> torch.Tensor:
        """`mean + noise * exp(logstd)`, `[b,n,d]`; `noise` `[b,n,d]` is drawn when None."""
        mean = self.mean.expand(batch_size, self.num_slots, -1)
        if noise is None:
            noise = draw_noise(mean.shape, mean, generator)
        elif noise.shape != mean.shape:
            raise ValueError(f"noise must have shape {tuple(mean.shape)}, got {tuple(noise.shape)}")
        return mean + noise * self.logstd.exp()


class LearnedQueries(ColdStart):
    """BO-QSA's initialisation (Jia et al., 2023): one learned query per slot `[1,n,d]`, the same
    for every input and without noise, so slots differ from the start."""

    def __init__(self, num_slots: int, slot_dim: int):
        super().__init__()
        self.queries = nn.Parameter(torch.empty(1, num_slots, slot_dim))
        nn.init.xavier_uniform_(self.queries[0])

    def sample(
        self, batch_size: int, noise: torch.Tensor | None, generator: torch.Generator | None
    ) -> torch.Tensor:
        """The learned queries `[b,n,d]` (`noise` and `generator` are unused)."""
        return self.queries.expand(batch_size, -1, -1)


class Preheater(nn.Module):
    """Preheated queries: a cold-start sample refined by one decoder layer that reads the frame.

    The sample attends to the (projected) frame tokens first, then to itself, then an FFN:
    `initial_queries = Layer(sample, Linear(tokens))`. Training distils `initial_queries` towards
    the slots Slot Attention converges to (self-distillation), so the queries start close to the
    answer. Slot Attention starts from `initial_queries.detach()` plus, in training, noise of a
    second learned scale. While `detach_flag` is on (the first 10% of training), the tokens are
    detached so the distillation loss does not shape the encoder early on.

    The cold start is the shared Gaussian (the paper's) or BO-QSA's learned per-slot queries, with
    which the slots differ before they read the frame.

    Args:
        cold_start: gives the sample `[b,n,d]` the layer refines.
        slot_dim: d. token_dim: c. num_heads: heads of the decoder layer.
    """

    def __init__(self, cold_start: ColdStart, slot_dim: int, token_dim: int, num_heads: int = 4):
        super().__init__()
        self.cold_start = cold_start
        self.to_memory = nn.Linear(token_dim, slot_dim)
        self.layer = PreNormDecoderLayer(
            slot_dim, num_heads, cross_attention_first=True, norm_before_cross=False
        )
        self.logstd_queries = nn.Parameter(torch.zeros(1, 1, slot_dim))
        self.register_buffer("detach_flag", torch.tensor(True))

    def forward(
        self,
        tokens: torch.Tensor,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            tokens: projected frame tokens `[b,p,c]`.
            noise: standard normal `[b,n,d]` for a Gaussian cold start (drawn when None).
            generator: source of the noise when it is drawn.

        Returns:
            initial_queries `[b,n,d]` (the distillation student) and the queries Slot Attention
            starts from `[b,n,d]`.
        """
        sample = self.cold_start.sample(tokens.shape[0], noise, generator)
        if self.detach_flag:
            tokens = tokens.detach()
        initial_queries, _ = self.layer(sample, self.to_memory(tokens))
        queries = initial_queries.detach()
        if self.training:
            jitter = draw_noise(queries.shape, queries, generator)
            queries = queries + jitter * self.logstd_queries.exp()
        return initial_queries, queries
