"""Feature engineering and the Feast feature store."""
