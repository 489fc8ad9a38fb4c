"""Training-loop pieces both models share."""

from __future__ import annotations

from torch import Tensor, nn


class EarlyStopping:
    """Keep the best weights by validation loss and say when patience has run out."""

    def __init__(self, patience: int, min_delta: float) -> None:
        """Stop after ``patience`` epochs without improving the best loss by ``min_delta``."""
        self.patience = patience
        self.min_delta = min_delta
        self.best = float("inf")
        self.best_epoch = 0
        self.bad_epochs = 0
        self.best_state: dict[str, Tensor] | None = None

    def step(self, loss: float, epoch: int, net: nn.Module) -> bool:
        """Record one epoch's validation loss (1-based ``epoch``); True means stop training."""
        if loss < self.best - self.min_delta:
            self.best, self.best_epoch, self.bad_epochs = loss, epoch, 0
            self.best_state = {k: v.clone() for k, v in net.state_dict().items()}
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    def restore(self, net: nn.Module, epochs_run: int) -> int:
        """Load the best weights into ``net``; returns the epoch they came from.

        Without validation data every epoch counts, so the last epoch is the best.
        """
        if self.best_state is None:
            return epochs_run
        net.load_state_dict(self.best_state)
        return self.best_epoch
