"""How each field of the model is read: declared once, in the field's metadata.

A model field says its default (``attrs.field(default=...)``) and, in its
metadata, how its YAML key is read::

    timeout: float = attrs.field(default=30.0, metadata=read_as(cp.duration()))

``read_fields`` then reads a whole section into the class: each key through its
converter, the field's own default when the key is absent or its value wrong.
The default is written nowhere else, so what the reader falls back to and what
the class holds can never differ.  A field given either inline or in a file
(``secret`` / ``secret_file``) is ``read_either``.  Fields that need another
field's value are ``own_reader()`` fields: the caller (``read.py``) reads them
and hands them in, still in field order, so problems on one line keep their
reading order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs

from aigw.config import nodes as cp

T = TypeVar("T", bound=attrs.AttrsInstance)

_METADATA_KEY = "aigw.config"


@attrs.frozen
class Reading:
    """How one field is read: its converter (None: by its own reader), whether the
    key is required (then ``placeholder`` stands in while problems are collected),
    and the ``*_file`` key that may give it instead (then ``convert`` is a
    ``nodes.TwinConverter``, told which of the two was given)."""

    convert: Callable[..., Any] | None
    required: bool = False
    placeholder: object = None
    twin: str | None = None
    #: False: the field is no key of the file (the loader sets it: ``Config.warnings``).
    key: bool = True


def read_as(convert: cp.Converter[Any]) -> Mapping[str, Reading]:
    """Metadata: the key is optional; ``convert`` reads it, the field's default stands in."""
    return {_METADATA_KEY: Reading(convert)}


def required(convert: cp.Converter[Any], placeholder: object) -> Mapping[str, Reading]:
    """Metadata: the key must be given; a missing key is reported on its mapping's line."""
    return {_METADATA_KEY: Reading(convert, required=True, placeholder=placeholder)}


def read_either(
    twin: str, convert: cp.TwinConverter[Any], *, required: bool = False, placeholder: object = None
) -> Mapping[str, Reading]:
    """Metadata: the value is inline at the key or in the file named at ``twin``, not both."""
    return {_METADATA_KEY: Reading(convert, required, placeholder, twin)}


def own_reader() -> Mapping[str, Reading]:
    """Metadata: read by the section's reader in read.py, which hands the value in."""
    return {_METADATA_KEY: Reading(None)}


def derived() -> Mapping[str, Reading]:
    """Metadata: not read from the file at all; the loader hands the value in."""
    return {_METADATA_KEY: Reading(None, key=False)}


def reading(field: attrs.Attribute[Any]) -> Reading:
    """The field's Reading; every field of the model has one."""
    found = field.metadata.get(_METADATA_KEY)
    if not isinstance(found, Reading):
        raise TypeError(f"{field.name} says nothing of how it is read (see aigw.config.fields)")
    return found


def keys(cls: type) -> tuple[str, ...]:
    """The YAML keys of a section: its class's field names and their ``*_file`` twins."""
    names: list[str] = []
    for field in attrs.fields(cls):
        if not reading(field).key:
            continue
        names.append(field.name)
        twin = reading(field).twin
        if twin is not None:
            names.append(twin)
    return tuple(names)


def default(field: attrs.Attribute[Any]) -> Any:
    """The field's default value (a factory is called)."""
    value: Any = field.default
    if isinstance(value, attrs.Factory):  # type: ignore[arg-type]
        return value.factory()
    if value is attrs.NOTHING:
        raise TypeError(f"{field.name} has no default")
    return value


def read_field(
    section: cp.Section, cls: type, name: str, convert: cp.Converter[Any] | None = None
) -> Any:
    """Field ``name`` of ``cls`` read from its key in ``section``, as its metadata says
    (``convert`` stands in for an ``own_reader`` field's converter)."""
    field = attrs.fields_dict(cls)[name]
    how = reading(field)
    convert = convert or how.convert
    if convert is None:
        raise TypeError(f"{cls.__name__}.{name} is read by its own reader: give its converter")
    if how.twin is not None:
        return _read_either(section, field, how.twin, convert)
    if how.required:
        return section.need(name, convert, how.placeholder)
    return section.read(name, convert, default(field))


def _read_either(
    section: cp.Section, field: attrs.Attribute[Any], twin: str, convert: Callable[..., Any]
) -> Any:
    """A field given at its key or in the file named at ``twin`` (``read_either``)."""
    how = reading(field)
    fallback = how.placeholder if how.required else default(field)
    given = section.twin(field.name, twin)
    if given is None:
        if how.required and not (section.has(field.name) or section.has(twin)):
            section.missing(field.name)
        return fallback
    value = convert(section.ctx, *given)
    return fallback if value is None else value


def read_fields(section: cp.Section, cls: type[T], **given: Callable[[], object]) -> T:
    """An instance of ``cls`` read from ``section``, field by field in declaration order;
    ``given`` reads the ``own_reader`` fields (called in that same order)."""
    unknown = given.keys() - attrs.fields_dict(cls).keys()
    if unknown:
        raise TypeError(f"{cls.__name__} has no field {sorted(unknown)}")
    values: dict[str, object] = {}
    for field in attrs.fields(cls):
        if field.name in given:
            values[field.name] = given[field.name]()
        elif not reading(field).key:
            values[field.name] = default(field)
        else:
            values[field.name] = read_field(section, cls, field.name)
    return cls(**values)


def section_of(cls: type[T], first: str | None = None) -> cp.Converter[T]:
    """A converter for a mapping read into ``cls`` by its fields alone; ``first``, a field
    read before the others (where it always was: problems on one line are reported in
    reading order)."""

    def convert(ctx: cp.Context, path: str, node: cp.Node) -> T | None:
        section = cp.open_section(ctx, node, path, keys(cls))
        if section is None or first is None:
            return None if section is None else read_fields(section, cls)
        value = read_field(section, cls, first)
        return read_fields(section, cls, **{first: lambda: value})

    return convert


def section_or_switch(cls: type[T], switched: Callable[[bool], T]) -> cp.Converter[T]:
    """A converter for a mapping read into ``cls``, or a boolean that says
    ``switched(value)`` instead: ``metrics: off``."""
    read_section = section_of(cls)

    def convert(ctx: cp.Context, path: str, node: cp.Node) -> T | None:
        if isinstance(node, cp.MappingNode):
            return read_section(ctx, path, node)
        value = cp.scalar_value(ctx, path, node) if isinstance(node, cp.ScalarNode) else None
        if isinstance(value, bool):
            return switched(value)
        cp.expected(ctx, path, node, "a mapping, or off")
        return None

    return convert
