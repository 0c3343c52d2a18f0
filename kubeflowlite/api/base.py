"""Shared pydantic configuration for every API type.

Fields are snake_case in Python and camelCase on the wire (YAML, JSON, the CRDs),
exactly as Kubernetes objects are. Unknown fields are rejected so that a typo in a
DAG file is an error that names the field, never a silently ignored setting.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    """Base for all spec/status types: camelCase aliases, strict about unknown keys."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_default=False,
        use_attribute_docstrings=False,
    )

    def to_wire(self) -> dict[str, object]:
        """The object as it is stored in Kubernetes: camelCase, no unset defaults."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
