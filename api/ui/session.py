"""Dashboard sessions: a signed cookie naming the role a login earned, and CSRF tokens.

A browser cannot add ``X-API-Key`` to a link it follows, so the login form trades a key
for a session cookie: ``HttpOnly``, ``SameSite=Strict``, ``Secure`` wherever the browser
accepts it, signed and timed by itsdangerous. It holds a random session id and the role,
never the key. The signing key is derived from every configured API key (and the
database URL), so all API processes agree without another setting, and changing the keys
ends every session. Every form carries a CSRF token, an HMAC of the session id: a page
on another site can neither read it nor forge it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from api.auth import Role
from scheduler.settings import Settings

COOKIE = "sundial_session"
MAX_AGE_S = 12 * 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True)
class Session:
    """One browser's session: ``role`` None until it logs in (with keys configured);
    ``actor`` is the name of the key it logged in with (never the key)."""

    sid: str
    role: Role | None
    actor: str | None = None


def _secret(settings: Settings) -> bytes:
    material = "\n".join(sorted(key.get_secret_value() for key in settings.api_keys))
    message = f"sundial dashboard session\n{settings.database_url}".encode()
    return hmac.new(material.encode(), message, hashlib.sha256).digest()


def _loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def served_securely(request: Request) -> bool:
    """True over HTTPS, or on a loopback host, where browsers keep ``Secure`` cookies."""
    return request.url.scheme == "https" or _loopback(request.url.hostname)


class Sessions:
    """Issues, reads and checks dashboard sessions and their CSRF tokens."""

    def __init__(self, settings: Settings) -> None:
        secret = _secret(settings)
        self._serializer = URLSafeTimedSerializer(secret, salt="sundial.ui.session")
        self._csrf_key = hmac.new(secret, b"csrf", hashlib.sha256).digest()

    def new(self, role: Role | None, actor: str | None = None) -> Session:
        """A fresh session with a new id (a login never keeps the id it came with)."""
        return Session(sid=secrets.token_urlsafe(24), role=role, actor=actor)

    def read(self, request: Request) -> Session | None:
        """The request's session, or None when absent, forged or expired."""
        cookie = request.cookies.get(COOKIE)
        if not cookie:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=MAX_AGE_S)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("sid"), str):
            return None
        role, actor = data.get("role"), data.get("actor")
        return Session(
            sid=data["sid"],
            role=role if role in ("read", "write") else None,
            actor=actor if isinstance(actor, str) else None,
        )

    def store(self, response: Response, session: Session, request: Request) -> None:
        """Set the session cookie on ``response``."""
        response.set_cookie(
            COOKIE,
            self._serializer.dumps(
                {"sid": session.sid, "role": session.role, "actor": session.actor}
            ),
            max_age=MAX_AGE_S,
            path="/ui",
            httponly=True,
            samesite="strict",
            secure=served_securely(request),
        )

    def clear(self, response: Response) -> None:
        """Remove the session cookie."""
        response.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="strict")

    def csrf_token(self, session: Session) -> str:
        """The token every form of this session must send back."""
        return hmac.new(self._csrf_key, session.sid.encode(), hashlib.sha256).hexdigest()

    def csrf_valid(self, session: Session, token: str | None) -> bool:
        """True when ``token`` is this session's CSRF token."""
        return token is not None and hmac.compare_digest(token, self.csrf_token(session))
