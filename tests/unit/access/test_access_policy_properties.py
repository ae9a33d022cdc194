"""Properties of the evaluator over generated policies (hypothesis).

Whatever the statements, AWS's rules imply: an unconditional explicit deny of the request denies
it; without any allow nothing is allowed; an unconditional allow cannot become conditional by
adding unrelated statements; the decision never depends on the statements' order.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kubeiam.access.policy import (
    Caller,
    Decision,
    PrincipalType,
    Request,
    Subject,
    evaluate,
    parse_policy,
)

ACCOUNT = "111122223333"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/Admin"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"

actions = st.sampled_from(
    ["sts:AssumeRole", "sts:*", "*", "s3:GetObject", "sts:Assume?ole", "iam:*"]
)
resources = st.sampled_from(
    [ROLE, "*", f"arn:aws:iam::{ACCOUNT}:role/*", f"arn:aws:iam::{ACCOUNT}:role/Other"]
)
principals = st.sampled_from(
    [{"AWS": ALICE}, {"AWS": ACCOUNT}, "*", {"Service": "ec2.amazonaws.com"}]
)
conditions = st.one_of(st.none(), st.just({"Bool": {"aws:MultiFactorAuthPresent": "true"}}))


@st.composite
def identity_statement(draw: st.DrawFn) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": draw(st.sampled_from(["Allow", "Deny"]))}
    statement["NotAction" if draw(st.booleans()) else "Action"] = draw(actions)
    statement["NotResource" if draw(st.booleans()) else "Resource"] = draw(resources)
    if (condition := draw(conditions)) is not None:
        statement["Condition"] = condition
    return statement


@st.composite
def trust_statement(draw: st.DrawFn) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": draw(st.sampled_from(["Allow", "Deny"])),
        "Principal": draw(principals),
        "Action": draw(actions),
    }
    if (condition := draw(conditions)) is not None:
        statement["Condition"] = condition
    return statement


def _decide(identity: list[dict[str, Any]], trust: list[dict[str, Any]]) -> Decision:
    policy = parse_policy({"Version": "2012-10-17", "Statement": identity or []}, source="identity")
    trusted = parse_policy({"Version": "2012-10-17", "Statement": trust or []}, source="trust")
    subject = Subject(Caller(ALICE, ACCOUNT), PrincipalType.USER, (policy,))
    request = Request("sts:AssumeRole", ROLE, ACCOUNT, trusted, resource_policy_required=True)
    return evaluate(request, subject).decision


statements = st.lists(identity_statement(), max_size=4)
trusts = st.lists(trust_statement(), max_size=4)
UNCONDITIONAL_DENY = {"Effect": "Deny", "Action": "sts:AssumeRole", "Resource": "*"}


@settings(max_examples=150, deadline=None)
@given(statements, trusts)
def test_unconditional_deny_always_denies(
    identity: list[dict[str, Any]], trust: list[dict[str, Any]]
) -> None:
    assert _decide([*identity, UNCONDITIONAL_DENY], trust) is Decision.DENIED


@settings(max_examples=150, deadline=None)
@given(statements, trusts)
def test_no_allow_anywhere_is_denied(
    identity: list[dict[str, Any]], trust: list[dict[str, Any]]
) -> None:
    denies_only = [s for s in identity if s["Effect"] == "Deny"]
    trust_denies = [s for s in trust if s["Effect"] == "Deny"]
    assert _decide(denies_only, trust_denies) is Decision.DENIED


@settings(max_examples=150, deadline=None)
@given(statements, trusts)
def test_order_does_not_matter(identity: list[dict[str, Any]], trust: list[dict[str, Any]]) -> None:
    assert _decide(identity, trust) is _decide(identity[::-1], trust[::-1])


@settings(max_examples=150, deadline=None)
@given(statements)
def test_trust_naming_alice_allows_without_denies_and_is_never_unknown_here(
    identity: list[dict[str, Any]],
) -> None:
    trust = [{"Effect": "Allow", "Principal": {"AWS": ALICE}, "Action": "sts:AssumeRole"}]
    decision = _decide(identity, trust)
    if not any(s["Effect"] == "Deny" for s in identity):
        assert decision is Decision.ALLOWED
    else:
        assert decision in (Decision.ALLOWED, Decision.DENIED, Decision.CONDITIONAL)
