"""The IAM policy evaluator against outcomes AWS documents.

Each case names the IAM User Guide page whose rule it checks (PAGES below); the policies are the
shapes those pages use, on ``sts:AssumeRole`` because that is what the access report asks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from kubeiam.access.policy import (
    Caller,
    Decision,
    Policy,
    PolicyDocumentError,
    PrincipalType,
    Request,
    Subject,
    Verdict,
    action_matches,
    evaluate,
    parse_policy,
    resource_matches,
)

DOC = "https://docs.aws.amazon.com/IAM/latest/UserGuide/"
PAGES = {
    "logic": DOC + "reference_policies_evaluation-logic.html",
    "denyallow": DOC + "reference_policies_evaluation-logic_policy-eval-denyallow.html",
    "cross": DOC + "reference_policies_evaluation-logic-cross-account.html",
    "principal": DOC + "reference_policies_elements_principal.html",
    "notprincipal": DOC + "reference_policies_elements_notprincipal.html",
    "action": DOC + "reference_policies_elements_action.html",
    "notaction": DOC + "reference_policies_elements_notaction.html",
    "resource": DOC + "reference_policies_elements_resource.html",
    "notresource": DOC + "reference_policies_elements_notresource.html",
    "condition": DOC + "reference_policies_elements_condition.html",
    "boundaries": DOC + "access_policies_boundaries.html",
    "variables": DOC + "reference_policies_variables.html",
}

ACCOUNT = "111122223333"
OTHER = "444455556666"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/Admin"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob"
DEPLOYER = f"arn:aws:iam::{ACCOUNT}:role/deployer"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
MFA = {"Bool": {"aws:MultiFactorAuthPresent": "true"}}


def doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def trusts(principal: Any, effect: str = "Allow", **extra: Any) -> dict[str, Any]:
    key = extra.pop("key", "Principal")
    return {"Effect": effect, key: principal, "Action": "sts:AssumeRole", **extra}


def may(action: Any = "sts:AssumeRole", resource: Any = ROLE, **extra: Any) -> dict[str, Any]:
    statement = {"Effect": extra.pop("effect", "Allow"), "Resource": resource, **extra}
    if "NotAction" not in statement:
        statement["Action"] = action
    if "NotResource" in statement:
        del statement["Resource"]
    return statement


@dataclass(frozen=True)
class Case:
    page: str
    trust: list[dict[str, Any]]
    expected: Decision
    identity: list[dict[str, Any]] = field(default_factory=list)
    boundary: list[dict[str, Any]] | None = None
    caller: str = ALICE
    kind: PrincipalType = PrincipalType.USER
    account: str = ACCOUNT
    unique_id: str = ""
    #: Text the verdict's description must contain.
    says: str = ""


CASES: dict[str, Case] = {
    # Same account: a trust policy naming the principal's ARN grants by itself.
    "trust-names-user-needs-no-identity-allow": Case(
        "logic", [trusts({"AWS": ALICE})], Decision.ALLOWED
    ),
    # Naming the account delegates to it: the identity policy must allow too.
    "trust-names-account-root-alone-denies": Case(
        "principal", [trusts({"AWS": ROOT})], Decision.DENIED
    ),
    "trust-names-account-root-and-identity-allows": Case(
        "principal", [trusts({"AWS": ROOT})], Decision.ALLOWED, identity=[may()]
    ),
    "trust-names-bare-account-id-and-identity-allows": Case(
        "principal", [trusts({"AWS": ACCOUNT})], Decision.ALLOWED, identity=[may()]
    ),
    "trust-names-root-identity-allows-other-role-only": Case(
        "principal", [trusts({"AWS": ROOT})], Decision.DENIED, identity=[may(resource=DEPLOYER)]
    ),
    # Role trust policies must always allow: an identity allow alone is not enough.
    "identity-allows-but-trust-names-someone-else": Case(
        "logic", [trusts({"AWS": BOB})], Decision.DENIED, identity=[may()]
    ),
    "no-trust-statement-for-the-action": Case(
        "logic",
        [{"Effect": "Allow", "Principal": {"AWS": ALICE}, "Action": "sts:TagSession"}],
        Decision.DENIED,
    ),
    # Wildcards and case.
    "action-wildcard-star": Case(
        "action",
        [trusts({"AWS": ROOT})],
        Decision.ALLOWED,
        identity=[may("sts:Assume*", "arn:aws:iam::*:role/*")],
    ),
    "action-names-case-insensitive": Case(
        "action", [trusts({"AWS": ROOT})], Decision.ALLOWED, identity=[may("STS:assumerole")]
    ),
    "resource-question-mark": Case(
        "resource",
        [trusts({"AWS": ROOT})],
        Decision.ALLOWED,
        identity=[may(resource=f"arn:aws:iam::{ACCOUNT}:role/Adm?n")],
    ),
    "resource-case-sensitive": Case(
        "resource",
        [trusts({"AWS": ROOT})],
        Decision.DENIED,
        identity=[may(resource=f"arn:aws:iam::{ACCOUNT}:role/admin")],
    ),
    "action-star-everything": Case(
        "action", [trusts({"AWS": ROOT})], Decision.ALLOWED, identity=[may("*", "*")]
    ),
    # Explicit deny wins everywhere.
    "identity-deny-beats-trust-naming-user": Case(
        "denyallow", [trusts({"AWS": ALICE})], Decision.DENIED, identity=[may(effect="Deny")]
    ),
    "trust-deny-beats-identity-allow": Case(
        "denyallow",
        [trusts({"AWS": ROOT}), trusts({"AWS": ALICE}, "Deny")],
        Decision.DENIED,
        identity=[may()],
    ),
    "deny-star-beats-allow": Case(
        "denyallow",
        [trusts({"AWS": ALICE})],
        Decision.DENIED,
        identity=[may("*", "*", effect="Deny")],
    ),
    # NotAction / NotResource.
    "allow-notaction-iam-covers-sts": Case(
        "notaction",
        [trusts({"AWS": ROOT})],
        Decision.ALLOWED,
        identity=[may(NotAction="iam:*", resource="*")],
    ),
    "allow-notaction-sts-excludes-assumerole": Case(
        "notaction",
        [trusts({"AWS": ROOT})],
        Decision.DENIED,
        identity=[may(NotAction="sts:*", resource="*")],
    ),
    "deny-notaction-iam-without-mfa-is-conditional": Case(
        "notaction",
        [trusts({"AWS": ROOT})],
        Decision.CONDITIONAL,
        identity=[
            may(),
            may(
                effect="Deny",
                NotAction="iam:*",
                resource="*",
                Condition={"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}},
            ),
        ],
        says="unless aws:MultiFactorAuthPresent BoolIfExists false",
    ),
    "allow-notresource-excluding-the-role": Case(
        "notresource", [trusts({"AWS": ROOT})], Decision.DENIED, identity=[may(NotResource=ROLE)]
    ),
    "allow-notresource-excluding-another-role": Case(
        "notresource",
        [trusts({"AWS": ROOT})],
        Decision.ALLOWED,
        identity=[may(NotResource=[DEPLOYER])],
    ),
    "deny-notresource-other-role-denies-this-one": Case(
        "notresource",
        [trusts({"AWS": ALICE})],
        Decision.DENIED,
        identity=[may(effect="Deny", NotResource=DEPLOYER)],
    ),
    # Conditions are carried, never decided.
    "trust-with-mfa-condition": Case(
        "condition",
        [trusts({"AWS": ALICE}, Condition=MFA)],
        Decision.CONDITIONAL,
        says="allowed if aws:MultiFactorAuthPresent Bool true",
    ),
    "identity-allow-with-condition": Case(
        "condition",
        [trusts({"AWS": ROOT})],
        Decision.CONDITIONAL,
        identity=[may(Condition={"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.168.0.0/16"]}})],
        says="aws:SourceIp IpAddress 10.0.0.0/8, 192.168.0.0/16",
    ),
    "unconditional-allow-wins-over-conditional-allow": Case(
        "condition",
        [trusts({"AWS": ALICE}, Condition=MFA), trusts({"AWS": ALICE})],
        Decision.ALLOWED,
    ),
    "policy-variable-in-resource": Case(
        "variables",
        [trusts({"AWS": ROOT})],
        Decision.CONDITIONAL,
        identity=[may(resource=f"arn:aws:iam::{ACCOUNT}:role/${{aws:username}}")],
        says="PolicyVariable",
    ),
    # Principal forms.
    "trust-star-principal": Case("principal", [trusts("*")], Decision.ALLOWED),
    "trust-aws-star-principal": Case("principal", [trusts({"AWS": "*"})], Decision.ALLOWED),
    "trust-service-principal-is-not-a-user": Case(
        "principal", [trusts({"Service": "ec2.amazonaws.com"})], Decision.DENIED, identity=[may()]
    ),
    "trust-unique-id-of-deleted-user-not-the-new-one": Case(
        "principal",
        [trusts({"AWS": "AIDAOLDOLDOLDOLDOLD"})],
        Decision.DENIED,
        unique_id="AIDANEWNEWNEWNEWNEW",
    ),
    "trust-unique-id-matches-same-principal": Case(
        "principal",
        [trusts({"AWS": "AIDASAMESAMESAME"})],
        Decision.ALLOWED,
        unique_id="AIDASAMESAMESAME",
    ),
    "notprincipal-deny-spares-the-listed-user": Case(
        "notprincipal",
        [trusts({"AWS": ROOT}), trusts({"AWS": ALICE}, "Deny", key="NotPrincipal")],
        Decision.ALLOWED,
        identity=[may()],
    ),
    "notprincipal-deny-hits-everyone-else": Case(
        "notprincipal",
        [trusts({"AWS": ROOT}), trusts({"AWS": ALICE}, "Deny", key="NotPrincipal")],
        Decision.DENIED,
        identity=[may()],
        caller=BOB,
    ),
    "notprincipal-allow-is-not-guessed": Case(
        "notprincipal",
        [trusts({"AWS": BOB}, key="NotPrincipal")],
        Decision.UNKNOWN,
        says="NotPrincipal",
    ),
    # Permissions boundaries.
    "boundary-without-sts-blocks-identity-allow": Case(
        "boundaries",
        [trusts({"AWS": ROOT})],
        Decision.DENIED,
        identity=[may()],
        boundary=[may("s3:*", "*")],
    ),
    "boundary-allowing-sts-keeps-identity-allow": Case(
        "boundaries",
        [trusts({"AWS": ROOT})],
        Decision.ALLOWED,
        identity=[may()],
        boundary=[may("sts:*", "*")],
    ),
    "boundary-alone-grants-nothing": Case(
        "boundaries", [trusts({"AWS": ROOT})], Decision.DENIED, boundary=[may("*", "*")]
    ),
    "boundary-does-not-limit-trust-naming-user-arn": Case(
        "boundaries", [trusts({"AWS": ALICE})], Decision.ALLOWED, boundary=[may("s3:*", "*")]
    ),
    "boundary-limits-trust-naming-role-arn": Case(
        "boundaries",
        [trusts({"AWS": DEPLOYER})],
        Decision.DENIED,
        boundary=[may("s3:*", "*")],
        caller=DEPLOYER,
        kind=PrincipalType.ROLE,
    ),
    "role-arn-in-trust-within-boundary": Case(
        "boundaries",
        [trusts({"AWS": DEPLOYER})],
        Decision.ALLOWED,
        boundary=[may("sts:AssumeRole", "*")],
        caller=DEPLOYER,
        kind=PrincipalType.ROLE,
    ),
    "boundary-explicit-deny": Case(
        "boundaries",
        [trusts({"AWS": ALICE})],
        Decision.DENIED,
        boundary=[may("*", "*"), may("sts:*", "*", effect="Deny")],
    ),
    # Another account: its identity policies cannot be seen.
    "cross-account-trusted-is-unknown": Case(
        "cross",
        [trusts({"AWS": f"arn:aws:iam::{OTHER}:root"})],
        Decision.UNKNOWN,
        caller=f"arn:aws:iam::{OTHER}:user/carol",
        account=OTHER,
        says=f"identity policies in account {OTHER}",
    ),
    "cross-account-user-named-still-needs-its-account": Case(
        "cross",
        [trusts({"AWS": f"arn:aws:iam::{OTHER}:user/carol"})],
        Decision.UNKNOWN,
        caller=f"arn:aws:iam::{OTHER}:user/carol",
        account=OTHER,
    ),
    "cross-account-not-trusted-is-denied": Case(
        "cross",
        [trusts({"AWS": ROOT})],
        Decision.DENIED,
        caller=f"arn:aws:iam::{OTHER}:user/carol",
        account=OTHER,
    ),
    "cross-account-trusted-with-external-id": Case(
        "cross",
        [trusts({"AWS": OTHER}, Condition={"StringEquals": {"sts:ExternalId": "x1"}})],
        Decision.UNKNOWN,
        caller=f"arn:aws:iam::{OTHER}:role/vendor",
        kind=PrincipalType.ROLE,
        account=OTHER,
        says="sts:ExternalId StringEquals x1",
    ),
}


def _subject(case: Case) -> Subject:
    identity = (parse_policy(doc(*case.identity), source="identity"),) if case.identity else ()
    boundary = parse_policy(doc(*case.boundary), source="boundary") if case.boundary else None
    return Subject(
        Caller(case.caller, case.account, case.unique_id),
        case.kind,
        identity,
        boundary,
        visible=case.account == ACCOUNT,
    )


def _assume(trust: Policy) -> Request:
    return Request("sts:AssumeRole", ROLE, ACCOUNT, trust, resource_policy_required=True)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_documented_outcomes(case: Case) -> None:
    assert case.page in PAGES
    trust = parse_policy(doc(*case.trust), source="trust policy of Admin")
    verdict = evaluate(_assume(trust), _subject(case))
    assert verdict.decision is case.expected, verdict.describe()
    assert case.says in verdict.describe()


def test_conditions_are_listed_for_json() -> None:
    trust = parse_policy(doc(trusts({"AWS": ALICE}, Condition=MFA)), source="t")
    verdict = evaluate(_assume(trust), _subject(Case("logic", [], Decision.ALLOWED)))
    assert verdict.conditions == ("if aws:MultiFactorAuthPresent Bool true",)
    assert verdict.granted_by == ("t",)


def test_denied_by_names_the_policy() -> None:
    trust = parse_policy(doc(trusts({"AWS": ALICE})), source="trust")
    identity = parse_policy(
        doc(may(effect="Deny")), source="arn:aws:iam::111122223333:policy/NoAssume"
    )
    subject = Subject(Caller(ALICE, ACCOUNT), PrincipalType.USER, (identity,))
    verdict = evaluate(_assume(trust), subject)
    assert verdict.decision is Decision.DENIED
    assert verdict.denied_by == ("arn:aws:iam::111122223333:policy/NoAssume",)


def _verdict(*trust: dict[str, Any]) -> Verdict:
    subject = Subject(Caller(ALICE, ACCOUNT), PrincipalType.USER)
    return evaluate(_assume(parse_policy(doc(*trust), source="t")), subject)


CHAINS = {
    "allowed-then-allowed": ([trusts("*")], [trusts("*")], Decision.ALLOWED),
    "allowed-then-conditional": ([trusts("*")], [trusts("*", Condition=MFA)], Decision.CONDITIONAL),
    "conditional-then-denied": (
        [trusts("*", Condition=MFA)],
        [trusts({"AWS": BOB})],
        Decision.DENIED,
    ),
    "deny-in-a-hop-wins": ([trusts("*")], [trusts("*"), trusts("*", "Deny")], Decision.DENIED),
}


@pytest.mark.parametrize(("first", "second", "expected"), CHAINS.values(), ids=CHAINS.keys())
def test_role_chain_is_the_conjunction_of_its_hops(
    first: list[dict[str, Any]], second: list[dict[str, Any]], expected: Decision
) -> None:
    assert _verdict(*first).then(_verdict(*second)).decision is expected


def test_conditions_of_both_hops_are_required() -> None:
    ip = {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}
    chained = _verdict(trusts("*", Condition=MFA)).then(_verdict(trusts("*", Condition=ip)))
    assert chained.conditions == (
        "if aws:MultiFactorAuthPresent Bool true and aws:SourceIp IpAddress 10.0.0.0/8",
    )


WILDCARDS = {
    "star-matches-empty": ("sts:*", "sts:", True),
    "question-one-char": ("s?s:AssumeRole", "sts:AssumeRole", True),
    "question-not-zero-chars": ("sts:AssumeRole?", "sts:AssumeRole", False),
    "regex-chars-literal": ("sts:Assume.ole", "sts:AssumeRole", False),
    "brackets-literal": ("sts:[A]ssumeRole", "sts:AssumeRole", False),
}


@pytest.mark.parametrize(("pattern", "value", "hit"), WILDCARDS.values(), ids=WILDCARDS.keys())
def test_wildcards_are_only_star_and_question_mark(pattern: str, value: str, hit: bool) -> None:
    assert action_matches(pattern, value) is hit
    assert resource_matches(pattern, value) is hit


BAD_DOCUMENTS: dict[str, tuple[Any, str]] = {
    "not-json": ("{Statement:", "not JSON"),
    "not-an-object": ("[1, 2]", "not a JSON object"),
    "no-statement": ({"Version": "2012-10-17"}, "no Statement list"),
    "statement-not-object": (doc("x"), "statement 1 is not a JSON object"),
    "bad-effect": (
        doc({"Effect": "Maybe", "Action": "*", "Resource": "*"}),
        "Effect must be Allow or Deny",
    ),
    "action-and-notaction": (
        doc({"Effect": "Allow", "Action": "*", "NotAction": "s3:*", "Resource": "*"}),
        "both Action and NotAction",
    ),
    "no-action": (doc({"Effect": "Allow", "Resource": "*"}), "neither Action nor NotAction"),
    "empty-action-list": (
        doc({"Effect": "Allow", "Action": [], "Resource": "*"}),
        "non-empty list",
    ),
    "action-not-string": (
        doc({"Effect": "Allow", "Action": 3, "Resource": "*"}),
        "Action must be a string",
    ),
    "principal-not-object": (
        doc({"Effect": "Allow", "Action": "*", "Principal": "me"}),
        "Principal must be",
    ),
    "principal-and-notprincipal": (
        doc({"Effect": "Allow", "Action": "*", "Principal": "*", "NotPrincipal": "*"}),
        "both Principal and NotPrincipal",
    ),
    "condition-not-object": (
        doc({"Effect": "Allow", "Action": "*", "Condition": ["x"]}),
        "Condition must be",
    ),
    "condition-operator-not-object": (
        doc({"Effect": "Allow", "Action": "*", "Condition": {"Bool": "x"}}),
        "Condition Bool must be an object",
    ),
}


@pytest.mark.parametrize(("document", "message"), BAD_DOCUMENTS.values(), ids=BAD_DOCUMENTS.keys())
def test_bad_documents_are_refused_naming_their_source(document: Any, message: str) -> None:
    with pytest.raises(PolicyDocumentError) as caught:
        parse_policy(document, source="role Admin trust policy")
    assert message in str(caught.value)
    assert str(caught.value).startswith("role Admin trust policy")


def test_single_statement_object_and_json_text_are_accepted() -> None:
    statement = '{"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"}'
    text = '{"Version": "2012-10-17", "Statement": ' + statement + "}"
    assert len(parse_policy(text, source="t").statements) == 1


def test_old_version_treats_dollar_brace_literally() -> None:
    old = {
        "Version": "2008-10-17",
        "Statement": [may(resource=f"arn:aws:iam::{ACCOUNT}:role/${{aws:username}}")],
    }
    trust = parse_policy(doc(trusts({"AWS": ROOT})), source="t")
    subject = Subject(
        Caller(ALICE, ACCOUNT), PrincipalType.USER, (parse_policy(old, source="old"),)
    )
    assert evaluate(_assume(trust), subject).decision is Decision.DENIED
