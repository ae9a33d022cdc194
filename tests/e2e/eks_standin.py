"""A test stand-in for EKS's side of authentication: the local EKS's access entries served to the
real kube-apiserver the way EKS serves them, through `kubeiam server`.

EKS runs aws-iam-authenticator on the control plane; access entries reach it through the
authenticator's DynamicFile backend, and aws-auth through its ConfigMap backend. This helper does
the same for the e2e cluster:

* it reads the cluster's authentication mode and access entries from the local EKS
  (:meth:`kubeiam.localaws.LocalAWS.eks_access_entries`: EKS's own record, with the principal's
  unique id that the API never shows);
* it writes them as a DynamicFile (aws-iam-authenticator's JSON shape) with each principal's
  ``userid``, read by `kubeiam server` with ``dynamicfileUserIDStrict``, so an entry matches only
  the principal it was created for;
* it restarts `kubeiam server` on the system's port with the backends the mode uses;
* it renders the associated access policies into RBAC: one ClusterRole per policy with the rules
  AWS documents (the table in :mod:`kubeiam.eks.access_policies`, data only), bound per entry with
  a ClusterRoleBinding (``cluster`` scope) or RoleBindings in the scope's namespaces.

The EKS rules below are written here from AWS's documentation on purpose, NOT taken from kubeiam
(``kubeiam.eks.modes``, ``kubeiam.admin.editing``): the e2e proof compares kubeiam's answers with
this independent reading, so sharing the code would prove nothing. Pages (all under
https://docs.aws.amazon.com/eks/latest/):

[CAM]      userguide/grant-k8s-access.html#set-cam: "ConfigMap only (CONFIG_MAP): aws-auth
           ConfigMap"; "EKS API and ConfigMap (API_AND_CONFIG_MAP): access entries ... and aws-auth
           ConfigMap"; "EKS API only (API): access entries".
[MIGRATE]  userguide/migrating-access-entries.html: "When a cluster is in API_AND_CONFIGMAP
           authentication mode and there's a mapping for the same IAM role in both the aws-auth
           ConfigMap and in access entries, the role will use the access entry's mapping ...
           Access entries take precedence over ConfigMap entries for the same IAM principal."
[CREATE]   userguide/creating-access-entries.html: "If you don't delete the access entry and ever
           recreate the IAM principal, even if it has the same ARN, the access entry won't work
           ... the roleID or userID ... is different ... Amazon EKS stores it with the access
           entry"; the username EKS sets when none is given (the local EKS stores it already);
           kubernetesGroups are RBAC group subjects.
[ASSOCIATE] userguide/access-policies.html: "If you associate multiple access policies, the
           access entry's IAM principal has all permissions included in all associated access
           policies"; a namespace scope grants "in the ... namespaces only", and "You can use
           wildcard characters for a namespace name ... dev-*"; policies and the groups' RBAC
           add up ("It also has all the permissions in any ... Role or ClusterRole ... that
           specify the group names"); only STANDARD entries take policies, "Amazon EKS
           automatically grants the other types of access entries the permissions required".
[API-CREATE] APIReference/API_CreateAccessEntry.html (kubernetesGroups): "If you associate any
           access policies, the principalARN has all permissions assigned in the associated
           access policies and all permissions in any Kubernetes Role or ClusterRole objects that
           the group names are bound to."
[POLICIES] userguide/access-policy-permissions.html: each policy's rules (kubeiam's data table).

Where the stand-in differs from EKS (it has no EKS authorizer, only RBAC), on purpose:

* EKS authorizes access policies by principal in its own authorizer; here they are RBAC bindings
  to the entry's username (a ``User`` subject). An entry whose username is a template
  (``{{SessionName}}``) has no fixed username, so its bindings name a group of its own,
  ``eks-standin:entry:<principal id>``, which the DynamicFile adds to that entry's groups (visible
  in `kubectl auth whoami`, unlike on EKS).
* Under RBAC, `kubectl auth can-i --list` shows what the policies grant (on EKS it does not).
* A wildcard namespace scope is expanded over the namespaces that exist at :meth:`sync`.
* Node entry types (EC2_LINUX, EC2_WINDOWS, EC2, FARGATE_LINUX, HYBRID_LINUX) get the group
  ``system:nodes``: AWS says only that EKS grants them what they need (CHOSEN: what the Node
  authorizer and the node ClusterRoleBindings key on).
* Policies AWS describes in prose only (``rules_documented=False``) are bound to nothing.
"""

from __future__ import annotations

import datetime
import fnmatch
import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from system import KubeiamServer, System

from kubeiam.eks.access_policies import ACCESS_POLICIES, AccessPolicy, PolicyRule
from kubeiam.localaws.eks_api import EntryRecord

DOCS = "https://docs.aws.amazon.com/eks/latest/"
CAM_URL = DOCS + "userguide/grant-k8s-access.html#set-cam"
MIGRATE_URL = DOCS + "userguide/migrating-access-entries.html"
CREATE_URL = DOCS + "userguide/creating-access-entries.html"
ASSOCIATE_URL = DOCS + "userguide/access-policies.html"

#: [CAM] which sources each authentication mode reads, in the order they are consulted: [MIGRATE]
#: access entries first ("take precedence over ConfigMap entries for the same IAM principal").
#: The authenticator's backends: DynamicFile carries the access entries, EKSConfigMap aws-auth.
BACKENDS_BY_MODE: Mapping[str, tuple[str, ...]] = {
    "CONFIG_MAP": ("EKSConfigMap",),
    "API_AND_CONFIG_MAP": ("DynamicFile", "EKSConfigMap"),
    "API": ("DynamicFile",),
}
#: [ASSOCIATE] only STANDARD entries carry access policies and their own kubernetesGroups.
STANDARD = "STANDARD"
#: CHOSEN (see the module docstring): the group EKS's node entry types authenticate with.
NODE_GROUPS = ("system:nodes",)
#: [CREATE] EKS refuses usernames with these prefixes for STANDARD entries; the prefixes it keeps
#: for itself are what the authenticator's DynamicFile backend refuses too, except ``system:``,
#: which EKS itself gives node entries (``system:node:{{EC2PrivateDNSName}}``).
DYNAMIC_FILE_RESERVED_PREFIXES = ("eks:", "aws:", "amazon:", "iam:")
#: The label on every RBAC object a stand-in creates (value: the EKS cluster's name).
LABEL = "eks-standin.kubeiam.test/cluster"
ENTRY_GROUP_PREFIX = "eks-standin:entry:"


def _is_template(username: str) -> bool:
    return "{{" in username


def _short(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Rendered:
    """What one sync produced: the DynamicFile document, the RBAC objects, the backends."""

    mode: str
    dynamic_file: dict[str, Any]
    rbac: list[dict[str, Any]]
    backends: tuple[str, ...]


def entry_groups(record: EntryRecord) -> tuple[str, ...]:
    """The Kubernetes groups an entry authenticates with ([CREATE]: kubernetesGroups, STANDARD
    only; node types: NODE_GROUPS), plus the stand-in's own group for a templated username that
    has policies to bind."""
    if record.entry_type != STANDARD:
        return NODE_GROUPS
    groups = tuple(record.groups)
    if record.policies and _is_template(record.username):
        groups += (ENTRY_GROUP_PREFIX + record.principal_id,)
    return groups


def render_dynamic_file(
    records: Iterable[EntryRecord], *, now: datetime.datetime
) -> dict[str, Any]:
    """aws-iam-authenticator's DynamicFile for the entries: roles in mapRoles, users in mapUsers,
    each with the principal's unique id ([CREATE]: an entry works only for the principal it was
    made for; the server matches by ``userid`` in strict mode)."""
    roles: list[dict[str, Any]] = []
    users: list[dict[str, Any]] = []
    for record in sorted(records, key=lambda r: r.principal_arn):
        row = {"username": record.username, "groups": list(entry_groups(record))}
        row["userid"] = record.principal_id
        if ":role/" in record.principal_arn:
            roles.append({"rolearn": record.principal_arn, **row})
        else:
            users.append({"userarn": record.principal_arn, **row})
    return {
        "LastUpdatedDateTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Version": _short(json.dumps([roles, users], sort_keys=True)),
        "mapRoles": roles,
        "mapUsers": users,
    }


def _rbac_rule(rule: PolicyRule) -> dict[str, Any]:
    if rule.non_resource_urls:
        return {"nonResourceURLs": list(rule.non_resource_urls), "verbs": list(rule.verbs)}
    return {
        "apiGroups": list(rule.api_groups),
        "resources": list(rule.resources),
        "verbs": list(rule.verbs),
    }


def policy_cluster_role_name(cluster: str, policy: AccessPolicy) -> str:
    return f"eks-standin:{cluster}:{policy.name.lower()}"


def _policy(arn: str) -> AccessPolicy:
    name = arn.rsplit("/", 1)[-1]
    policy = ACCESS_POLICIES.get(name)
    if policy is None:
        raise AssertionError(f"eks stand-in: access policy {arn} is not in the policy table")
    return policy


def _subject(record: EntryRecord) -> dict[str, str]:
    """The per-entry subject a policy is bound to: its username, or its own group when the
    username is a template (see the module docstring)."""
    api = "rbac.authorization.k8s.io"
    if _is_template(record.username):
        name = ENTRY_GROUP_PREFIX + record.principal_id
        return {"kind": "Group", "apiGroup": api, "name": name}
    return {"kind": "User", "apiGroup": api, "name": record.username}


def render_rbac(
    cluster: str, records: Iterable[EntryRecord], namespaces: Sequence[str]
) -> list[dict[str, Any]]:
    """ClusterRoles for the policies in use and, per STANDARD entry and policy, a
    ClusterRoleBinding (``cluster`` scope) or one RoleBinding per namespace of the scope
    ([ASSOCIATE]; wildcards matched against ``namespaces``). Every object carries :data:`LABEL`."""
    labels = {LABEL: cluster}
    roles: dict[str, dict[str, Any]] = {}
    bindings: list[dict[str, Any]] = []
    for record in records:
        if record.entry_type != STANDARD:
            continue  # [ASSOCIATE] other types take no policies
        for policy_arn, scope, scope_namespaces in record.policies:
            policy = _policy(policy_arn)
            if not policy.rules_documented:
                continue  # what it permits is not documented: bind nothing
            role = policy_cluster_role_name(cluster, policy)
            roles[role] = {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": role, "labels": labels},
                "rules": [_rbac_rule(rule) for rule in policy.rules],
            }
            name = f"eks-standin:{_short(record.principal_arn)}:{policy.name.lower()}"
            common = {
                "subjects": [_subject(record)],
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": role,
                },
            }
            meta = {"name": name, "labels": labels}
            if scope == "cluster":
                bindings.append(
                    {
                        "apiVersion": "rbac.authorization.k8s.io/v1",
                        "kind": "ClusterRoleBinding",
                        "metadata": meta,
                        **common,
                    }
                )
                continue
            targets = sorted(
                {n for pattern in scope_namespaces for n in namespaces if _ns_match(n, pattern)}
            )
            for namespace in targets:
                bindings.append(
                    {
                        "apiVersion": "rbac.authorization.k8s.io/v1",
                        "kind": "RoleBinding",
                        "metadata": {**meta, "namespace": namespace},
                        **common,
                    }
                )
    return [*roles.values(), *bindings]


def _ns_match(namespace: str, pattern: str) -> bool:
    """[ASSOCIATE] a namespace name, or a pattern with ``*`` ("dev-*")."""
    return fnmatch.fnmatchcase(namespace, pattern) if "*" in pattern else namespace == pattern


def _key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return (str(obj["kind"]), str(meta.get("namespace") or ""), str(meta["name"]))


@dataclass
class EksStandIn:
    """Plays EKS for one local EKS cluster against the session's system.

    While it runs, `kubeiam server` on the system's webhook port is one configured as EKS
    configures the authenticator (:data:`BACKENDS_BY_MODE`); :meth:`close` gives the port back
    to the system's own server and removes the RBAC objects it made.
    """

    system: System
    cluster: str
    workdir: Path
    dynamic_file: Path = field(init=False)
    backends: tuple[str, ...] = ()
    last: Rendered | None = None
    _server: KubeiamServer | None = None

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.dynamic_file = self.workdir / "access-entries.json"

    # -- reading EKS -----------------------------------------------------------------------
    def read(self) -> tuple[str, list[EntryRecord]]:
        return self.system.aws.eks_access_entries(self.cluster)

    def _namespaces(self) -> list[str]:
        done = self.system.plane.kubectl("get", "namespaces", "-o", "json")
        return [item["metadata"]["name"] for item in json.loads(done.stdout)["items"]]

    # -- one pass, as EKS would on a change ------------------------------------------------
    def sync(self) -> Rendered:
        """Read EKS, write the DynamicFile, apply and prune the RBAC objects, and restart the
        server when the mode's backends changed. Returns what was rendered."""
        mode, records = self.read()
        if mode not in BACKENDS_BY_MODE:
            raise AssertionError(f"eks stand-in: unknown authentication mode {mode}")
        # [CAM] in CONFIG_MAP the access entries are not a source at all.
        served = records if "DynamicFile" in BACKENDS_BY_MODE[mode] else []
        now = datetime.datetime.now(datetime.UTC)
        document = render_dynamic_file(served, now=now)
        rbac = render_rbac(self.cluster, served, self._namespaces())
        self._write_dynamic_file(document)
        self._apply_rbac(rbac)
        rendered = Rendered(mode, document, rbac, BACKENDS_BY_MODE[mode])
        if rendered.backends != self.backends:
            self._restart(rendered.backends)
        self.last = rendered
        return rendered

    def _write_dynamic_file(self, document: Mapping[str, Any]) -> None:
        temporary = self.dynamic_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(document, indent=2))
        os.replace(temporary, self.dynamic_file)  # a new inode: the server's poll sees it

    def _existing_rbac(self) -> set[tuple[str, str, str]]:
        done = self.system.plane.kubectl(
            "get",
            "clusterroles,clusterrolebindings,rolebindings",
            "--all-namespaces",
            "-l",
            f"{LABEL}={self.cluster}",
            "-o",
            "json",
        )
        return {_key(item) for item in json.loads(done.stdout)["items"]}

    def _apply_rbac(self, objects: list[dict[str, Any]]) -> None:
        wanted = {_key(obj) for obj in objects}
        for kind, namespace, name in sorted(self._existing_rbac() - wanted):
            args = ["delete", kind.lower(), name, "--ignore-not-found"]
            self.system.plane.kubectl(*args, *(["-n", namespace] if namespace else []))
        if objects:
            manifest = {"apiVersion": "v1", "kind": "List", "items": objects}
            self.system.plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))

    # -- the server, configured as EKS configures the authenticator ------------------------
    def server_config(self, backends: Sequence[str]) -> dict[str, Any]:
        """The system server's config with EKS's backends: its API access, port and state
        directory kept; no MountedFile entries."""
        base = yaml.safe_load(self.system.server.config.read_text())
        server = {
            key: value
            for key, value in base["server"].items()
            if key not in ("mapUsers", "mapRoles", "mapAccounts", "mapGroups")
        }
        server["backendMode"] = list(backends)
        if "DynamicFile" in backends:
            server["dynamicfilepath"] = str(self.dynamic_file)
            server["dynamicfileUserIDStrict"] = True
            server["reservedPrefixConfig"] = [
                {
                    "backendMode": "DynamicFile",
                    "usernamePrefixReserveList": list(DYNAMIC_FILE_RESERVED_PREFIXES),
                }
            ]
        return {**base, "server": server}

    def _restart(self, backends: tuple[str, ...]) -> None:
        """Serve the webhook's port with a server reading ``backends``, as EKS reconfigures the
        authenticator when the mode changes (the system's own server is stopped meanwhile)."""
        own = self.system.server
        config = self.workdir / f"server-{'-'.join(b.lower() for b in backends)}.yaml"
        config.write_text(yaml.safe_dump(self.server_config(backends)))
        argv = own.process.argv  # [kubeiam, "server", "--config", FILE, *flags]
        assert argv[1:4] == ["server", "--config", str(own.config)], argv
        replacement = KubeiamServer(
            config=config,
            state_dir=own.state_dir,  # the certificate kube-apiserver's webhook config trusts
            port=own.port,
            log_path=self.workdir / "kubeiam-server.log",
            env=own.process.env,
            flags=argv[4:],
        )
        if self._server is not None:
            self._server.stop()
        else:
            own.stop()
        self._server = replacement
        replacement.start()
        self.backends = backends

    @property
    def server(self) -> KubeiamServer:
        """The running EKS-configured server (after the first :meth:`sync`)."""
        assert self._server is not None, "sync() first"
        return self._server

    def log_tails(self, lines: int = 60) -> dict[str, str]:
        """The stand-in server's log (the system's own logs come from the `system` fixture)."""
        if self._server is None:
            return {}
        return {f"kubeiam server (EKS stand-in for {self.cluster})": self._server.tail(lines)}

    def close(self) -> None:
        """Stop the stand-in's server, start the system's own again, remove the RBAC objects."""
        try:
            if self._server is not None:
                self._server.stop()
                self._server = None
                self.system.server.start()
        finally:
            self._apply_rbac([])
            self.backends = ()


def create_cluster(system: System, mode: str) -> str:
    """A new cluster in the local EKS with ``mode`` as its authentication mode; its name."""
    eks = system.aws.boto3_client("eks")
    name = f"e2e-eks-{os.urandom(4).hex()}"
    eks.create_cluster(
        name=name,
        roleArn=f"arn:aws:iam::{system.aws.account_id}:role/eks-cluster",
        resourcesVpcConfig={},
        accessConfig={"authenticationMode": mode},
    )
    return name


class EksStandIns:
    """The ``eks_standin`` fixture: ``eks_standin.start(mode)`` creates a local EKS cluster in
    ``mode`` and a stand-in for it, already synced; every one started is closed at teardown."""

    def __init__(self, system: System, workdir: Path) -> None:
        self.system = system
        self.workdir = workdir
        self.started: list[EksStandIn] = []

    def start(self, mode: str = "API_AND_CONFIG_MAP") -> EksStandIn:
        if self.started:
            raise AssertionError("one EKS stand-in at a time: they share the webhook's port")
        cluster = create_cluster(self.system, mode)
        standin = EksStandIn(self.system, cluster, self.workdir / cluster)
        self.started.append(standin)
        standin.sync()
        return standin

    def log_tails(self, lines: int = 60) -> dict[str, str]:
        tails: dict[str, str] = {}
        for standin in self.started:
            tails.update(standin.log_tails(lines))
        return tails

    def close(self) -> None:
        for standin in reversed(self.started):
            standin.close()
        self.started.clear()
