"""Data layer: contracts, the synthetic retailer, ingestion with quarantine, and privacy."""
