"""Rollout engine: canary deployments, promotion and rollback of model revisions."""
