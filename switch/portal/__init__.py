"""The merchant portal's accounts (issue 13; seeds/000 "Authentication", "Changing the password", "Two-factor
authentication"; seeds/004 "Security", "Access control").

Users are e-mail addresses with a password (scrypt, :mod:`switch.store.projects`' hashing) and a role per project
(:data:`ROLES`); sessions, lockout, login history and TOTP second factors are kept in PostgreSQL
(``schemas/sql/030_portal_users.sql``). The HTTP side (pages, cookies, CSRF) is ``http_front.portal``'s: this
package knows no HTTP.
"""

from switch.portal.policy import ROLES, PasswordRejected, check_password, role_allows
from switch.portal.service import (
    LoginResult,
    Portal,
    PortalConfig,
    PortalError,
    Session,
    User,
    UserExists,
)
from switch.portal.team import Team, TeamRefused

__all__ = [
    "ROLES",
    "LoginResult",
    "PasswordRejected",
    "Portal",
    "PortalConfig",
    "PortalError",
    "Session",
    "Team",
    "TeamRefused",
    "User",
    "UserExists",
    "check_password",
    "role_allows",
]
