"""Shared pydantic configuration for every API type.

Fields are snake_case in Python and camelCase on the wire (YAML, JSON, the CRDs),
exactly as Kubernetes objects are. Unknown fields are rejected so that a typo in a
DAG file is an error that names the field, never a silently ignored setting.
"""

from __future__ import annotations

from typing import Any, Self

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


_EVERY_FIELD: dict[type[BaseModel], set[str]] = {}


class ManyModel(ApiModel):
    """An ApiModel there are thousands of at once (a DAG's tasks, a run's task statuses).

    pydantic keeps, per instance, the set of fields that were given (`model_fields_set`,
    read only by `exclude_unset` dumps, which we never make) and copies it on every
    `model_copy`: 216 bytes, and 728 once more than four fields were given, which a task
    status that has been through a try has; more than the rest of it (object and values,
    about 350 bytes). An instance of a ManyModel instead says every field was given,
    with one set per class shared by all its instances (nothing can add to it: every
    name it could add is in it).
    """

    def model_post_init(self, context: Any, /) -> None:
        object.__setattr__(self, "__pydantic_fields_set__", _every_field(type(self)))

    def __copy__(self) -> Self:
        if self.__pydantic_private__ is not None or self.__pydantic_extra__ is not None:
            copied = super().__copy__()
            object.__setattr__(copied, "__pydantic_fields_set__", _every_field(type(self)))
            return copied
        copied = type(self).__new__(type(self))
        object.__setattr__(copied, "__dict__", self.__dict__.copy())
        object.__setattr__(copied, "__pydantic_extra__", None)
        object.__setattr__(copied, "__pydantic_fields_set__", _every_field(type(self)))
        object.__setattr__(copied, "__pydantic_private__", None)
        return copied

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        copied = super().__deepcopy__(memo)
        object.__setattr__(copied, "__pydantic_fields_set__", _every_field(type(self)))
        return copied


def _every_field(cls: type[BaseModel]) -> set[str]:
    found = _EVERY_FIELD.get(cls)
    if found is None:
        found = _EVERY_FIELD[cls] = set(cls.model_fields)
    return found
