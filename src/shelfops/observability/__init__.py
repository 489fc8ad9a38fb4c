"""Observability: the Prometheus metric catalogue that ShelfOps services export."""
