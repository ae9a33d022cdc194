"""`kubeiam token --role-arn` (the vocabulary's spelling) and `-r/--role` (aws-iam-authenticator's)
are one option, in the hand parser kubectl's calls go through and in the click command."""

from __future__ import annotations

import click
import pytest

from kubeiam.cli.token import parse_args

ROLE = "arn:aws:iam::111122223333:role/Admin"
SPELLINGS = {
    "role-arn": ["--role-arn", ROLE],
    "role-arn-equals": [f"--role-arn={ROLE}"],
    "long-compat": ["--role", ROLE],
    "short-compat": ["-r", ROLE],
    "short-attached": [f"-r{ROLE}"],
}


@pytest.mark.parametrize("case", list(SPELLINGS), ids=list(SPELLINGS))
def test_every_spelling_sets_the_role(case: str) -> None:
    values = parse_args(["-i", "demo", *SPELLINGS[case]])
    assert values is not None
    assert values["role"] == ROLE


def test_the_click_command_documents_the_same_option() -> None:
    from kubeiam.cli.token import token_command

    assert isinstance(token_command, click.Command)
    (option,) = [p for p in token_command.params if p.name == "role"]
    assert set(option.opts) == {"--role-arn", "-r", "--role"}
