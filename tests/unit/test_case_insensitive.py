from __future__ import annotations

from typing import Any

import pytest

from kubeiam.case_insensitive import fold_keys, get_any_case, key_in, set_any_case


@pytest.mark.parametrize(
    ("doc", "name", "key"),
    [
        ({"roleARN": 1, "rolearn": 2}, "rolearn", "roleARN"),
        ({"RoleArn": 1}, "rolearn", "RoleArn"),
        ({"username": 1}, "rolearn", None),
        ({1: "x"}, "1", 1),
    ],
    ids=["first-spelling-wins", "any-case", "absent", "non-string-key"],
)
def test_key_in_finds_the_first_key_in_any_case(doc: dict[Any, Any], name: str, key: Any) -> None:
    assert key_in(doc, name) == key
    assert get_any_case(doc, name) == (None if key is None else doc[key])


def test_set_any_case_keeps_the_written_spelling_and_adds_lower_case() -> None:
    doc: dict[str, Any] = {"UserName": "a"}
    set_any_case(doc, "username", "b")
    set_any_case(doc, "groups", ["g"])
    assert doc == {"UserName": "b", "groups": ["g"]}


def test_fold_keys_refuses_a_key_given_twice_in_any_case() -> None:
    assert fold_keys({"RoleARN": 1, "Groups": 2}, ValueError) == {"rolearn": 1, "groups": 2}
    with pytest.raises(ValueError, match="roleArn"):
        fold_keys({"rolearn": 1, "roleArn": 2}, ValueError)


def test_fold_keys_uses_the_given_fold() -> None:
    def fold(key: object) -> str:
        if not isinstance(key, str):
            raise TypeError(key)
        return key.lower()

    with pytest.raises(TypeError):
        fold_keys({1: "x"}, ValueError, fold=fold)
