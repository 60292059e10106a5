"""The learning-rate schedule every training here uses: linear warm-up, then cosine decay."""

import math
from collections.abc import Callable


def warmup_cosine(
    total_steps: int, warmup_fraction: float, final_fraction: float
) -> Callable[[int], float]:
    """The factor of the peak learning rate at each step, for `torch.optim.lr_scheduler.LambdaLR`.

    Linear from 0 over the first `warmup_fraction` of the steps, then a cosine from 1 down to
    `final_fraction` at `total_steps` (and flat after).
    """
    warmup = int(warmup_fraction * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return step / warmup
        progress = min((step - warmup) / max(total_steps - warmup, 1), 1.0)
        return final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor
