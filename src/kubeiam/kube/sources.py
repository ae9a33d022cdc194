"""The lightkube implementation of :class:`~kubeiam.kube.watch.WatchSource`.

lightkube raises an ``ApiError`` for an ERROR event inside a watch stream (and for a watch request
the API refuses); this adapter turns it back into an ERROR event carrying the Status code, which
the reflector answers by listing again (after a backoff unless it is 410 Gone). Transport failures
(refused, reset, timeouts) become :class:`KubeAPIError`: the reflector re-watches from the last
resourceVersion after a backoff.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from kubeiam.errors import KubeAPIError
from kubeiam.kube.watch import EventType, ListResult, WatchEvent, WatchSource


def _to_dict(obj: Any) -> Mapping[str, Any]:
    out: Mapping[str, Any] = obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
    return out


class LightkubeSource:
    """List and watch one resource (optionally one namespace and one object name)."""

    def __init__(
        self,
        client: Any,
        resource: Any,
        *,
        namespace: str | None = None,
        name: str | None = None,
    ) -> None:
        self._client = client
        self._resource = resource
        self._namespace = namespace
        self._fields = {"metadata.name": name} if name else None

    def _scope(self) -> dict[str, Any]:
        return {"namespace": self._namespace} if self._namespace is not None else {}

    async def list(self) -> ListResult:
        from httpx2 import HTTPError, HTTPStatusError
        from lightkube import ApiError

        from kubeiam.kube.objects import NOT_FOUND, status_code

        name = self._resource.__name__
        try:
            listing = self._client.list(self._resource, fields=self._fields, **self._scope())
            items = tuple([_to_dict(o) async for o in listing])
            return ListResult(items, listing.resourceVersion)
        except (ApiError, HTTPStatusError) as exc:
            code = status_code(exc)
            if code == NOT_FOUND:
                raise KubeAPIError(
                    f"listing {name} failed (404): the API server does not serve this resource",
                    hint="install its CustomResourceDefinition (kubectl apply -f deploy/crd.yaml)"
                    if name == "IAMIdentityMapping"
                    else None,
                ) from None
            message = getattr(getattr(exc, "status", None), "message", None)
            raise KubeAPIError(f"listing {name} failed ({code}): {message or exc}") from None
        except HTTPError as exc:
            raise KubeAPIError(f"listing {name} failed: {exc}") from None

    async def watch(self, resource_version: str) -> AsyncIterator[WatchEvent]:
        from httpx2 import HTTPError
        from lightkube import ApiError

        try:
            stream = self._client.watch(
                self._resource,
                fields=self._fields,
                resource_version=resource_version,
                **self._scope(),
            )
            async for etype, obj in stream:
                yield WatchEvent(EventType(etype), _to_dict(obj))
        except ApiError as exc:
            code = getattr(exc.status, "code", None)
            message = getattr(exc.status, "message", None) or str(exc)
            yield WatchEvent(EventType.ERROR, {"code": code, "message": message})
        except HTTPError as exc:
            raise KubeAPIError(f"watching {self._resource.__name__} failed: {exc}") from None


class DeferredSource:
    """A source whose client is built at its first ``list()``, and again after a failed list.

    A kubeconfig that cannot be used (missing, invalid, its exec plugin failing) is then a
    failure the reflector logs, counts and retries with backoff, like an unreachable API server,
    instead of a crash at start; fixing the file lets the server recover without a restart.
    """

    def __init__(
        self,
        make_client: Callable[[], Any],
        make_source: Callable[[Any], WatchSource],
    ) -> None:
        self._make_client = make_client
        self._make_source = make_source
        self.client: Any = None
        self._inner: WatchSource | None = None

    async def list(self) -> ListResult:
        if self._inner is None:
            self.client = self._make_client()
            self._inner = self._make_source(self.client)
        try:
            return await self._inner.list()
        except Exception:
            # Read the kubeconfig again next time: a fixed file (server address, CA, user)
            # then takes effect without a restart.
            await self.close()
            raise

    def watch(self, resource_version: str) -> AsyncIterator[WatchEvent]:
        assert self._inner is not None, "watch before the first list"
        return self._inner.watch(resource_version)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None
            self._inner = None
