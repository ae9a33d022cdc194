"""Administration commands: mapping editing (:mod:`.editing`), the IAM workflows that give people
access (:mod:`.onboarding`) and kubeconfig entries (:mod:`.kubeconfig`)."""
