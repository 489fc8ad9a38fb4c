"""Kubeflow Pipelines v2 for ShelfOps: components, the training DAG, compiled YAML."""
