"""``sundial import-beat MODULE:APP``: a Celery app's beat_schedule, applied as schedules."""

from __future__ import annotations

import click

from sundial.console.declarative import apply_entries
from sundial.console.files import Entry
from sundial.console.options import connection_options, fail, output_option, reason_option
from sundial.console.render import emit


@click.command("import-beat")
@click.argument("app_reference", metavar="MODULE:APP")
@click.option("--source", help="Apply source (default: beat-MODULE).")
@click.option("--prune", is_flag=True, help="Delete schedules of this source no longer in beat.")
@click.option("--dry-run", is_flag=True, help="Check and show the plan; change nothing.")
@click.option(
    "--print",
    "print_only",
    is_flag=True,
    help="Print the schedules as a file for `sundial apply -f` instead of applying them.",
)
@reason_option
@output_option()
@connection_options
def import_beat_command(
    app_reference: str,
    source: str | None,
    prune: bool,
    dry_run: bool,
    print_only: bool,
    reason: str | None,
    output: str,
    url: str,
    api_key: str | None,
) -> None:
    """Apply the beat_schedule of Celery app MODULE:APP as sundial schedules."""
    # Celery is loaded only by this command: the other client commands never need it.
    from sundial.beat import BeatImportError, convert, load_app, schedule_id

    try:
        documents = convert(load_app(app_reference))
    except BeatImportError as exc:
        fail(f"cannot import the beat schedule of {app_reference}:\n{exc}", code=1)
    if print_only:
        emit(documents, "json" if output == "json" else "yaml")
        return
    if not documents:
        fail(f"{app_reference} has an empty beat_schedule; nothing to import", code=1)
    name = source or schedule_id(f"beat-{app_reference.partition(':')[0]}")
    entries = [Entry(d, f"beat_schedule of {app_reference}", i) for i, d in enumerate(documents, 1)]
    apply_entries(
        entries,
        source=name,
        prune=prune,
        dry_run=dry_run,
        output=output,
        url=url,
        api_key=api_key,
        reason=reason,
    )
