"""Who is looking: the viewer of each page, and the checks every dashboard write passes.

Pages need a session that logged in with a key (when keys are configured); writes need,
on top, the session's CSRF token (form field or ``X-CSRF-Token`` header) and a
read-write role. With no keys configured the dashboard is open, like the API, and still
checks CSRF tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from api.auth import Role
from api.ui.refusals import Refused
from api.ui.session import CSRF_FIELD, CSRF_HEADER, Session, Sessions, served_securely
from scheduler.settings import Settings
from scheduler.store.history import ANONYMOUS_ACTOR, Audit


class LoginRequired(Exception):
    """Keys are configured and this browser has not logged in (or its session ended)."""


@dataclass(frozen=True)
class Viewer:
    """The browser behind a request and what it may do."""

    session: Session
    role: Role | None
    csrf: str
    open: bool
    # The session is new and must be stored on the response.
    new_cookie: bool
    # Served over HTTPS or on loopback: the session cookie is marked Secure.
    secure: bool

    @property
    def can_write(self) -> bool:
        """True when write controls are shown and writes are accepted."""
        return self.role == "write"

    def audit(self) -> Audit:
        """Who makes a change from this browser, for the schedule's history: the name of
        the key it logged in with, or ``anonymous`` when the dashboard is open."""
        actor = None if self.open else self.session.actor
        return Audit(actor or ANONYMOUS_ACTOR)


@dataclass(frozen=True)
class Access:
    """The dashboard's session keeper and whether any key is configured."""

    sessions: Sessions
    open: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> Access:
        """Access control for the API's keys."""
        return cls(Sessions(settings), open=not settings.api_keys)

    def viewer(self, request: Request) -> Viewer:
        """The request's viewer, starting an anonymous session when it has none."""
        session = self.sessions.read(request)
        new_cookie = session is None
        if session is None:
            session = self.sessions.new(role=None)
        return Viewer(
            session=session,
            role="write" if self.open else session.role,
            csrf=self.sessions.csrf_token(session),
            open=self.open,
            new_cookie=new_cookie,
            secure=served_securely(request),
        )


async def get_access(request: Request) -> Access:
    """The app's :class:`Access`, built by :func:`api.ui.mount.mount_dashboard`."""
    access: Access = request.app.state.dashboard_access
    return access


async def any_viewer(request: Request, access: Annotated[Access, Depends(get_access)]) -> Viewer:
    """Whoever it is, logged in or not: for the login page."""
    return access.viewer(request)


async def reader(viewer: Annotated[Viewer, Depends(any_viewer)]) -> Viewer:
    """A viewer allowed to read: logged in, or the dashboard is open."""
    if viewer.role is None:
        raise LoginRequired
    return viewer


async def writer(
    request: Request,
    viewer: Annotated[Viewer, Depends(reader)],
    access: Annotated[Access, Depends(get_access)],
) -> Viewer:
    """A viewer allowed to write who sent this session's CSRF token."""
    token = request.headers.get(CSRF_HEADER)
    if token is None:
        form = await request.form()
        field = form.get(CSRF_FIELD)
        token = field if isinstance(field, str) else None
    if not access.sessions.csrf_valid(viewer.session, token):
        raise Refused(403, "The form's CSRF token is missing or wrong: reload the page and retry.")
    if not viewer.can_write:
        raise Refused(403, "This API key may only read.")
    return viewer


AnyViewer = Annotated[Viewer, Depends(any_viewer)]
Reader = Annotated[Viewer, Depends(reader)]
Writer = Annotated[Viewer, Depends(writer)]
