"""KeySet: the first key seals or signs, every key opens or verifies, one key per kid, never empty."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from chalicelib.keys import InvalidKeySet, KeySet


@dataclass(frozen=True)
class Key:
    kid: str
    secret: str = field(default="s", repr=False)


def test_the_first_key_is_current_and_every_key_is_found_by_kid() -> None:
    keys = KeySet([Key("b"), Key("a"), Key("c")])
    assert keys.current == Key("b")
    assert keys.kids == ("b", "a", "c")
    assert [k.kid for k in keys] == ["b", "a", "c"]
    assert len(keys) == 3
    assert keys.find("a") == Key("a")
    assert keys.find("unknown") is None


def test_an_empty_set_is_refused() -> None:
    with pytest.raises(InvalidKeySet):
        KeySet([])
    with pytest.raises(InvalidKeySet):
        KeySet(k for k in [Key("a")] if k.kid == "b")


def test_two_keys_under_one_kid_are_refused() -> None:
    with pytest.raises(InvalidKeySet):
        KeySet([Key("a", "one"), Key("b"), Key("a", "two")])


def test_a_filter_never_drops_the_current_key() -> None:
    keys = KeySet([Key("current"), Key("old"), Key("older")])
    assert keys.keep(lambda k: k.kid == "old").kids == ("current", "old")
    assert keys.keep(lambda k: False).kids == ("current",)
    assert keys.kids == ("current", "old", "older")  # the set itself is unchanged


def test_the_repr_names_kids_only() -> None:
    assert repr(KeySet([Key("a", "very-secret")])) == "KeySet(kids=['a'])"
