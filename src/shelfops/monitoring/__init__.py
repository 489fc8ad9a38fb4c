"""Monitoring that closes the loop: prediction and feedback logs, drift, accuracy, cost, triggers.

Modules: :mod:`~shelfops.monitoring.store` (the logs the services write),
:mod:`~shelfops.monitoring.drift` (PSI, KS and the training reference),
:mod:`~shelfops.monitoring.performance` (accuracy on arrived actuals, hit rate, adoption),
:mod:`~shelfops.monitoring.cost` (cost per 1,000 predictions), :mod:`~shelfops.monitoring.check`
(thresholds and the retraining trigger), :mod:`~shelfops.monitoring.sink` (the KServe payload
logger sink) and :mod:`~shelfops.monitoring.report` (the HTML report). Nothing runs at import.
"""
