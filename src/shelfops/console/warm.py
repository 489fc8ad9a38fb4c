"""Fill the console's caches before the first visitor (the slow reads happen once)."""

from __future__ import annotations

import time

from fastapi import FastAPI

from shelfops.console.forecasts import logged_forecasts
from shelfops.console.insights import insights
from shelfops.console.operations import operations
from shelfops.settings import MonitorSettings


def warm(app: FastAPI) -> float:
    """Compute every page's data once; returns the seconds it took."""
    started = time.perf_counter()
    home = app.state.home
    insights(home)
    logged_forecasts(home)
    operations(home, MonitorSettings())
    return time.perf_counter() - started
