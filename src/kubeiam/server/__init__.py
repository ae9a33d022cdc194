"""The TokenReview webhook: ``kubeiam server`` and ``kubeiam init``."""
