"""What every client subcommand shares: where the API is, the key, the output format, and
how failures end the command (one line on stderr, exit 1 for API errors, 2 for usage)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from sundial.client import Client, ClientError, ConnectionFailed, Forbidden, Unauthorized

F = TypeVar("F", bound=Callable[..., Any])
OUTPUTS = ("table", "json", "yaml")


def connection_options(command: F) -> F:
    """``--url`` and ``--api-key``, from ``SUNDIAL_API_URL`` / ``SUNDIAL_API_KEY``."""
    command = click.option(
        "--api-key",
        envvar="SUNDIAL_API_KEY",
        default=None,
        show_envvar=True,
        help="API key (sent as a Bearer token).",
    )(command)
    return click.option(
        "--url",
        envvar="SUNDIAL_API_URL",
        default="http://127.0.0.1:8000",
        show_default=True,
        show_envvar=True,
        help="Base URL of the sundial API.",
    )(command)


def output_option(*choices: str, default: str = "table") -> Callable[[F], F]:
    """``-o/--output`` among ``choices``."""
    return click.option(
        "-o",
        "--output",
        type=click.Choice(choices or OUTPUTS),
        default=default,
        show_default=True,
        help="Output format.",
    )


files_option = click.option(
    "-f",
    "--filename",
    "paths",
    multiple=True,
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="A YAML/JSON file or a directory of them; repeatable.",
)
reason_option = click.option(
    "--reason",
    help="Why: recorded with the change in the history (X-Sundial-Reason).",
)


@contextmanager
def api_client(url: str, api_key: str | None) -> Iterator[Client]:
    """A client for the command; an API failure ends the command with one line, exit 1."""
    try:
        with Client(url, api_key or "") as client:
            yield client
    except ConnectionFailed as exc:
        fail(f"{exc} (is it running? set SUNDIAL_API_URL or --url)")
    except Unauthorized as exc:
        fail(f"{exc} (set SUNDIAL_API_KEY or --api-key)")
    except Forbidden as exc:
        fail(f"{exc} (this command needs a read-write key)")
    except ClientError as exc:
        fail(str(exc))


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``sundial: message`` on stderr and exit with ``code``."""
    click.echo(f"sundial: {message}", err=True)
    sys.exit(code)
