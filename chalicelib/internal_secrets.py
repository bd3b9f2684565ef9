"""Every kind of secret credport itself creates or names: the one list the name builders and auto-id share.

A kind is either one exact name (``<prefix>/session-key``) or a name-space (``<prefix>/token-signing/``, under
which code makes one secret per key). The code that makes a secret builds its name from its kind here
(:meth:`SecretKind.name`, :meth:`SecretKind.member`), and template.yaml's secrets are checked against this list
by a unit test, so a new kind cannot be created without appearing here. Auto-id does not rely on this list to
decide what it serves (it serves only names under its serving prefixes, whatever exists), but the settings
refuse a serving prefix that could reach any kind listed here, and a functional test lists every secret the
flows create and proves each one outside the serving prefixes is a kind of this list and is refused.

No imports from the rest of chalicelib: the settings validate against this module.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AUTOID_ROLE_NAMESPACE",
    "AUTOID_SERVER_KEY",
    "AUTOID_SESSION_KEY",
    "KINDS",
    "SESSION_KEY",
    "TOKEN_SIGNING",
    "TRANSFER_CLIENT",
    "TRANSFER_IMPORT_KEY",
    "SecretKind",
    "internal_kind",
    "reaching_kinds",
    "role_name_prefix",
]


@dataclass(frozen=True)
class SecretKind:
    """``suffix`` follows ``<prefix>/``: a name-space ends with '/', anything else is one exact name."""

    suffix: str
    created_by: str  # where the secret is made: for the reader, and for the test that lists them

    @property
    def is_namespace(self) -> bool:
        return self.suffix.endswith("/")

    def name(self, prefix: str) -> str:
        """The exact name, or the name-space's prefix (ending in '/')."""
        return f"{prefix}/{self.suffix}"

    def member(self, prefix: str, rest: str) -> str:
        """A name inside this name-space (the only way code names a secret of a name-space kind)."""
        if not self.is_namespace or not rest:
            raise ValueError(f"{self.suffix!r} is not a name-space, or the name under it is empty")
        return self.name(prefix) + rest

    def contains(self, prefix: str, name: str) -> bool:
        base = self.name(prefix)
        return name.startswith(base) if self.is_namespace else name == base


SESSION_KEY = SecretKind("session-key", "template.yaml SessionKeySecret")
AUTOID_SESSION_KEY = SecretKind("autoid-session-key", "template.yaml AutoIdSessionKeySecret")
TRANSFER_IMPORT_KEY = SecretKind("transfer-import-key", "template.yaml ImportKeySecret")
AUTOID_SERVER_KEY = SecretKind("autoid-server-key", "template.yaml AutoIdKeySecret")
TOKEN_SIGNING = SecretKind("token-signing/", "chalicelib/tokens/envelope_keys.py (envelope signer keys)")
TRANSFER_CLIENT = SecretKind("transfer/", "chalicelib/transfer/sending.py (one secret per transfer client)")

KINDS: tuple[SecretKind, ...] = (
    SESSION_KEY,
    AUTOID_SESSION_KEY,
    TRANSFER_IMPORT_KEY,
    AUTOID_SERVER_KEY,
    TOKEN_SIGNING,
    TRANSFER_CLIENT,
)

# Roles auto-id may hand out are named ``<prefix>-autoid-…`` (the IAM policy's AutoIdRoles statement); every
# other ``<prefix>-…`` role is credport's own (its functions' roles, the link signer). A function's role is
# ``<prefix>-<python name>``, which has no '-', so no function role can ever fall under this name-space.
AUTOID_ROLE_NAMESPACE = "autoid-"


def role_name_prefix(prefix: str) -> str:
    """Every role credport owns is named with this prefix (template.yaml, chalice's function roles)."""
    return f"{prefix}-"


def internal_kind(prefix: str, name: str) -> SecretKind | None:
    """The kind ``name`` belongs to, if credport owns it."""
    return next((kind for kind in KINDS if kind.contains(prefix, name)), None)


def reaching_kinds(prefix: str, name_prefix: str) -> tuple[SecretKind, ...]:
    """The kinds a name prefix could reach, or lies inside: either one starts with the other."""
    return tuple(
        kind for kind in KINDS if kind.name(prefix).startswith(name_prefix) or name_prefix.startswith(kind.name(prefix))
    )
