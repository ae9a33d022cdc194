"""Get and replace single objects, carrying their resourceVersion (optimistic concurrency).

``replace`` sends the object with the resourceVersion it was read at; a concurrent write makes
the API answer 409, raised as :class:`ConflictError` so callers re-read and retry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

from kubeiam.errors import ConflictError, KubeAPIError

NOT_FOUND = 404
CONFLICT = 409


def status_code(exc: Any) -> int | None:
    """The HTTP status of a lightkube ApiError, or of a plain httpx2 status error."""
    code = getattr(getattr(exc, "status", None), "code", None)
    if code is None:
        code = getattr(getattr(exc, "response", None), "status_code", None)
    return code if isinstance(code, int) else None


def _api_error(action: str, exc: Any) -> KubeAPIError:
    code = status_code(exc)
    message = getattr(getattr(exc, "status", None), "message", None) or str(exc).splitlines()[0]
    if code == CONFLICT:
        return ConflictError(f"{action}: the object changed since it was read ({message})")
    return KubeAPIError(f"{action} failed ({code}): {message}")


@contextlib.contextmanager
def api_errors(translate: Callable[[int | None, Exception], KubeAPIError | None]) -> Iterator[None]:
    """Run client calls whose errors the caller words itself: a lightkube ``ApiError`` or an
    httpx2 error raised inside the block becomes ``translate(status, error)`` (the status is None
    when the API never answered); a None from ``translate`` means the error is fine (a 404 on a
    delete) and the block ends quietly. The only place outside this package that needs to know
    the client's exception types."""
    from httpx2 import HTTPError
    from lightkube import ApiError

    try:
        yield
    except (ApiError, HTTPError) as exc:
        error = translate(status_code(exc), exc)
        if error is not None:
            raise error from None


async def _send(
    action: str, request: Awaitable[Any], *, missing_ok: bool = False
) -> Mapping[str, Any] | None:
    """Await one API call and return the object as JSON; the client's errors become the kubeiam
    tree (a 409 a :class:`ConflictError`). With ``missing_ok`` a 404 is None."""
    from httpx2 import HTTPError, HTTPStatusError
    from lightkube import ApiError

    try:
        obj = await request
    except (ApiError, HTTPStatusError) as exc:
        if missing_ok and status_code(exc) == NOT_FOUND:
            return None
        raise _api_error(action, exc) from None
    except HTTPError as exc:
        raise KubeAPIError(f"{action} failed: {exc}") from None
    out: Mapping[str, Any] = obj.to_dict()
    return out


async def get_object(
    client: Any, resource: Any, name: str, *, namespace: str | None = None
) -> Mapping[str, Any] | None:
    """The object as JSON, or None when it does not exist."""
    scope = {"namespace": namespace} if namespace is not None else {}
    return await _send(
        f"get {resource.__name__} {name}", client.get(resource, name, **scope), missing_ok=True
    )


async def replace_object(client: Any, resource: Any, obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """Replace ``obj`` (whose metadata carries the resourceVersion it was read at)."""
    meta = obj.get("metadata") or {}
    name = meta.get("name", "")
    if not meta.get("resourceVersion"):
        raise KubeAPIError(f"refusing to replace {name} without a resourceVersion")
    new = await _send(
        f"replace {resource.__name__} {name}", client.replace(resource.from_dict(dict(obj)))
    )
    assert new is not None  # only get_object asks for None on 404
    return new


async def create_object(client: Any, resource: Any, obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """Create ``obj``; an existing object of that name is a :class:`ConflictError`."""
    name = (obj.get("metadata") or {}).get("name", "")
    new = await _send(
        f"create {resource.__name__} {name}", client.create(resource.from_dict(dict(obj)))
    )
    assert new is not None  # only get_object asks for None on 404
    return new
