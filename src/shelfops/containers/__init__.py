"""Kubernetes workloads below the API, run as real containers on a local engine.

``pods`` turns a rendered pod spec (Helm chart or the rollout engine's InferenceService) into a
``docker run``; ``revisions`` lets the rollout engine run each model revision as such a container.
"""
