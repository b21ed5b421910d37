"""Vetting outgoing HTTP targets against server-side request forgery (pure, no I/O but DNS).

A target is resolved once; every address it resolves to must be public unless its host
is allow-listed. The caller then connects to one of the vetted addresses itself (see
:mod:`jobs.webhook` and :mod:`scheduler.runs.alert_webhook`), so a second DNS answer can never
redirect the request. Shared by the ``sundial.webhook`` task and the alert webhook.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

import httpx

from scheduler.errors import SundialError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetError(SundialError):
    """A URL that may not or cannot be called."""


class TargetInvalid(TargetError):
    """Not a URL with a host."""


class TargetRefused(TargetError):
    """Not allowed: a scheme other than http(s), or a non-public address not allow-listed."""


class TargetUnresolvable(TargetError):
    """The host does not resolve (perhaps only for now)."""


ALLOWED_SCHEMES = frozenset({"http", "https"})
# Instance-metadata endpoints hand out cloud credentials; named so the refusal says why.
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)


@dataclass(frozen=True)
class Target:
    """A webhook URL whose host resolved to addresses that may be called."""

    url: httpx.URL
    host: str
    addresses: tuple[str, ...]
    allow_listed: bool


def address_refusal(address: IPAddress) -> str | None:
    """Why ``address`` may not be called unless allow-listed, or ``None`` when it is public."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return "cloud metadata"
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("site-local", isinstance(address, ipaddress.IPv6Address) and address.is_site_local),
        ("not globally routable", not address.is_global),
    )
    for reason, applies in checks:
        if applies:
            return reason
    return None


def host_allowed(host: str, allowed_hosts: Sequence[str]) -> bool:
    """True when ``host`` matches one of the ``SUNDIAL_WEBHOOK_ALLOWED_HOSTS`` globs."""
    host = host.lower()
    return any(
        fnmatchcase(host, pattern.strip().strip("[]").lower())
        for pattern in allowed_hosts
        if pattern.strip()
    )


def resolve(host: str, port: int) -> tuple[str, ...]:
    """Addresses of ``host`` in resolver order, without duplicates; literals pass through."""
    try:
        return (str(ipaddress.ip_address(host)),)
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetUnresolvable(f"webhook host {host!r} does not resolve: {exc}") from exc
    found: dict[str, None] = {}
    for _family, _type, _proto, _canonname, sockaddr in infos:
        # An IPv6 scope ("fe80::1%eth0") is dropped: it only ever marks a link-local address.
        found.setdefault(str(sockaddr[0]).partition("%")[0], None)
    return tuple(found)


def vet_target(url: str, allowed_hosts: Sequence[str]) -> Target:
    """Parse, resolve and vet a webhook URL; raise :class:`TargetError` if not allowed."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise TargetInvalid(f"webhook url is not a URL: {exc}") from exc
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise TargetRefused(f"webhook url scheme {parsed.scheme!r} is not http or https")
    host = parsed.raw_host.decode("ascii").lower()
    if not host:
        raise TargetInvalid("webhook url has no host")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    addresses = resolve(host, port)
    if not addresses:
        raise TargetUnresolvable(f"webhook host {host!r} resolved to no address")
    allow_listed = host_allowed(host, allowed_hosts)
    if not allow_listed:
        # Every address must pass, not just the first: the client may fall back to any.
        for address in addresses:
            reason = address_refusal(ipaddress.ip_address(address))
            if reason is not None:
                raise TargetRefused(
                    f"webhook host {host!r} resolves to {reason} address {address}; "
                    "add it to SUNDIAL_WEBHOOK_ALLOWED_HOSTS to allow it"
                )
    return Target(url=parsed, host=host, addresses=addresses, allow_listed=allow_listed)
