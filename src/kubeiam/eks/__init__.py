"""EKS access-entry concepts shared by the access-entries store, the migration and the access
report: the AWS-managed access policies and what each permits (pure data from AWS's docs).

The local EKS emulator (:mod:`kubeiam.localaws.eks_rules`) deliberately does not import this
package: it is an independent check of what kubeiam believes about EKS.
"""

from __future__ import annotations
