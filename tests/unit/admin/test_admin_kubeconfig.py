"""kubeconfig entries: round-trip editing, file choice, locking, modes, dry runs."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeiam.admin.kubeconfig import update as kc
from kubeiam.errors import AWSAdminError, ConfigError

FIXTURES = Path(__file__).parents[2] / "fixtures" / "admin"
PEM = b"-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"
PEM_B64 = base64.b64encode(PEM).decode()
ARN = "arn:aws:eks:eu-west-2:111122223333:cluster/kubedemy"


def endpoint(name: str = "kops1", **kw: Any) -> kc.ClusterEndpoint:
    defaults: dict[str, Any] = {
        "server": f"https://api.{name}.example",
        "ca_data": PEM_B64,
        "cluster_id": name,
        "region": "eu-west-2",
    }
    defaults.update(kw)
    return kc.ClusterEndpoint(name=name, **defaults)


def entry(name: str = "kops1", **kw: Any) -> kc.KubeconfigEntry:
    return kc.build_entry(endpoint(name), **kw)


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def named(data: dict[str, Any], key: str, name: str) -> dict[str, Any]:
    found = [i for i in data[key] if i["name"] == name]
    assert len(found) == 1, f"{key}/{name} appears {len(found)} times"
    return found[0]  # type: ignore[no-any-return]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- round trip ------------------------------------------------------------------------------


def test_round_trip_keeps_comments_namespace_and_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "config"
    original = (FIXTURES / "kubeconfig_commented.yaml").read_text()
    path.write_text(original)

    kc.update_kubeconfig(entry(profile="dev"), [path])

    text = path.read_text()
    for kept in (
        "# Hand-written kubeconfig",
        "# a cluster kubeiam must not touch",
        "namespace: team-a   # the namespace aws update-kubeconfig loses",
        "tls-server-name: api.internal      # kept",
        "colors: true   # unknown to kubeiam, kept",
        "owner: platform-team",
        "static-token-value",
    ):
        assert kept in text, kept
    data = load(path)
    cluster = named(data, "clusters", "kops1")["cluster"]
    assert cluster["server"] == "https://api.kops1.example"
    assert cluster["certificate-authority-data"] == PEM_B64
    assert "certificate-authority" not in cluster  # both would make kubectl fail
    assert named(data, "contexts", "kops1")["context"] == {
        "cluster": "kops1",
        "user": "kops1",
        "namespace": "team-a",
    }
    exec_ = named(data, "users", "kops1")["user"]["exec"]
    assert exec_["apiVersion"] == "client.authentication.k8s.io/v1"
    assert exec_["command"] == "kubeiam"
    assert exec_["args"] == ["token", "-i", "kops1", "--region", "eu-west-2", "--profile", "dev"]
    assert exec_["interactiveMode"] == "IfAvailable"
    assert "env" not in exec_  # the user entry is kubeiam's whole (see test_stale_credentials)
    assert "args: [token, -i, kops1" in text  # a flow-style list stays flow style
    assert data["current-context"] == "kops1"
    # order of top-level keys and of entries is unchanged
    assert [c["name"] for c in data["clusters"]] == ["staging", "kops1"]
    assert list(data) == list(yaml.safe_load(original))


def test_untouched_entries_are_byte_identical(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text((FIXTURES / "kubeconfig_commented.yaml").read_text())
    before = path.read_text().splitlines()
    kc.update_kubeconfig(entry(), [path])
    after = path.read_text().splitlines()
    # the staging cluster block (lines 7-10 of the fixture) is unchanged, comment included
    assert before[6:10] == after[6:10]


def test_indentation_style_of_the_file_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: a\n  cluster:\n    server: https://a\n"
    )
    kc.update_kubeconfig(entry(), [path])
    text = path.read_text()
    assert "\n- name: a\n  cluster:\n    server: https://a\n" in text
    # the new entry uses the same sequence indentation and puts `name` first like its neighbour
    assert "\n- name: kops1\n  cluster:\n    server: https://api.kops1.example\n" in text
    assert "\ncontexts:\n- context:\n" in text  # new lists follow kubectl's order


@pytest.mark.parametrize(
    ("api_version", "interactive"),
    [(kc.ExecAPIVersion.V1, True), (kc.ExecAPIVersion.V1BETA1, False)],
    ids=["v1-needs-interactiveMode", "v1beta1-without"],
)
def test_exec_api_version(
    tmp_path: Path, api_version: kc.ExecAPIVersion, interactive: bool
) -> None:
    path = tmp_path / "config"
    kc.update_kubeconfig(entry(api_version=api_version), [path])
    exec_ = named(load(path), "users", "kops1")["user"]["exec"]
    assert exec_["apiVersion"] == api_version.value
    assert ("interactiveMode" in exec_) is interactive


@pytest.mark.parametrize(
    ("kwargs", "args"),
    [
        ({}, ["token", "-i", "kops1", "--region", "eu-west-2"]),
        (
            {"role_arn": "arn:aws:iam::111122223333:role/K8sAdmin"},
            [
                "token",
                "-i",
                "kops1",
                "--region",
                "eu-west-2",
                "--role-arn",
                "arn:aws:iam::111122223333:role/K8sAdmin",
            ],
        ),
        ({"profile": "dev"}, ["token", "-i", "kops1", "--region", "eu-west-2", "--profile", "dev"]),
    ],
    ids=["plain", "role", "profile-as-argument"],
)
def test_exec_args(kwargs: dict[str, Any], args: list[str]) -> None:
    assert entry(**kwargs).exec.args() == args


def test_profile_is_an_argument_not_env(tmp_path: Path) -> None:
    """aws-cli#7794: AWS_PROFILE in env loses to keys in the shell; an argument does not."""
    path = tmp_path / "config"
    kc.update_kubeconfig(entry(profile="dev"), [path])
    exec_ = named(load(path), "users", "kops1")["user"]["exec"]
    assert "env" not in exec_
    assert exec_["args"][-2:] == ["--profile", "dev"]


def test_aliases_name_the_context_and_user(tmp_path: Path) -> None:
    path = tmp_path / "config"
    kc.update_kubeconfig(entry(alias="demo", user_alias="demo-user"), [path])
    data = load(path)
    assert named(data, "contexts", "demo")["context"] == {"cluster": "kops1", "user": "demo-user"}
    assert named(data, "users", "demo-user")
    assert data["current-context"] == "demo"


def test_an_aws_written_entry_is_updated_in_place(tmp_path: Path) -> None:
    """Entries named by the cluster ARN (what aws writes) are taken over, not duplicated."""
    path = tmp_path / "config"
    path.write_text(
        textwrap.dedent(f"""\
        apiVersion: v1
        clusters:
        - cluster:
            certificate-authority-data: {PEM_B64}
            server: https://old
          name: {ARN}
        contexts:
        - context:
            cluster: {ARN}
            namespace: apps
            user: {ARN}
          name: {ARN}
        current-context: {ARN}
        kind: Config
        preferences: {{}}
        users:
        - name: {ARN}
          user:
            exec:
              apiVersion: client.authentication.k8s.io/v1beta1
              args: [--region, eu-west-2, eks, get-token, --cluster-name, kubedemy]
              command: aws
              auth-provider-leftover: kept
            auth-provider:
              name: oidc
        """)
    )
    eks = endpoint("kubedemy", arn=ARN, cluster_id="kubedemy")
    kc.update_kubeconfig(kc.build_entry(eks), [path])
    data = load(path)
    assert len(data["clusters"]) == len(data["users"]) == len(data["contexts"]) == 1
    assert named(data, "contexts", ARN)["context"]["namespace"] == "apps"
    user = named(data, "users", ARN)["user"]
    assert "auth-provider" not in user  # kubectl refuses exec + auth-provider
    assert user["exec"]["command"] == "kubeiam"
    assert "auth-provider-leftover" not in user["exec"]


# --- switching -------------------------------------------------------------------------------


def test_no_switch_leaves_current_context(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text((FIXTURES / "kubeconfig_commented.yaml").read_text())
    kc.update_kubeconfig(entry(), [path], switch=False)
    assert load(path)["current-context"] == "staging"


# --- files, modes, idempotency ---------------------------------------------------------------


def test_missing_file_and_directory_are_created_private(tmp_path: Path) -> None:
    path = tmp_path / "home" / ".kube" / "config"
    result = kc.update_kubeconfig(entry(), [path])
    assert result.changed
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    data = load(path)
    assert data["apiVersion"] == "v1"
    assert data["kind"] == "Config"
    assert data["current-context"] == "kops1"


def test_a_loose_mode_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("apiVersion: v1\nkind: Config\n")
    path.chmod(0o644)
    kc.update_kubeconfig(entry(), [path])
    assert mode(path) == 0o600


def test_running_twice_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text((FIXTURES / "kubeconfig_commented.yaml").read_text())
    first = kc.update_kubeconfig(entry(profile="p"), [path])
    text, inode = path.read_text(), path.stat().st_ino
    second = kc.update_kubeconfig(entry(profile="p"), [path])
    assert first.changed
    assert not second.changed
    assert not second.updates[0].written
    assert path.read_text() == text
    assert path.stat().st_ino == inode  # not even rewritten


def test_dry_run_prints_a_diff_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text((FIXTURES / "kubeconfig_commented.yaml").read_text())
    before = path.read_bytes()
    result = kc.update_kubeconfig(entry(), [path], dry_run=True)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["config"]  # not even a lock file
    assert result.changed
    assert f"--- {path}" in result.diff
    assert "+current-context: kops1" in result.diff
    assert "-current-context: staging" in result.diff


def test_dry_run_on_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "new" / "config"
    result = kc.update_kubeconfig(entry(), [path], dry_run=True)
    assert not path.parent.exists()
    assert "+current-context: kops1" in result.diff


def test_dry_run_diff_redacts_other_users_secrets(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\nusers:\n"
        "- name: x\n  user:\n    token: hunter2-static\n"
    )
    result = kc.update_kubeconfig(entry(), [path], dry_run=True)
    assert "hunter2-static" not in result.diff
    assert "token: <redacted>" in result.diff


@pytest.mark.parametrize(
    "text",
    ["apiVersion: v1\nclusters: [unclosed\n", "key: value\n  bad indent: x\n", "- a list\n"],
    ids=["unclosed-flow", "bad-indent", "not-a-mapping"],
)
def test_a_bad_file_is_refused_and_left_untouched(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config"
    path.write_text(text)
    path.chmod(0o644)
    with pytest.raises(ConfigError) as err:
        kc.update_kubeconfig(entry(), [path])
    assert str(path) in str(err.value)
    assert path.read_text() == text
    assert mode(path) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == [".config.kubeiam.lock", "config"]


def test_a_list_where_a_list_belongs_is_required(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("apiVersion: v1\nclusters: {a: 1}\n")
    with pytest.raises(ConfigError, match="`clusters` is not a list"):
        kc.update_kubeconfig(entry(), [path])


def test_a_stale_kubectl_lock_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "config"
    (tmp_path / "config.lock").write_text("")
    with pytest.raises(ConfigError, match=r"config\.lock exists"):
        kc.update_kubeconfig(entry(), [path], kubectl_lock_wait=0.05)
    assert not path.exists()


# --- KUBECONFIG lists ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "env", "expected"),
    [
        ("/x/flag", {"KUBECONFIG": "/a:/b"}, ["/x/flag"]),
        (None, {"KUBECONFIG": "/a::/b:/a"}, ["/a", "/b"]),
        (None, {}, ["HOME/.kube/config"]),
        (None, {"KUBECONFIG": ""}, ["HOME/.kube/config"]),
    ],
    ids=["flag-wins", "list-deduplicated", "default", "empty-variable"],
)
def test_kubeconfig_paths(flag: str | None, env: dict[str, str], expected: list[str]) -> None:
    home = Path("/home/u")
    got = kc.kubeconfig_paths(flag, env, home)
    assert got == [Path(e.replace("HOME", str(home))) for e in expected]


def test_list_writes_to_the_file_that_defines_the_entry(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_text("apiVersion: v1\nkind: Config\ncurrent-context: other\n")
    second.write_text(
        "apiVersion: v1\nkind: Config\ncontexts:\n- name: kops1\n  context: {cluster: kops1, "
        "user: kops1, namespace: ns2}\n"
    )
    result = kc.update_kubeconfig(entry(), [first, second])
    assert result.path == second
    assert named(load(second), "users", "kops1")
    assert named(load(second), "contexts", "kops1")["context"]["namespace"] == "ns2"
    # current-context lives in the first file that sets one: kubectl reads it from there
    assert load(first)["current-context"] == "kops1"
    assert "users" not in load(first)
    assert {u.path for u in result.updates} == {first, second}


def test_list_without_the_entry_writes_the_first_file(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    second.write_text("apiVersion: v1\nkind: Config\ncurrent-context: b\n")
    result = kc.update_kubeconfig(entry(), [first, second], switch=False)
    assert result.path == first
    assert named(load(first), "clusters", "kops1")
    assert load(second)["current-context"] == "b"


def test_list_with_a_broken_member_is_refused(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_text("apiVersion: v1\n")
    second.write_text("clusters: [\n")
    with pytest.raises(ConfigError, match="second"):
        kc.update_kubeconfig(entry(), [first, second])
    assert first.read_text() == "apiVersion: v1\n"


# --- concurrency -----------------------------------------------------------------------------

_WRITER = """
import sys
from pathlib import Path
from kubeiam.admin.kubeconfig import update as kc
path, prefix, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
for i in range(n):
    name = f"{prefix}{i}"
    ep = kc.ClusterEndpoint(name, f"https://{name}", "Zm9v", name, None, None)
    kc.update_kubeconfig(kc.build_entry(ep), [path], switch=False)
"""


def test_concurrent_writers_lose_no_entries(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("# shared\napiVersion: v1\nkind: Config\n")
    count = 10
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(path), prefix, str(count)])
        for prefix in ("a", "b")
    ]
    for proc in procs:
        assert proc.wait(timeout=60) == 0
    data = load(path)
    names = {c["name"] for c in data["clusters"]}
    assert names == {f"{p}{i}" for p in "ab" for i in range(count)}
    assert len(data["users"]) == len(data["contexts"]) == 2 * count
    assert path.read_text().startswith("# shared\n")
    assert mode(path) == 0o600
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == [".config.kubeiam.lock", "config"]  # no temp files, no kubectl lock


# --- endpoints -------------------------------------------------------------------------------


def eks_description(**kw: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "name": "kubedemy",
        "arn": ARN,
        "endpoint": "https://ABC.gr7.eu-west-2.eks.amazonaws.com",
        "status": "ACTIVE",
        "certificateAuthority": {"data": PEM_B64},
        "id": "0123abcd-0000-1111-2222-333344445555",
    }
    d.update(kw)
    return d


def test_eks_endpoint_uses_the_cluster_name_as_id_and_the_arn_region() -> None:
    ep = kc.endpoint_from_eks(eks_description(), name="kubedemy")
    assert (ep.cluster_id, ep.region, ep.arn, ep.warnings) == ("kubedemy", "eu-west-2", ARN, ())
    e = kc.build_entry(ep)
    assert e.cluster_name == e.user_name == e.context_name == ARN


def test_eks_local_cluster_on_outposts_uses_its_id() -> None:
    desc = eks_description(outpostConfig={"controlPlaneInstanceType": "m5.large"})
    ep = kc.endpoint_from_eks(desc, name="kubedemy")
    assert ep.cluster_id == desc["id"]


@pytest.mark.parametrize(
    "desc",
    [eks_description(status="CREATING"), eks_description(status="ACTIVE", endpoint=None)],
    ids=["creating", "no-endpoint"],
)
def test_eks_cluster_not_ready(desc: dict[str, Any]) -> None:
    with pytest.raises(AWSAdminError) as err:
        kc.endpoint_from_eks(desc, name="kubedemy")
    assert err.value.code == "ClusterNotReady"


def test_random_ca_data_is_a_warning_and_invalid_base64_an_error() -> None:
    random_b64 = base64.b64encode(os.urandom(64)).decode()
    ep = kc.endpoint_from_eks(eks_description(certificateAuthority={"data": random_b64}), name="x")
    assert len(ep.warnings) == 1
    assert "not a PEM certificate" in ep.warnings[0]
    with pytest.raises(ConfigError, match="not valid base64"):
        kc.endpoint_from_eks(eks_description(certificateAuthority={"data": "%%%"}), name="x")


def test_endpoint_from_files(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(PEM)
    ep = kc.endpoint_from_files("kops1", "https://api.kops1", ca, region="us-east-1")
    assert base64.b64decode(ep.ca_data) == PEM
    assert (ep.cluster_id, ep.arn, ep.region) == ("kops1", None, "us-east-1")
    with pytest.raises(ConfigError, match="https"):
        kc.endpoint_from_files("kops1", "http://api.kops1", ca)
    ca.write_text("not pem")
    with pytest.raises(ConfigError, match="not a PEM"):
        kc.endpoint_from_files("kops1", "https://api.kops1", ca)


@pytest.mark.parametrize(
    ("flag", "version"),
    [("v1", kc.ExecAPIVersion.V1), ("v1beta1", kc.ExecAPIVersion.V1BETA1)],
    ids=["v1", "v1beta1"],
)
def test_api_version_flag(flag: str, version: kc.ExecAPIVersion) -> None:
    assert kc.ExecAPIVersion.from_flag(flag) is version


def test_v1alpha1_is_refused() -> None:
    with pytest.raises(ConfigError, match="v1 or v1beta1"):
        kc.ExecAPIVersion.from_flag("v1alpha1")


# --- property: entries accumulate, re-applying is a no-op ------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_cluster_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=10)


# ruamel round trips cost ~10 ms each: a modest number of examples keeps this at a few seconds.
@settings(max_examples=40, deadline=None)
@given(
    names=st.lists(_cluster_names, min_size=1, max_size=3),
    profile=st.one_of(st.none(), _cluster_names),
    switch=st.booleans(),
)
def test_render_accumulates_and_is_idempotent(
    names: list[str], profile: str | None, switch: bool
) -> None:
    path = Path("/nonexistent/config")
    text = (FIXTURES / "kubeconfig_commented.yaml").read_text()
    for name in names:
        text = kc.render(path, text, entry(name, profile=profile), switch=switch)
    again = kc.render(path, text, entry(names[-1], profile=profile), switch=switch)
    assert again == text
    data = yaml.safe_load(text)
    for name in {*names, "kops1", "staging"}:
        named(data, "clusters", name)
        named(data, "contexts", name)
    assert named(data, "contexts", "kops1")["context"]["namespace"] == "team-a"
    assert data["current-context"] == (names[-1] if switch else "staging")
    assert "# Hand-written kubeconfig" in text


# --- the user entry is kubeiam's whole; CA data clears insecure-skip-tls-verify -----------------

#: Credentials that would be used instead of kubeiam's exec entry, or make kubectl refuse it.
STALE_USER = [
    ("token", "token: s3cret-static-token", ["token"]),
    ("token-file", "tokenFile: /var/run/token", ["tokenFile"]),
    ("basic-auth", "username: admin\n    password: s3cret-password", ["username", "password"]),
    (
        "auth-provider",
        "auth-provider:\n      name: oidc\n      config: {id-token: s3cret-id-token}",
        ["auth-provider"],
    ),
    (
        "client-cert-data",
        "client-certificate-data: Y2VydA==\n    client-key-data: s3cret-key-data",
        ["client-certificate-data", "client-key-data"],
    ),
    (
        "client-cert-files",
        "client-certificate: /etc/a.crt\n    client-key: /etc/a.key",
        ["client-certificate", "client-key"],
    ),
    ("impersonation", "as: someone-else", ["as"]),
    (
        "aws-exec-env",
        "exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: aws\n"
        "      env:\n      - {name: AWS_PROFILE, value: old}\n      provideClusterInfo: true",
        ["exec.env", "exec.provideClusterInfo"],
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "removed"), STALE_USER, ids=[case for case, _, _ in STALE_USER]
)
def test_stale_credentials_beside_exec_are_removed_and_named(
    tmp_path: Path, case: str, body: str, removed: list[str]
) -> None:
    path = tmp_path / "config"
    path.write_text(
        "apiVersion: v1\nkind: Config\nusers:\n- name: kops1\n  user:\n    "
        + body
        + "\n- name: other\n  user:\n    token: other-users-token\n"
    )
    dry = kc.update_kubeconfig(entry(), [path], dry_run=True)
    assert "s3cret" not in dry.diff  # removed secrets are not shown in the diff either
    result = kc.update_kubeconfig(entry(), [path])
    user = named(load(path), "users", "kops1")["user"]
    assert list(user) == ["exec"]
    assert set(user["exec"]) <= set(kc.EXEC_KEYS)
    assert user["exec"]["command"] == "kubeiam"
    (note,) = [w for w in result.warnings if w.startswith("user 'kops1'")]
    for key in removed:
        assert key in note
    assert "s3cret" not in " ".join(result.warnings)
    # another user's entry is not kubeiam's: left as it was
    assert named(load(path), "users", "other")["user"] == {"token": "other-users-token"}


def test_a_fresh_user_entry_gets_no_note(tmp_path: Path) -> None:
    path = tmp_path / "config"
    first = kc.update_kubeconfig(entry(), [path])
    again = kc.update_kubeconfig(entry(), [path])
    assert first.warnings == again.warnings == ()
    assert not again.changed


@pytest.mark.parametrize(
    ("value", "noted"), [("true", True), ("false", False)], ids=["true", "false"]
)
def test_ca_data_clears_insecure_skip_tls_verify(tmp_path: Path, value: str, noted: bool) -> None:
    path = tmp_path / "config"
    path.write_text(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kops1\n  cluster:\n"
        f"    server: https://old\n    insecure-skip-tls-verify: {value}\n"
        "    proxy-url: http://proxy.internal:3128\n"
    )
    result = kc.update_kubeconfig(entry(), [path])
    cluster = named(load(path), "clusters", "kops1")["cluster"]
    assert "insecure-skip-tls-verify" not in cluster
    assert cluster["certificate-authority-data"] == PEM_B64
    assert cluster["proxy-url"] == "http://proxy.internal:3128"  # the user's own setting stays
    assert any("insecure-skip-tls-verify" in w for w in result.warnings) is noted


# --- duplicate names: refused, as kubectl refuses them --------------------------------------------

DUPLICATES = [
    (
        "clusters",
        "clusters:\n- name: a\n  cluster: {server: https://a}\n"
        "- name: b\n  cluster: {server: https://b}\n"
        "- name: a\n  cluster: {server: https://a2}\n",
        "clusters: 2 entries named 'a' (lines 4, 8)",
    ),
    (
        "users",
        "users:\n- name: kops1\n  user: {token: t1}\n- name: kops1\n  user: {token: t2}\n",
        "users: 2 entries named 'kops1' (lines 4, 6)",
    ),
    (
        "contexts",
        "contexts:\n- context: {cluster: a, user: a}\n  name: x\n"
        "- context: {cluster: b, user: b}\n  name: x\n",
        "contexts: 2 entries named 'x' (lines 4, 6)",
    ),
    (
        "long-name-bounded",
        f"users:\n- name: {'n' * 300}\n  user: {{}}\n- name: {'n' * 300}\n  user: {{}}\n",
        f"users: 2 entries named '{'n' * 80}'... (lines 4, 6)",
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "named_as"), DUPLICATES, ids=[case for case, _, _ in DUPLICATES]
)
def test_duplicate_names_are_refused_and_the_file_left_untouched(
    tmp_path: Path, case: str, body: str, named_as: str
) -> None:
    path = tmp_path / "config"
    text = "apiVersion: v1\nkind: Config\n" + body
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        kc.update_kubeconfig(entry(), [path])
    assert named_as in err.value.message
    assert "duplicate names" in err.value.message
    assert "n" * 81 not in err.value.message  # a name is quoted bounded
    assert path.read_text() == text


def test_duplicate_names_in_the_file_holding_current_context_are_refused(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.write_text("apiVersion: v1\nkind: Config\n")
    text = (
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
        "contexts:\n- name: x\n  context: {}\n- name: x\n  context: {}\n"
    )
    second.write_text(text)
    with pytest.raises(ConfigError, match="contexts: 2 entries named 'x'"):
        kc.update_kubeconfig(entry(), [first, second])
    assert second.read_text() == text
