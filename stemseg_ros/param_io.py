"""Declaring every parameter of params.SPECS on the node and reading them back, validated."""
from __future__ import annotations

from typing import Any

from rclpy.exceptions import (
    InvalidParameterTypeException,
    InvalidParameterValueException,
    ParameterUninitializedException,
)
from rclpy.parameter import Parameter

from stemseg_ros.param_checks import normalise, validate
from stemseg_ros.params import SPEC_BY_NAME, SPECS, PerceptionParams


def declare(node: Any) -> dict[str, str]:
    """Declare every parameter of SPECS on `node`; call before adding other parameter callbacks.

    Returns {name: message} for overrides that did not fit; those get their default value, and
    `on_configure` reports the messages. Also installs :func:`coerce` as a pre-set callback.
    """
    errors: dict[str, str] = {}
    for spec in SPECS:
        default = spec.ros_type() if spec.item is not None else spec.default
        try:
            node.declare_parameter(spec.name, default, spec.descriptor())
        except (InvalidParameterValueException, InvalidParameterTypeException) as e:
            errors[spec.name] = (f"parameter '{spec.name}': the value given was refused ({e}); "
                                 f"expected {spec.allowed()}")
            node.declare_parameter(spec.name, default, spec.descriptor(), ignore_override=True)
        if spec.item is not None and not _is_set(node, spec.name):
            # an array declared by type has no value until set: give it its (empty) default
            node.set_parameters([Parameter(spec.name, spec.ros_type(), list(spec.default))])
    node.add_pre_set_parameters_callback(coerce)
    ints = [Parameter(s.name, Parameter.Type.DOUBLE, float(node.get_parameter(s.name).value))
            for s in SPECS if s.kind is float
            and type(node.get_parameter(s.name).value) is int]
    if ints:
        node.set_parameters(ints)
    return errors


def _is_set(node: Any, name: str) -> bool:
    try:
        node.get_parameter(name).value  # noqa: B018 - raises when uninitialised
        return True
    except ParameterUninitializedException:
        return False


def coerce(parameters: list[Parameter]) -> list[Parameter]:
    """Pre-set callback: integers given for float parameters become floats."""
    out = []
    for p in parameters:
        spec = SPEC_BY_NAME.get(p.name)
        if spec is not None and spec.kind is float and type(p.value) is int:
            p = Parameter(p.name, Parameter.Type.DOUBLE, float(p.value))
        out.append(p)
    return out


def read(node: Any) -> PerceptionParams:
    """Read all parameters from `node` and validate them (raises ParamError)."""
    values = {}
    for spec in SPECS:
        try:
            v = node.get_parameter(spec.name).value
        except ParameterUninitializedException:
            v = []
        values[spec.name] = normalise(spec.name, v)
    p = PerceptionParams(**values)
    validate(p)
    return p


__all__ = ["coerce", "declare", "read"]
