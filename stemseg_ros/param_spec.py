"""What one node parameter is (:class:`Spec`: default, type, range, description, when a change
takes effect) and how its ROS descriptor looks; the parameters themselves are in params.py."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.parameter import Parameter

from stemseg_core.config import ThresholdSpec

#: Marks a numeric threshold parameter as "take the value from the checkpoint's config".
FROM_CHECKPOINT = -1
_NO_UPPER = 100_000_000  # integer ranges need an upper bound


class ParamError(ValueError):
    """A parameter value is not allowed; the message names the parameter, value and the fix."""


@dataclass(frozen=True)
class Spec:
    """One parameter. kind: bool, int, float, str or list (of str / int).

    live: True when the running node applies a change at once (thresholds, output switches);
    False when it needs a reload (deactivate, set, activate): refused while active.
    read_only: set at start only (launch or params file); every later set is refused (trust
    switches and limits, which any process on the DDS domain could otherwise change).
    loads: the value decides how the model is loaded (a change reloads it).
    core: the core config key ("section.key") the value is passed to, as is, whenever it differs
    from the default (the default means "the checkpoint's value"); implies loads.
    """

    name: str
    default: Any
    description: str
    live: bool = False
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    item: type | None = None  # element type of a list parameter
    read_only: bool = False
    loads: bool = False
    core: str = ""

    @property
    def kind(self) -> type:
        return list if self.item is not None else type(self.default)

    @property
    def type(self) -> Any:
        """The Python type of the value the node keeps (PerceptionParams' field type): bool,
        int, float, str, or tuple[item, ...] for a list parameter."""
        return tuple[self.item, ...] if self.item is not None else type(self.default)

    def ros_type(self) -> Parameter.Type:
        if self.item is not None:
            return {str: Parameter.Type.STRING_ARRAY, float: Parameter.Type.DOUBLE_ARRAY}.get(
                self.item, Parameter.Type.INTEGER_ARRAY)
        return Parameter.Type.from_parameter_value(self.default)

    def allowed(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.range:
            return f"{self.kind.__name__} in [{self.range[0]}, {self.range[1]}]"
        if self.item is not None:
            return f"list of {self.item.__name__}"
        return self.kind.__name__

    def changes(self) -> str:
        """When a new value takes effect, in words."""
        if self.read_only:
            return "set at start only (launch or params file)"
        return "changes at once" if self.live else "needs a reload: refused while active"

    def descriptor(self) -> ParameterDescriptor:
        d = ParameterDescriptor(name=self.name, description=self.description,
                                read_only=self.read_only)
        extra = []
        if self.choices:
            extra.append("one of: " + ", ".join(self.choices))
        extra.append(self.changes())
        d.additional_constraints = "; ".join(extra)
        if self.kind is float:
            d.dynamic_typing = True  # integers accepted, converted (see coerce)
            if self.range is not None:
                d.floating_point_range = [FloatingPointRange(
                    from_value=float(self.range[0]), to_value=float(self.range[1]), step=0.0)]
        elif self.kind is int and self.range is not None:
            d.integer_range = [IntegerRange(from_value=int(self.range[0]),
                                            to_value=int(self.range[1]), step=1)]
        return d


def threshold_spec(t: ThresholdSpec) -> Spec:
    """A node parameter for one of the core's live thresholds."""
    if t.kind is list:
        return Spec(t.name, [], t.description + " [] = the checkpoint's inference.classes "
                    "(usually all).", live=True, item=str)
    if t.per_class:
        return Spec(t.name, "", t.description + ' As a map, e.g. "{car: 0.8, pedestrian: 0.85}";'
                    ' "" = the checkpoint\'s; "{}" = none.', live=True)
    lo = FROM_CHECKPOINT if t.low is None or t.low >= FROM_CHECKPOINT else t.low
    hi = t.high if t.high is not None else _NO_UPPER
    return Spec(t.name, t.kind(FROM_CHECKPOINT), t.description + " -1 = the checkpoint's value.",
                live=True, range=(t.kind(lo), t.kind(hi)))


__all__ = ["FROM_CHECKPOINT", "ParamError", "Spec", "threshold_spec"]
