"""Fill the console's caches before the first visitor (the slow reads happen once)."""

from __future__ import annotations

import time

from fastapi import FastAPI

from shelfops.console.explorer import example_customers
from shelfops.console.forecasts import forecast_view
from shelfops.console.insights import insights
from shelfops.console.operations import operations
from shelfops.settings import MonitorSettings


def warm(app: FastAPI) -> float:
    """Compute every page's data once; returns the seconds it took."""
    started = time.perf_counter()
    home = app.state.home
    insights(home)
    forecast_view(home, None, None)
    operations(home, MonitorSettings())
    example_customers(home)
    return time.perf_counter() - started
