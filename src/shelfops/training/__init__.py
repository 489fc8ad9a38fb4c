"""Production training: data context, per-model training, the success gate and registration.

``context`` (what training reads), ``demand`` and ``recs`` (training before a cutoff with a
validation window), ``gate`` (the success gate), ``register`` (the model store entry) and ``run``
(train, gate and register every model on all ingested data).
"""
