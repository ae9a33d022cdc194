"""`whoami --cluster` is the EKS cluster name (docs/cli.md): it finds the kubeconfig context whose
cluster is that EKS cluster; a context name passed as --cluster is refused with the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeiam.cli.whoami import _context_for
from kubeiam.errors import ConfigError

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: []
contexts:
- name: dev
  context: {cluster: "arn:aws:eks:eu-west-2:111122223333:cluster/kubedemy", user: u}
- name: kops
  context: {cluster: kops1, user: u}
"""

FOUND = [
    ("eks-arn", "kubedemy", "dev"),
    ("bare-name-outside-eks", "kops1", "kops"),
]
REFUSED = [
    ("a-context-name", "dev", "is a kubeconfig context", "pass --context dev"),
    ("unknown", "prod", "no context for EKS cluster prod", "kubeiam kubeconfig update"),
    ("control-characters", "p\x1b[31m", "'p\\x1b[31m'", "--context"),
]


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "config"
    path.write_text(KUBECONFIG)
    return path


@pytest.mark.parametrize(("case", "cluster", "context"), FOUND, ids=[c for c, _, _ in FOUND])
def test_the_context_of_an_eks_cluster(
    kubeconfig: Path, case: str, cluster: str, context: str
) -> None:
    assert _context_for(kubeconfig, cluster) == context


@pytest.mark.parametrize(
    ("case", "cluster", "message", "hint"), REFUSED, ids=[c for c, _, _, _ in REFUSED]
)
def test_refused_with_the_fix(
    kubeconfig: Path, case: str, cluster: str, message: str, hint: str
) -> None:
    with pytest.raises(ConfigError) as err:
        _context_for(kubeconfig, cluster)
    assert message in err.value.message
    assert err.value.hint is not None
    assert hint in err.value.hint
    assert "\x1b" not in str(err.value)


def test_every_file_of_kubeconfig_is_searched_as_kubectl_merges_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = tmp_path / "first"
    first.write_text(
        "apiVersion: v1\nkind: Config\ncontexts:\n- {name: a, context: {cluster: x}}\n"
    )
    second = tmp_path / "second"
    second.write_text(
        "apiVersion: v1\nkind: Config\ncontexts:\n"
        '- {name: b, context: {cluster: "arn:aws:eks:eu-west-2:111122223333:cluster/prod"}}\n'
        # the first file's `a` wins: this one is shadowed, as kubectl shadows it
        '- {name: a, context: {cluster: "arn:aws:eks:eu-west-2:111122223333:cluster/shadow"}}\n'
    )
    monkeypatch.setenv("KUBECONFIG", f"{first}:{tmp_path / 'missing'}:{second}")
    assert _context_for(None, "prod") == "b"
    with pytest.raises(ConfigError, match="no context for EKS cluster shadow"):
        _context_for(None, "shadow")


def test_no_kubeconfig_at_all_names_the_ways_to_give_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ConfigError) as err:
        _context_for(None, "prod")
    assert err.value.hint is not None
    assert "--kubeconfig" in err.value.hint


def test_a_malformed_kubeconfig_is_refused_by_the_one_kubeconfig_reader(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(KUBECONFIG + "- name: broken\n  context: not-a-mapping\n")
    with pytest.raises(ConfigError, match="'broken': context is not a map"):
        _context_for(path, "kubedemy")
