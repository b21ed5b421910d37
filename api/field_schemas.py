"""Field types the bodies share: ids, labels, UTC times, triggers, policies by name, examples."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Strict, StringConstraints

from scheduler.store.models import ExcludedPolicy, Overlap
from scheduler.timing.triggers import Timestamp, TriggerSpec, to_utc

SCHEDULE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
# Label keys exclude ':' so that the list filter `label=k:v` is unambiguous.
LABEL_KEY_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$"

LabelKey = Annotated[str, StringConstraints(pattern=LABEL_KEY_PATTERN)]
CalendarName = Annotated[str, StringConstraints(pattern=SCHEDULE_ID_PATTERN)]
LabelValue = Annotated[str, StringConstraints(max_length=256)]


Trigger = TriggerSpec
"""A trigger as bodies take it (a date out of UTC's range is refused by the model itself)."""
UTCDatetime = Annotated[Timestamp, AfterValidator(to_utc)]
"""An RFC 3339 time with an offset (naive is refused), converted to UTC."""
OverlapName = Annotated[Overlap, Strict(False)]
"""An overlap policy by name, in models that are otherwise strict."""
ExcludedPolicyName = Annotated[ExcludedPolicy, Strict(False)]
"""What to do with an excluded fire, by name, in models that are otherwise strict."""


def example_config(
    *examples: Any, extra: Literal["forbid", "ignore"] = "ignore", strict: bool = False
) -> ConfigDict:
    """A model config showing ``examples`` in the OpenAPI schema.

    Request models are ``strict``: a number field takes a JSON number, a boolean field
    true or false and a text field a string, never a value coerced from another type
    (``"5"``, ``true`` as 1), which would be stored as something the client did not send.
    """
    return ConfigDict(extra=extra, strict=strict, json_schema_extra={"examples": list(examples)})
