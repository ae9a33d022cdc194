"""Fixtures of the kube tests; the HTTPS API stand-in and the exec plugin live in kube_api.py."""

from __future__ import annotations

from kube_api import api, ca_pem, pki, plugin

__all__ = ["api", "ca_pem", "pki", "plugin"]
