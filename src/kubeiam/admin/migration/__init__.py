"""`kubeiam migrate apply|verify|finish|rollback`: carry out a migration plan from aws-auth to EKS
access entries (the plan itself is :mod:`kubeiam.eks.migration`), keep a record of what was
done, prove it, finish it, undo it."""
