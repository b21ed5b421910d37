"""The SSRF guard: which addresses a webhook may reach, with DNS answered by the test."""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Any

import pytest

from jobs.errors import WebhookFailed, WebhookInvalid, WebhookRefused
from jobs.ssrf import address_refusal, host_allowed, vet_target


def fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> list[str]:
    """Answer getaddrinfo from ``answers``; returns the list of names looked up.

    The patch is process-wide (sockets connect through getaddrinfo too), so numeric
    hosts still go to the real function with AI_NUMERICHOST, which never queries DNS.
    """
    asked: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        asked.append(host)
        if host not in answers:
            try:
                return real_getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
            except socket.gaierror:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
        infos = []
        for address in answers[host]:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sockaddr = (address, port, 0, 0) if family == socket.AF_INET6 else (address, port)
            infos.append((family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
        return infos

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("127.0.0.1", "loopback"),
        ("127.53.0.9", "loopback"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("169.254.1.1", "link-local"),
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("fd12:3456::1", "private"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("100.64.0.1", "not globally routable"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("fec0::1", "site-local"),
        ("93.184.216.34", None),
        ("8.8.8.8", None),
        ("2606:2800:220:1:248:1893:25c8:1946", None),
    ],
)
def test_address_classification(address: str, reason: str | None) -> None:
    assert address_refusal(ipaddress.ip_address(address)) == reason


def test_public_host_is_vetted_with_its_resolved_addresses(monkeypatch):
    fake_dns(monkeypatch, {"hooks.example.com": ["93.184.216.34"]})
    target = vet_target("https://hooks.example.com/x", allowed_hosts=[])
    assert target.addresses == ("93.184.216.34",)
    assert target.host == "hooks.example.com"
    assert not target.allow_listed


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "10.0.0.5", "192.168.0.10", "169.254.169.254", "::1", "fe80::1"]
)
def test_name_resolving_to_internal_address_is_refused(monkeypatch, address):
    fake_dns(monkeypatch, {"evil.example.com": [address]})
    with pytest.raises(WebhookRefused, match=re.escape(address)):
        vet_target("http://evil.example.com/", allowed_hosts=[])


def test_one_internal_address_among_public_ones_is_refused(monkeypatch):
    fake_dns(monkeypatch, {"mixed.example.com": ["93.184.216.34", "10.0.0.1"]})
    with pytest.raises(WebhookRefused, match=re.escape("private address 10.0.0.1")):
        vet_target("http://mixed.example.com/", allowed_hosts=[])


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/", "http://[::1]/", "http://169.254.169.254/latest/"]
)
def test_ip_literals_are_vetted_without_dns(monkeypatch, url):
    asked = fake_dns(monkeypatch, {})
    with pytest.raises(WebhookRefused):
        vet_target(url, allowed_hosts=[])
    assert asked == []


def test_numeric_host_forms_are_vetted_by_what_they_resolve_to(monkeypatch):
    fake_dns(monkeypatch, {"2130706433": ["127.0.0.1"]})
    with pytest.raises(WebhookRefused, match="loopback"):
        vet_target("http://2130706433/", allowed_hosts=[])


def test_allow_listed_host_may_be_internal(monkeypatch):
    fake_dns(monkeypatch, {"billing.internal": ["10.0.0.7"]})
    target = vet_target("http://billing.internal/hook", allowed_hosts=["*.internal"])
    assert target.allow_listed
    assert target.addresses == ("10.0.0.7",)


def test_allow_list_matches_the_url_host_not_the_address(monkeypatch):
    fake_dns(monkeypatch, {"sneaky.example.com": ["127.0.0.1"]})
    with pytest.raises(WebhookRefused):
        vet_target("http://sneaky.example.com/", allowed_hosts=["127.0.0.1"])


@pytest.mark.parametrize(
    ("host", "patterns", "allowed"),
    [
        ("127.0.0.1", ["127.0.0.1"], True),
        ("api.internal", ["*.internal"], True),
        ("API.Internal", ["*.internal"], True),
        ("internal", ["*.internal"], False),
        ("::1", ["[::1]"], True),
        ("example.com", [], False),
        ("example.com", [" ", ""], False),
    ],
)
def test_host_allow_list_globs(host, patterns, allowed):
    assert host_allowed(host, patterns) is allowed


@pytest.mark.parametrize("url", ["ftp://example.com/", "file:///etc/passwd", "gopher://x/"])
def test_only_http_and_https_are_allowed(url):
    with pytest.raises(WebhookRefused, match="scheme"):
        vet_target(url, allowed_hosts=["*"])


def test_unresolvable_host_fails(monkeypatch):
    fake_dns(monkeypatch, {})
    with pytest.raises(WebhookFailed, match="does not resolve"):
        vet_target("http://nowhere.invalid/", allowed_hosts=[])


def test_url_without_host_is_invalid():
    with pytest.raises(WebhookInvalid):
        vet_target("http:///path", allowed_hosts=[])
