"""The Kubeflow training pipeline: the steps its components call, local runs, compile, submit."""
