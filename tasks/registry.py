"""Task types Hub can trigger: names, descriptions, argument schemas (GET /task-types)."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate


@dataclass
class TaskType:
    name: str
    body: Callable[..., Any]
    args: type[Schema] | None = None
    description: str = ""
    notify_on_finish: bool = False
    max_attempts: int = 3
    retry_on: tuple[type[BaseException], ...] = ()
    retry_delay: float = 1.0
    celery_task: Any = field(default=None, repr=False)

    def validate(self, raw: Any) -> dict[str, Any]:
        """Validated arguments, or a ValidationError keyed by argument name."""
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ValidationError({"args": ["must be an object"]})
        if self.args is None:
            if raw:
                raise ValidationError({"args": ["this task takes no arguments"]})
            return {}
        return self.args().load(raw)


REGISTRY: dict[str, TaskType] = {}


def register(task_type: TaskType) -> None:
    REGISTRY[task_type.name] = task_type


def lookup(name: str) -> TaskType | None:
    return REGISTRY.get(name)


_TYPES: dict[type[fields.Field], str] = {
    fields.String: "string", fields.Integer: "integer", fields.Float: "number",
    fields.Boolean: "boolean", fields.List: "array", fields.Dict: "object",
    fields.Email: "string", fields.DateTime: "string",
}


def json_schema(schema_class: type[Schema] | None) -> dict[str, Any]:
    """A JSON Schema of a task's arguments, enough for a form or a client check."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, field_obj in (schema_class().fields.items() if schema_class else []):
        prop: dict[str, Any] = {}
        for field_type, json_type in _TYPES.items():
            if isinstance(field_obj, field_type):
                prop["type"] = json_type
        validators = field_obj.validators if hasattr(field_obj, "validators") else []
        for validator in validators:
            if isinstance(validator, validate.Range):
                if validator.min is not None:
                    prop["minimum"] = validator.min
                if validator.max is not None:
                    prop["maximum"] = validator.max
            elif isinstance(validator, validate.Length):
                key = "Items" if prop.get("type") == "array" else "Length"
                if validator.min is not None:
                    prop[f"min{key}"] = validator.min
                if validator.max is not None:
                    prop[f"max{key}"] = validator.max
            elif isinstance(validator, validate.OneOf):
                prop["enum"] = list(validator.choices)
        default = field_obj.load_default
        if default is not None and not callable(default) and default is not fields.missing_:
            prop["default"] = default
        if field_obj.metadata.get("description"):
            prop["description"] = field_obj.metadata["description"]
        if field_obj.required:
            required.append(name)
        properties[name] = prop
    out: dict[str, Any] = {"type": "object", "properties": properties,
                           "additionalProperties": False}
    if required:
        out["required"] = required
    return out


def describe() -> list[dict[str, Any]]:
    return [
        {"name": t.name, "description": t.description, "args_schema": json_schema(t.args)}
        for t in sorted(REGISTRY.values(), key=lambda t: t.name)
    ]
