"""Kubeconfig editing (:mod:`.update`) beside the comment-keeping YAML round trip it uses
(:mod:`.roundtrip`)."""
