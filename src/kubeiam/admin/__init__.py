"""Administration commands: kubeconfig entries and the IAM seed workflows."""
