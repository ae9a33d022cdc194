"""The ExecCredential document kubectl reads on the plugin's stdout (pure).

protocol.md section 1: kubectl passes ``KUBERNETES_EXEC_INFO``; its ``apiVersion`` is echoed when
it is v1 or v1beta1, anything else falls back to v1beta1 with a warning (v1alpha1 was removed in
kubectl 1.24). ``expirationTimestamp`` is RFC 3339 in UTC with a ``Z`` and whole seconds.

It also holds the small JSON reader and writer of the token path (:func:`loads`, :func:`dumps`):
they drive CPython's C scanner and string encoder (``_json``) directly, because importing the
``json`` package costs ~11 ms of CPU here (it pulls in ``re``, ``enum`` and more), a third of a
cache hit's whole process. Other interpreters fall back to ``json``.
"""

import time

API_GROUP = "client.authentication.k8s.io"
API_V1 = f"{API_GROUP}/v1"
API_V1BETA1 = f"{API_GROUP}/v1beta1"
API_V1ALPHA1 = f"{API_GROUP}/v1alpha1"
#: The versions echoed back; the first of them is never the default (kubectl < 1.20 sent nothing).
SUPPORTED_API_VERSIONS = (API_V1, API_V1BETA1)
DEFAULT_API_VERSION = API_V1BETA1

# TypedDicts exist for the type checker only: importing ``typing`` costs the plugin ~10 ms of
# start-up (it pulls in ``re``), which users pay on every kubectl run.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypedDict

    class ExecCredentialStatus(TypedDict):
        expirationTimestamp: str
        token: str

    class ExecCredential(TypedDict):
        kind: str
        apiVersion: str
        spec: dict[str, object]
        status: ExecCredentialStatus


#: ``KUBERNETES_EXEC_INFO`` byte for byte as kubectl writes it for an exec entry without
#: ``provideClusterInfo`` (client-go's JSON serializer, newline included; kubectl 1.34 on this
#: project's machine), by the apiVersion it names: known without parsing, so that a cache hit
#: does not load the JSON scanner (an extension module, 0.4 ms of the plugin's ~12 ms start).
#: Any other text is parsed.
KUBECTL_EXEC_INFO = {
    f'{{"kind":"ExecCredential","apiVersion":"{version}","spec":{{"interactive":{flag}}}}}\n': (
        version
    )
    for version in SUPPORTED_API_VERSIONS
    for flag in ("false", "true")
}


def api_version_from_exec_info(exec_info: str | None) -> tuple[str, str | None]:
    """``(apiVersion, warning)`` for the value of ``KUBERNETES_EXEC_INFO`` (``None`` if unset).

    The warning, when not ``None``, is for stderr: it names the problem and the fix.
    """
    if not exec_info:
        return DEFAULT_API_VERSION, None
    known = KUBECTL_EXEC_INFO.get(exec_info)
    if known is not None:
        return known, None
    try:
        info = loads(exec_info)
    except ValueError as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else "unreadable"
        return DEFAULT_API_VERSION, (
            f"KUBERNETES_EXEC_INFO is not JSON kubeiam can read ({reason}); answering with "
            f"{DEFAULT_API_VERSION} (update kubectl: it sets this variable itself)"
        )
    version = info.get("apiVersion") if isinstance(info, dict) else None
    if version in SUPPORTED_API_VERSIONS:
        assert isinstance(version, str)
        return version, None
    if version == API_V1ALPHA1:
        return DEFAULT_API_VERSION, (
            f"the kubeconfig asks for {API_V1ALPHA1}, which kubectl 1.24 removed; answering with "
            f"{DEFAULT_API_VERSION} (set the exec entry's apiVersion to {API_V1} with "
            "`kubeiam kubeconfig`)"
        )
    return DEFAULT_API_VERSION, (
        f"KUBERNETES_EXEC_INFO asks for apiVersion {_shown(version)}, which kubeiam does not "
        "know; "
        f"answering with {DEFAULT_API_VERSION}"
    )


#: A value quoted in a warning is cut here: the variable may hold up to 128 KiB.
_SHOWN_CHARS = 80


def _shown(value: object) -> str:
    """``repr(value)``, escaped (control characters, surrogates) and cut to a line."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."


def format_timestamp(epoch_seconds: float) -> str:
    """RFC 3339 UTC with whole seconds (fractions are truncated, never rounded up)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch_seconds)))


def build_exec_credential(token: str, expires_at: float, api_version: str) -> "ExecCredential":
    """The ExecCredential for ``token``, expiring at unix time ``expires_at``."""
    return {
        "kind": "ExecCredential",
        "apiVersion": api_version,
        "spec": {},
        "status": {"expirationTimestamp": format_timestamp(expires_at), "token": token},
    }


def render_exec_credential(doc: "ExecCredential") -> str:
    """The document as one line of JSON (what kubectl reads)."""
    return dumps(doc)


# -- JSON without importing the json package ------------------------------------------------------

_WHITESPACE = " \t\n\r"


def _refuse_constant(name: str) -> object:
    raise ValueError(f"JSON constant {name} is not allowed")


class _ScannerContext:
    """The attributes ``_json.make_scanner`` reads (those of ``json.JSONDecoder``)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_refuse_constant)


_scanner: "list[Callable[[str, int], tuple[object, int]]]" = []

#: KUBERNETES_EXEC_INFO and cache entries are a few hundred bytes (an exec info with a CA
#: bundle a few KiB); anything over 1 MiB is not one of them, and is refused unparsed.
MAX_JSON_CHARS = 1 << 20
#: The depth bound of :data:`kubeiam.documents.MAX_DEPTH`, repeated here so that the cache-hit
#: path does not import that module (``re``): a text with fewer brackets cannot nest deeper.
_MAX_DEPTH = 100


def _check_bounds(text: str) -> None:
    """Refuse, before the recursive C scanner runs, a text too large or nested too deep."""
    if len(text) > MAX_JSON_CHARS:
        raise ValueError(f"larger than {MAX_JSON_CHARS // 1024} KiB")
    if text.count("[") + text.count("{") > _MAX_DEPTH:
        from kubeiam.documents import MAX_DEPTH, json_depth

        if json_depth(text) > MAX_DEPTH:
            raise ValueError(f"nested more than {MAX_DEPTH} levels deep")


def loads(text: str | bytes) -> object:
    """Parse one JSON document; ``ValueError`` (``json.JSONDecodeError``) if it is not one, or
    if it is larger than :data:`MAX_JSON_CHARS` or nested deeper than 100 levels."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")  # UnicodeDecodeError is a ValueError
    _check_bounds(text)
    try:
        import _json
    except ImportError:  # not CPython
        import json

        return json.loads(text)
    if not _scanner:
        # typeshed names the argument's type after the class; any object with these attributes
        # works (json.JSONDecoder passes itself).
        _scanner.append(_json.make_scanner(_ScannerContext()))  # type: ignore[arg-type]
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scanner[0](text, start)
    except StopIteration:
        raise ValueError("not a JSON document") from None
    except RecursionError:  # not reached after _check_bounds; never let it escape
        raise ValueError("nested too deeply") from None
    except ValueError as exc:
        if "integer string conversion" in str(exc):  # int() refuses > 4300 digits
            raise ValueError("an integer has too many digits") from None
        raise
    except SystemError:
        # The C scanner builds its error from json.decoder only if that is already imported;
        # otherwise it fails without an exception. Malformed input is rare: let json word it.
        import json

        return json.loads(text)
    if text[end:].strip(_WHITESPACE):
        raise ValueError("extra data after the JSON document")
    return value


def dumps(value: object, *, sort_keys: bool = False) -> str:
    """Compact JSON for dicts, lists, str, int, float, bool and None (ASCII-only output)."""
    return _dump(value, sort_keys)


def is_plain(text: str) -> bool:
    """Printable ASCII without ``"`` or ``\\``: a string JSON writes between quotes as it is."""
    return text.isascii() and text.isprintable() and '"' not in text and "\\" not in text


def quote(text: str) -> str:
    """``text`` as a JSON string, ASCII only. A plain one (tokens, ids, regions, times: what the
    plugin writes) is quoted as it is, anything else escaped by ``_json``'s C encoder: loading
    that extension module is 0.4 ms of a cache hit, which then needs none."""
    if is_plain(text):
        return f'"{text}"'
    try:
        from _json import encode_basestring_ascii
    except ImportError:  # not CPython
        import json

        return json.dumps(text)
    return encode_basestring_ascii(text)


def _dump(value: object, sort_keys: bool) -> str:
    if isinstance(value, str):
        return quote(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("NaN and infinities are not JSON")
        return float.__repr__(value)
    if isinstance(value, dict):
        items = sorted(value.items()) if sort_keys else value.items()
        parts = []
        for key, item in items:
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be str, not {type(key).__name__}")
            parts.append(f"{quote(key)}:{_dump(item, sort_keys)}")
        return "{" + ",".join(parts) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_dump(item, sort_keys) for item in value) + "]"
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
