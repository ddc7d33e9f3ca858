"""The seed's password policy and the roles' order.

seeds/000 "Changing the password": at least 8 characters with an upper- and a lower-case Latin letter, a digit
and a special character, and not containing the store's name or any of its users' logins in any letter case.

>>> check_password("Sunny#Day42", forbidden=["shop"])
>>> check_password("Shop#Day42", forbidden=["shop"])
Traceback (most recent call last):
...
switch.portal.policy.PasswordRejected: the password must not contain the store's name or a user's login
>>> role_allows("admin", "operator"), role_allows("viewer", "operator")
(True, False)
"""

from __future__ import annotations

import string
from collections.abc import Iterable

__all__ = ["MAX_PASSWORD", "MIN_PASSWORD", "ROLES", "PasswordRejected", "check_password", "role_allows"]

MIN_PASSWORD = 8
# A bound on what is hashed (scrypt cost does not grow with length, but a megabyte form field is refused early).
MAX_PASSWORD = 128

#: From most to least powerful: a role may do everything the ones after it may.
ROLES = ("owner", "admin", "operator", "viewer")

# The seed lists ! " # ; : ? \ * ( ) + = / < > , . [ ] { }; the rest of ASCII punctuation counts too, so a
# password manager's generated password (which may use @ $ % & - _ ...) is not refused for its symbols.
_SPECIAL = frozenset(string.punctuation) | {" "}


class PasswordRejected(ValueError):
    """The new password breaks the policy; the message says which rule, never the password."""


def check_password(password: str, *, forbidden: Iterable[str] = ()) -> None:
    """Raise :class:`PasswordRejected` unless ``password`` meets the policy; ``forbidden``: the project's name and
    its users' logins (e-mail addresses: the whole address and its local part are both refused)."""
    if len(password) < MIN_PASSWORD:
        raise PasswordRejected(f"the password must be at least {MIN_PASSWORD} characters long")
    if len(password) > MAX_PASSWORD:
        raise PasswordRejected(f"the password must be at most {MAX_PASSWORD} characters long")
    rules = (
        (lambda c: "A" <= c <= "Z", "an uppercase Latin letter (A-Z)"),
        (lambda c: "a" <= c <= "z", "a lowercase Latin letter (a-z)"),
        (lambda c: "0" <= c <= "9", "a digit (0-9)"),
        (lambda c: c in _SPECIAL, 'a special character (! " # ; : ? \\ * ( ) + = / < > , . [ ] { })'),
    )
    for test, what in rules:
        if not any(test(c) for c in password):
            raise PasswordRejected(f"the password must contain {what}")
    lowered = password.casefold()
    for word in _words(forbidden):
        if word in lowered:
            raise PasswordRejected("the password must not contain the store's name or a user's login")


def _words(forbidden: Iterable[str]) -> set[str]:
    words: set[str] = set()
    for item in forbidden:
        word = item.casefold().strip()
        local = word.partition("@")[0]
        # Very short names ("a@b") would forbid half the alphabet: 3 characters is where a name starts to mean one.
        words.update(w for w in (word, local) if len(w) >= 3)
    return words


def role_allows(role: str, needed: str) -> bool:
    """``role`` is ``needed`` or above it in :data:`ROLES`."""
    return ROLES.index(role) <= ROLES.index(needed)
