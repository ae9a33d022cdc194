"""The EKS access-entry API served by moto: routes, a response class, moto's IAM as the directory.

:func:`install` adds the access-entry routes to moto's EKS URL map and points the cluster routes
(CreateCluster, DescribeCluster, UpdateClusterConfig, DescribeUpdate) at :class:`EksAccessResponse`,
a subclass of moto's ``EKSResponse``; :class:`kubeiam.localaws.moto_server.MotoServer` calls it
before serving and calls the returned undo on stop. Requests therefore go through moto's own
signature and IAM policy checks (``eks:CreateAccessEntry`` ...), its request parser and its
response serializer, both driven by botocore's EKS service model, so every answer has the
model's shape.

The rules live in :mod:`kubeiam.localaws.eks_rules` and the state in
:mod:`kubeiam.localaws.eks_access`; this module only translates: request
parameters in, :class:`~kubeiam.localaws.eks_rules.EksApiError` out as moto's EKS exceptions
(botocore ``ClientError`` codes on the client side).

State: one :class:`~kubeiam.localaws.eks_access.ClusterAccess` per moto ``Cluster`` object, held
in a weak dictionary, so deleting a cluster (or moto's reset) drops its entries with it.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn

from moto.core.responses import ActionResult, EmptyResult
from moto.eks import exceptions as moto_eks_errors
from moto.eks import urls as moto_eks_urls
from moto.eks.models import eks_backends
from moto.eks.responses import EKSResponse

from kubeiam.localaws.eks_access import AccessEntry, ClusterAccess, access_policy_list
from kubeiam.localaws.eks_rules import EksApiError, ErrorCode, Principal, check_mode_known, page

_ACCESS_STATE: weakref.WeakKeyDictionary[Any, ClusterAccess] = weakref.WeakKeyDictionary()
_ENTRY = "{0}/clusters/(?P<name>[^/]+)/access-entries/(?P<principalArn>arn:.+?)"
#: Routes added to moto's EKS URL map (moto's own routes keep their handlers otherwise).
ROUTES = (
    "{0}/clusters/(?P<name>[^/]+)/access-entries$",
    _ENTRY + "$",
    _ENTRY + "/access-policies$",
    _ENTRY + "/access-policies/(?P<policyArn>arn:[^/]+/[^/]+)$",
    "{0}/access-policies$",
    "{0}/clusters/(?P<name>[^/]+)/updates/(?P<updateId>[^/]+)$",
    # moto's cluster routes, re-pointed so clusters carry their accessConfig.
    "{0}/clusters$",
    "{0}/clusters/(?P<name>[^/]+)$",
    "{0}/clusters/(?P<name>[^/]+)/update-config$",
)


def _now() -> datetime:
    return datetime.now(UTC)


class MotoPrincipals:
    """The principal directory: IAM users and roles in moto, looked up by full ARN."""

    def find(self, arn: str) -> Principal | None:
        from moto.iam.models import iam_backends

        parts = arn.split(":", 5)
        if len(parts) != 6:
            return None
        partition, account, resource = parts[1], parts[4], parts[5]
        try:
            iam = iam_backends[account][partition]
        except KeyError:
            return None
        kind, _, rest = resource.partition("/")
        name = rest.rsplit("/", 1)[-1]
        if kind == "user":
            candidates: list[Any] = [u for u in iam.users.values() if u.name == name]
        elif kind == "role":
            candidates = [r for r in iam.roles.values() if r.name == name]
        else:
            return None
        for found in candidates:
            if str(found.arn) == arn:
                return Principal(
                    arn=arn,
                    unique_id=str(found.id),
                    kind="user" if kind == "user" else "role",
                    name=str(found.name),
                    path=str(found.path),
                    account=account,
                    partition=partition,
                )
        return None

    def caller(self, access_key_id: str, region: str) -> Principal | None:
        """The IAM user or role behind a request's access key (a session's role), or None."""
        from moto.iam.models import iam_backends
        from moto.sts.models import sts_backends
        from moto.utilities.utils import get_partition

        partition = get_partition(region)
        for account in list(iam_backends.keys()):
            try:
                iam = iam_backends[account][partition]
            except KeyError:
                continue
            key = iam.access_keys.get(access_key_id)
            if key is None:
                continue
            if key.user_name is not None:
                user = iam.users.get(key.user_name)
                return self.find(str(user.arn)) if user is not None else None
            for session in list(sts_backends[account][partition].assumed_roles):
                if session.access_key_id == access_key_id:
                    return self.find(str(session.role_arn))
        return None


_PRINCIPALS = MotoPrincipals()


@dataclass(frozen=True, slots=True)
class _ClusterView:
    """A moto Cluster as DescribeCluster shows it, plus its accessConfig."""

    cluster: Any
    access: ClusterAccess

    def __getattr__(self, name: str) -> Any:
        if name in ("accessConfig", "access_config"):
            return {
                "bootstrapClusterCreatorAdminPermissions": self.access.bootstrap_admin,
                "authenticationMode": self.access.mode,
            }
        return getattr(self.cluster, name)


def _raise_as_moto(error: EksApiError, cluster_name: str | None = None) -> NoReturn:
    classes = {
        ErrorCode.INVALID_PARAMETER: moto_eks_errors.InvalidParameterException,
        ErrorCode.INVALID_REQUEST: moto_eks_errors.InvalidRequestException,
        ErrorCode.NOT_FOUND: moto_eks_errors.ResourceNotFoundException,
        ErrorCode.IN_USE: moto_eks_errors.ResourceInUseException,
    }
    raise classes[error.code](error.message, clusterName=cluster_name) from error


def cluster_access(account: str, region: str, cluster_name: str) -> ClusterAccess:
    """The access state of a moto cluster; ResourceNotFound (moto's) if there is no cluster."""
    cluster = eks_backends[account][region].describe_cluster(cluster_name)
    return _access_of(cluster, account, region)


def _access_of(cluster: Any, account: str, region: str) -> ClusterAccess:
    access = _ACCESS_STATE.get(cluster)
    if access is None:
        # A cluster this module did not see created (moto in-process, or before install).
        access = ClusterAccess(
            cluster_name=str(cluster.name),
            account=account,
            region=region,
            partition=str(cluster.arn).split(":")[1],
        )
        _ACCESS_STATE[cluster] = access
    return access


@dataclass(frozen=True, slots=True)
class EntryRecord:
    """What EKS knows of an access entry, including what its API never shows: the principal's
    unique id stored at creation and whether IAM's principal of that ARN still has it."""

    principal_arn: str
    principal_id: str
    #: False once the principal was deleted (and perhaps recreated under the same ARN): [CREATE]
    #: "the access entry won't work" then.
    principal_current: bool
    entry_type: str
    username: str
    groups: tuple[str, ...]
    #: (policy ARN, scope type, namespaces) per associated access policy.
    policies: tuple[tuple[str, str, tuple[str, ...]], ...]


def entry_records(account: str, region: str, cluster_name: str) -> tuple[str, list[EntryRecord]]:
    """The cluster's authentication mode and its entries as EKS stores them (in-process only:
    for a test helper that plays EKS's authenticator, never part of the emulated API)."""
    access = cluster_access(account, region, cluster_name)
    records = []
    for entry in access.entries.values():
        now = _PRINCIPALS.find(entry.principal.arn)
        records.append(
            EntryRecord(
                principal_arn=entry.principal.arn,
                principal_id=entry.principal.unique_id,
                principal_current=now is not None and now.unique_id == entry.principal.unique_id,
                entry_type=entry.entry_type,
                username=entry.username,
                groups=entry.groups,
                policies=tuple(
                    (a.policy_arn, a.scope_type, a.namespaces) for a in entry.associations.values()
                ),
            )
        )
    return access.mode, records


class EksAccessResponse(EKSResponse):
    """moto's EKS responses plus the access-entry operations and the clusters' accessConfig.

    Requests are parsed by botocore's EKS model (moto's automated parsing, which moto's own EKS
    responses leave off), and those of the operations added here are validated against the
    operation's input shape: what botocore's client-side checks would stop (a missing required
    member, a wrong type, ``maxResults`` out of 1..100) is an InvalidParameterException when a
    client without those checks sends it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.automated_parameter_parsing = True

    def _authenticate_and_authorize_normal_action(self, resource: str = "*") -> None:
        """moto's IAM check, with its refusal in EKS's own wire form.

        moto answers a refused call with the XML body of the query protocols, which botocore's
        rest-json parser cannot read: the error code came out as "403". EKS answers 403 with a
        JSON body naming AccessDeniedException (the API reference's common errors:
        https://docs.aws.amazon.com/eks/latest/APIReference/CommonErrors.html).
        """
        from moto.core.exceptions import JsonRESTError
        from werkzeug.exceptions import HTTPException

        try:
            super()._authenticate_and_authorize_normal_action(resource)
        except HTTPException as error:
            if error.code != 403:
                raise
            message = getattr(error, "message", None) or "access denied"
            denied = JsonRESTError("AccessDeniedException", message)
            denied.code = 403
            raise denied from None

    def _validate_request(self) -> None:
        from botocore.validate import ParamValidator
        from moto.core.utils import get_service_model

        operation = get_service_model("eks").operation_model(self._get_action())
        params = dict(self.params)
        # The model's parser coerces (a string where a list belongs becomes a list of
        # characters), so the JSON body's members are checked as the client sent them.
        try:
            body = json.loads(self.body) if self.body else {}
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise moto_eks_errors.InvalidParameterException("The request body is not a JSON object")
        params.update(body)
        report = ParamValidator().validate(params, operation.input_shape)
        if report.has_errors():
            raise moto_eks_errors.InvalidParameterException(
                report.generate_report().replace("\n", " "),
                clusterName=self._get_param("clusterName") or self._get_param("name"),
            )

    def _access(self) -> ClusterAccess:
        self._validate_request()
        name = self._get_param("name") or self._get_param("clusterName")
        return cluster_access(self.current_account, self.region, str(name))

    def _run(self, action: Callable[[ClusterAccess], Any]) -> Any:
        access = self._access()
        try:
            return action(access)
        except EksApiError as error:
            _raise_as_moto(error, access.cluster_name)

    # -- clusters --

    def create_cluster(self) -> ActionResult:
        config = self._get_param("accessConfig") or {}
        mode = config.get("authenticationMode") or "CONFIG_MAP"
        try:
            check_mode_known(mode)
        except EksApiError as error:
            _raise_as_moto(error, self._get_param("name"))
        super().create_cluster()
        cluster = eks_backends[self.current_account][self.region].clusters[self._get_param("name")]
        bootstrap = config.get("bootstrapClusterCreatorAdminPermissions")
        access = ClusterAccess(
            cluster_name=str(cluster.name),
            account=self.current_account,
            region=self.region,
            partition=str(cluster.arn).split(":")[1],
            mode=mode,
            creator=_PRINCIPALS.caller(self.get_access_key(), self.region),
            bootstrap_admin=True if bootstrap is None else bool(bootstrap),
        )
        _ACCESS_STATE[cluster] = access
        if mode != "CONFIG_MAP":
            access.bootstrap_creator_entry(now=_now())
        return ActionResult({"cluster": _ClusterView(cluster, access)})

    def describe_cluster(self) -> ActionResult:
        access = self._access()
        cluster = eks_backends[self.current_account][self.region].describe_cluster(
            access.cluster_name
        )
        return ActionResult({"cluster": _ClusterView(cluster, access)})

    def update_cluster_config(self) -> ActionResult:
        config = self._get_param("accessConfig")
        if not config:
            # moto applies the change but answers with no Update (the model's only output member).
            access = self._access()
            super().update_cluster_config()
            kind = "LoggingUpdate" if self._get_param("logging") else "ConfigUpdate"
            if self._get_param("resourcesVpcConfig"):
                kind = "VpcConfigUpdate"
            return ActionResult({"update": access.record_update(kind, [], now=_now())})
        others = [
            key
            for key in ("resourcesVpcConfig", "logging", "kubernetesNetworkConfig")
            if self._get_param(key)
        ]
        if others:
            # CHOSEN: one kind of update per call, as EKS updates are typed (UpdateType).
            raise moto_eks_errors.InvalidParameterException(
                f"accessConfig cannot be updated together with {', '.join(others)}",
                clusterName=self._get_param("name"),
            )
        desired = str(config.get("authenticationMode") or "")
        update = self._run(lambda access: access.set_mode(desired, now=_now()))
        return ActionResult({"update": update})

    def describe_update(self) -> ActionResult:
        update_id = str(self._get_param("updateId"))
        update = self._access().updates.get(update_id)
        if update is None:
            raise moto_eks_errors.ResourceNotFoundException(
                f"No update found for ID: {update_id}", clusterName=self._get_param("name")
            )
        return ActionResult({"update": update})

    # -- access entries --

    def create_access_entry(self) -> ActionResult:
        entry: AccessEntry = self._run(
            lambda access: access.create_entry(
                str(self._get_param("principalArn")),
                _PRINCIPALS,
                entry_type=self._get_param("type"),
                username=self._get_param("username"),
                groups=self._get_param("kubernetesGroups"),
                tags=self._get_param("tags"),
                now=_now(),
            )
        )
        return ActionResult({"accessEntry": entry.wire()})

    def describe_access_entry(self) -> ActionResult:
        principal = str(self._get_param("principalArn"))
        entry: AccessEntry = self._run(lambda access: access.entry(principal))
        return ActionResult({"accessEntry": entry.wire()})

    def update_access_entry(self) -> ActionResult:
        entry: AccessEntry = self._run(
            lambda access: access.update_entry(
                str(self._get_param("principalArn")),
                username=self._get_param("username"),
                groups=self._get_param("kubernetesGroups"),
                now=_now(),
            )
        )
        return ActionResult({"accessEntry": entry.wire()})

    def delete_access_entry(self) -> EmptyResult:
        principal = str(self._get_param("principalArn"))
        self._run(lambda access: access.delete_entry(principal))
        return EmptyResult()

    def list_access_entries(self) -> ActionResult:
        policy = self._get_param("associatedPolicyArn")
        arns: list[str] = self._run(lambda access: access.list_entries(policy))
        items, token = self._page(arns)
        return ActionResult({"accessEntries": items, "nextToken": token})

    # -- access policies --

    def associate_access_policy(self) -> ActionResult:
        principal = str(self._get_param("principalArn"))
        association = self._run(
            lambda access: access.associate(
                principal,
                str(self._get_param("policyArn")),
                self._get_param("accessScope"),
                now=_now(),
            )
        )
        return ActionResult(
            {
                "clusterName": self._access().cluster_name,
                "principalArn": principal,
                "associatedAccessPolicy": association.wire(),
            }
        )

    def disassociate_access_policy(self) -> EmptyResult:
        principal, policy = str(self._get_param("principalArn")), str(self._get_param("policyArn"))
        self._run(lambda access: access.disassociate(principal, policy))
        return EmptyResult()

    def list_associated_access_policies(self) -> ActionResult:
        principal = str(self._get_param("principalArn"))
        entry: AccessEntry = self._run(lambda access: access.entry(principal))
        items, token = self._page([a.wire() for a in entry.associations.values()])
        return ActionResult(
            {
                "clusterName": entry.cluster_name,
                "principalArn": principal,
                "associatedAccessPolicies": items,
                "nextToken": token,
            }
        )

    def list_access_policies(self) -> ActionResult:
        self._validate_request()
        partition = eks_backends[self.current_account][self.region].partition
        items, token = self._page(access_policy_list(str(partition)))
        return ActionResult({"accessPolicies": items, "nextToken": token})

    def _max_results(self) -> int | None:
        raw = self._get_param("maxResults")
        if raw is None:
            return None
        try:
            return int(raw)
        except ValueError:
            _raise_as_moto(
                EksApiError(ErrorCode.INVALID_PARAMETER, f"maxResults {raw!r} is not a number")
            )

    def _page(self, items: list[Any]) -> tuple[list[Any], str | None]:
        try:
            return page(items, self._max_results(), self._get_param("nextToken"))
        except EksApiError as error:
            _raise_as_moto(error)


def install() -> Callable[[], None]:
    """Serve the access-entry API from moto's EKS backend; returns the undo function.

    Must run before moto's WSGI application builds its EKS app (on the first EKS request).
    """
    paths: dict[str, Any] = moto_eks_urls.url_paths
    saved = dict(paths)
    for route in ROUTES:
        paths[route] = EksAccessResponse.dispatch

    def undo() -> None:
        paths.clear()
        paths.update(saved)

    return undo
