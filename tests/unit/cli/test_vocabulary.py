"""One vocabulary across the CLI (docs/cli.md): the click tree is walked, every flag checked.

- A flag that names a listed concept with another spelling fails (``--groups``,
  ``--mapping-file``, ``--sso-account`` ...), unless it is one of the compatibility spellings
  docs/cli.md lists for drop-in use (``token -r/--role``, ``server --dynamicfilepath`` ...).
- The concept table in docs/cli.md is true: each row's flag is taken by exactly the commands the
  row lists, and reads the ``KUBEIAM_*`` variable the row names.
- ``-o/--output`` is only ever a format, ``--cluster`` only ever the EKS cluster name, ``-i``
  only ever the cluster id, ``--group`` is repeatable.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from kubeiam.cli.app import COMMANDS, cli

DOC = Path(__file__).resolve().parents[3] / "docs" / "cli.md"

#: concept -> (its flag, a pattern every other spelling of it matches).
SYNONYMS: dict[str, tuple[str, str]] = {
    "Kubernetes group": ("--group", r"--(k8s-|kube-|kubernetes-)?groups?"),
    "Kubernetes username": ("--username", r"--(k8s-|kube-|kubernetes-)?(user-?name|uname)"),
    "IAM role ARN": ("--role-arn", r"--(iam-)?(role|role-?arn|assume-role|role-to-assume)"),
    "mapping store": ("--store", r"--(mapping-|map-)?(store|store-kind|backend)"),
    "mapping file": ("--file", r"--(mapping-|map-)(file|path)|--file-?path|--path"),
    "kubeconfig": ("--kubeconfig", r"--(mapping-)?(kube-?config|kubeconfig-?(file|path))"),
    "kubeconfig context": (
        "--context",
        r"--(mapping-|kube-?|kubeconfig-)?(context|ctx)|--alias|--context-name",
    ),
    "kubeconfig user": ("--user", r"--user-?alias|--kube-?user|--user-name-entry"),
    "EKS cluster name": ("--cluster", r"--(eks-)?cluster(-name)?|--eks-cluster"),
    "cluster id": ("--cluster-id", r"--(cluster-?id|clusterid)"),
    "output format": ("--output", r"--(output-?format|format|out-?format)"),
    "output file": ("--output-file", r"--(out|output-?path|out-?file|output-?file)"),
    "AWS account": ("--account", r"--(sso-|aws-)?account(-?id)?"),
    "AWS profile": ("--profile", r"--(aws-)?profile(-?name)?"),
    "AWS region": ("--region", r"--(aws-)?region(-?name)?"),
    "AWS partition": ("--partition", r"--(aws-)?partition"),
    "role session name": ("--session-name", r"--(role-)?session(-?name)?"),
    "dry run": ("--dry-run", r"--(dryrun|dry|plan|what-if)"),
}

#: (command, spelling) pairs accepted for drop-in compatibility; each is listed in docs/cli.md.
COMPATIBILITY = {
    ("token", "-r"),
    ("token", "--role"),
    ("server", "--generate-kubeconfig"),
    ("server", "--dynamicfilepath"),
    ("server", "--ec2-describeInstances-qps"),
    ("server", "--ec2-describeInstances-burst"),
    ("kubeconfig update", "--alias"),
    ("kubeconfig update", "--user-alias"),
}

#: What -o/--output may choose between.
FORMATS = {"table", "text", "json", "yaml", "html"}
KEBAB = re.compile(r"--[a-z0-9]+(-[a-z0-9]+)*")


def walk() -> Iterator[tuple[str, click.Command]]:
    """Every visible leaf command, by its path (``kubeiam token`` included: its click command
    is built from the same option table as the hand parser)."""
    ctx = click.Context(cli)

    def visit(group: click.Group, prefix: str) -> Iterator[tuple[str, click.Command]]:
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            assert command is not None, name
            path = f"{prefix} {name}".strip()
            if isinstance(command, click.Group):
                yield from visit(command, path)
            else:
                yield path, command

    yield from visit(cli, "")


TREE = dict(walk())


def options(command: click.Command) -> Iterator[tuple[click.Option, str]]:
    for param in command.params:
        if isinstance(param, click.Option):
            for spelling in [*param.opts, *param.secondary_opts]:
                yield param, spelling


def test_the_walk_sees_every_command() -> None:
    tops = {path.split()[0] for path in TREE}
    assert tops == {name for name, (_, _, hidden) in COMMANDS.items() if not hidden}
    assert {"token", "mapping add-user", "iam revoke", "kubeconfig update"} <= set(TREE)
    assert "--role-arn" in {s for _, s in options(TREE["token"])}


ALL_FLAGS = sorted({(path, s) for path, cmd in TREE.items() for _, s in options(cmd)})


@pytest.mark.parametrize(("path", "spelling"), ALL_FLAGS, ids=[f"{p}:{s}" for p, s in ALL_FLAGS])
def test_no_flag_names_a_listed_concept_differently(path: str, spelling: str) -> None:
    if (path, spelling) in COMPATIBILITY:
        return
    if spelling.startswith("--"):
        assert KEBAB.fullmatch(spelling), f"{path} {spelling}: flags are lower-case kebab-case"
    for concept, (canonical, pattern) in SYNONYMS.items():
        if spelling != canonical and re.fullmatch(pattern, spelling):
            pytest.fail(
                f"`kubeiam {path} {spelling}` names the {concept} differently: use {canonical} "
                "(docs/cli.md), or list it there as a compatibility spelling"
            )


def test_the_synonym_patterns_catch_the_old_spellings() -> None:
    """The patterns would have caught every spelling this vocabulary replaced."""
    old = {
        "--groups": "--group",
        "--k8s-groups": "--group",
        "--mapping-file": "--file",
        "--mapping-store": "--store",
        "--mapping-kubeconfig": "--kubeconfig",
        "--mapping-context": "--context",
        "--sso-account": "--account",
        "--role": "--role-arn",
        "--alias": "--context",
        "--user-alias": "--user",
        "--output-path": "--output-file",
        "--cluster-name": "--cluster",
    }
    for spelling, canonical in old.items():
        caught = [c for c, (flag, pat) in SYNONYMS.items() if re.fullmatch(pat, spelling)]
        assert caught, spelling
        assert all(SYNONYMS[c][0] == canonical for c in caught), (spelling, caught)


@pytest.mark.parametrize("path", sorted(TREE))
def test_short_flags_keep_one_meaning(path: str) -> None:
    for option, spelling in options(TREE[path]):
        if spelling == "-o" or spelling == "--output":
            assert isinstance(option.type, click.Choice), f"{path} {spelling} is not a format"
            assert set(option.type.choices) <= FORMATS, (path, option.type.choices)
            assert set(option.opts) == {"-o", "--output"}, (path, option.opts)
        if spelling == "-i":
            assert "--cluster-id" in option.opts, path
        if spelling == "--cluster":
            assert option.help is not None, path
            assert "EKS cluster" in option.help, f"{path} --cluster must mean the EKS cluster"
        if spelling == "--group":
            assert option.multiple, f"{path} --group must be repeatable"


# -- docs/cli.md is true to the tree -------------------------------------------------------------


def doc_rows() -> list[tuple[str, list[str], list[str], list[str]]]:
    """(concept, flags, env vars, commands) of the concepts table."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Concepts", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if not line.startswith("| ") or line.startswith(("| concept", "|---")):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 4, line
        ticks = [re.findall(r"`([^`]+)`", c) for c in cells[1:]]
        rows.append((cells[0], ticks[0], ticks[1], ticks[2]))
    return rows


ROWS = doc_rows()


def expand(listed: list[str]) -> set[str]:
    out: set[str] = set()
    for item in listed:
        if item.endswith(" *"):
            group = item[:-2]
            out |= {p for p in TREE if p.startswith(group + " ")}
        else:
            out.add(item)
    return out


def test_the_doc_table_lists_every_concept_the_test_guards() -> None:
    flags = {flags[-1] for _, flags, _, _ in ROWS}
    guarded = {canonical for canonical, _ in SYNONYMS.values()}
    assert guarded <= flags, sorted(guarded - flags)


@pytest.mark.parametrize(
    ("concept", "flags", "envs", "commands"), ROWS, ids=[r[1][-1] for r in ROWS]
)
def test_each_doc_row_is_true(
    concept: str, flags: list[str], envs: list[str], commands: list[str]
) -> None:
    listed = expand(commands)
    unknown = listed - set(TREE)
    assert not unknown, f"docs/cli.md lists commands that do not exist: {sorted(unknown)}"
    flag = flags[-1]
    having = {path for path, cmd in TREE.items() if flag in {s for _, s in options(cmd)}}
    assert having == listed, (
        f"docs/cli.md row {concept!r} ({flag}): add {sorted(having - listed)}, "
        f"remove {sorted(listed - having)}"
    )
    for path in having:
        option = next(o for o, s in options(TREE[path]) if s == flag)
        assert set(flags) <= {*option.opts, *option.secondary_opts}, (path, flags, option.opts)
        envvar = option.envvar
        reads = {envvar} if isinstance(envvar, str) else set(envvar or ())
        for name in envs:
            if name.startswith("KUBEIAM_"):
                # click reads it, or the command does and its help says so
                said = name in (option.help or "")
                assert name in reads or said, f"{path} {flag} does not read {name}"
        assert {r for r in reads if r.startswith("KUBEIAM_")} <= set(envs), (path, reads)


def test_every_compatibility_spelling_is_documented() -> None:
    section = DOC.read_text(encoding="utf-8").split("## Compatibility spellings", 1)[1]
    for path, spelling in sorted(COMPATIBILITY):
        assert spelling in {s for _, s in options(TREE[path])}, f"{path} has no {spelling}"
        assert f"`{spelling}`" in section, f"docs/cli.md does not list {path} {spelling}"
