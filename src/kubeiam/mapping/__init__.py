"""Identity mapping: from a verified AWS identity to a Kubernetes username and groups.

``model`` (entries, precedence, indexed lookup), ``templates`` (placeholders, reserved prefixes),
``aws_auth`` (the ConfigMap's data, read fast or edited round-trip), ``chain`` (ordered backends),
and ``backends`` (MountedFile, DynamicFile, EKSConfigMap, CRD). See docs/mapping.md.
"""
