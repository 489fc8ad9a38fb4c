"""ShelfOps: retail ML from raw transactions to canary-served models."""

__version__ = "0.1.0"
