"""kubeiam: AWS IAM authentication for Kubernetes.

The public API is re-exported here lazily (PEP 562), so that ``import kubeiam`` stays cheap for
the token plugin, whose start-up time users feel on every kubectl run.
"""

# ``typing`` costs the token plugin ~10 ms of start-up (it imports ``re``); annotations only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

#: public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "AWSAdminError": "kubeiam.errors",
    "ConfigError": "kubeiam.errors",
    "CredentialsError": "kubeiam.errors",
    "IAMAdmin": "kubeiam.admin.onboarding.iam_admin",
    "Identity": "kubeiam.identity",
    "KubeIAMError": "kubeiam.errors",
    "KubeUser": "kubeiam.mapping.chain",
    "MappingChain": "kubeiam.mapping.chain",
    "MappingDeniedError": "kubeiam.errors",
    "MappingEditor": "kubeiam.admin.editing.editor",
    "MappingError": "kubeiam.errors",
    "MappingWriter": "kubeiam.admin.editing.writer",
    "PresignedRequest": "kubeiam.token.validation",
    "STSClient": "kubeiam.token.sts",
    "STSError": "kubeiam.errors",
    "STSThrottledError": "kubeiam.errors",
    "STSUnavailableError": "kubeiam.errors",
    "StoreMappingWriter": "kubeiam.admin.editing.store_writer",
    "TokenError": "kubeiam.errors",
    "TokenExpiredError": "kubeiam.errors",
    "TokenFormatError": "kubeiam.errors",
    "Verifier": "kubeiam.token.verifier",
    "decode_token": "kubeiam.token.encoding",
    "encode_token": "kubeiam.token.encoding",
    "validate_token": "kubeiam.token.validation",
    "verify_token_sync": "kubeiam.token.verifier",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> "Any":
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kubeiam' has no attribute {name!r}")
    import importlib  # here, not at the top: the token plugin never needs it

    return getattr(importlib.import_module(module), name)
