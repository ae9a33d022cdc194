"""``kubeiam``'s public API: the names ``__all__`` promises, and that they load lazily.

The list below is the contract users import from; adding or removing a name is a decision, so
it changes here on purpose. ``import kubeiam`` must stay cheap (the token plugin pays for it on
every kubectl run): a name's module is imported when the name is first used, not before.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import kubeiam

PUBLIC = (
    "AWSAdminError",
    "ConfigError",
    "CredentialsError",
    "IAMAdmin",
    "Identity",
    "KubeIAMError",
    "KubeUser",
    "MappingChain",
    "MappingDeniedError",
    "MappingEditor",
    "MappingError",
    "MappingWriter",
    "PresignedRequest",
    "STSClient",
    "STSError",
    "STSThrottledError",
    "STSUnavailableError",
    "StoreMappingWriter",
    "TokenError",
    "TokenExpiredError",
    "TokenFormatError",
    "Verifier",
    "__version__",
    "decode_token",
    "encode_token",
    "validate_token",
    "verify_token_sync",
)
EXPORTS = [name for name in PUBLIC if name != "__version__"]


def test_all_is_the_public_list_sorted() -> None:
    assert kubeiam.__all__ == sorted(PUBLIC)
    assert len(set(kubeiam.__all__)) == len(kubeiam.__all__)


@pytest.mark.parametrize("name", EXPORTS, ids=EXPORTS)
def test_each_export_is_the_object_of_that_name_in_kubeiam(name: str) -> None:
    value = getattr(kubeiam, name)
    assert value.__name__ == name
    assert value.__module__.startswith("kubeiam.")


def test_version_is_a_release_number() -> None:
    assert all(part.isdigit() for part in kubeiam.__version__.split("."))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="module 'kubeiam' has no attribute 'Nope'"):
        _ = kubeiam.Nope  # type: ignore[attr-defined]


#: Run in a fresh interpreter: what ``import kubeiam`` loads, then what one name pulls in.
_PROBE = """
import json, sys
import kubeiam
before = sorted(m for m in sys.modules if m.split(".")[0] in {"kubeiam", "aiohttp", "botocore"})
kubeiam.encode_token
after = sorted(m for m in sys.modules if m.startswith("kubeiam"))
print(json.dumps({"before": before, "after": after}))
"""


def test_import_kubeiam_loads_no_export_until_it_is_used() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = json.loads(done.stdout)
    assert loaded["before"] == ["kubeiam"]
    assert "kubeiam.token.encoding" in loaded["after"]
    assert "kubeiam.token.verifier" not in loaded["after"]  # only the module asked for
