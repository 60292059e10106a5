"""The transit: queries for a video frame from earlier slots and the frame itself.

Axes: b batch, w window frames, n slots, p tokens, c token channels, d slot channels.
"""

import torch
from torch import nn


class Transit(nn.Module):
    """Predicts frame t's queries from slots of an earlier frame and a frame's tokens.

    One post-norm transformer decoder layer (no biases): its target is the source slots plus a
    learned embedding of how many frames back they are, its memory is `Linear(tokens)` plus the
    embedding of the memory frame's offset. In evaluation the source is the previous frame's slots
    (offset 1) and the memory is the current frame (offset 0). In training, for a window holding
    more than one earlier frame, each sample draws its source slots uniformly among the earlier
    frames of the window and its memory frame among the frames after the first, which teaches the
    transit to bridge gaps of any size within the window.

    Args:
        token_dim: c. slot_dim: d. window: frames the embedding covers (offsets 0..window-1).
        num_heads: heads. dropout: dropout of the decoder layer (training only).
    """

    def __init__(
        self, token_dim: int, slot_dim: int, window: int, num_heads: int = 4, dropout: float = 0.5
    ):
        super().__init__()
        self.window = window
        self.offset_embedding = nn.Embedding(window, slot_dim)
        self.to_memory = nn.Linear(token_dim, slot_dim)
        self.layer = nn.TransformerDecoderLayer(
            slot_dim,
            num_heads,
            dim_feedforward=4 * slot_dim,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=False,
            bias=False,
        )

    def forward(
        self,
        slots_history: torch.Tensor,
        tokens_history: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """
        Args:
            slots_history: slots of the latest earlier frames `[b,w,n,d]`, oldest first,
                1 <= w <= window - 1.
            tokens_history: tokens of the same frames and the current one `[b,w+1,p,c]`.
            generator: source of the training-time choice of frames.

        Returns:
            queries for the current frame `[b,n,d]`.
        """
        batch_size, num_earlier = slots_history.shape[:2]
        if tokens_history.shape[1] != num_earlier + 1:
            raise ValueError(
                f"tokens_history must hold {num_earlier + 1} frames (the slots' {num_earlier} "
                f"and the current one), got {tokens_history.shape[1]}"
            )
        device = slots_history.device
        if self.training and num_earlier > 1:
            source = torch.randint(0, num_earlier, (batch_size,), generator=generator)
            memory = torch.randint(1, num_earlier + 1, (batch_size,), generator=generator)
            source, memory = source.to(device), memory.to(device)
        else:
            source = torch.full((batch_size,), num_earlier - 1, device=device)
            memory = torch.full((batch_size,), num_earlier, device=device)
        batch = torch.arange(batch_size, device=device)
        target = slots_history[batch, source].detach()
        target = target + self.offset_embedding(num_earlier - source)[:, None]
        tokens = self.to_memory(tokens_history[batch, memory].detach())
        tokens = tokens + self.offset_embedding(num_earlier - memory)[:, None]
        return self.layer(target, tokens)
