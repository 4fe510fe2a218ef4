"""Declare a node's parameters from one table: type, default, description, range, choices."""

from dataclasses import dataclass, field
import textwrap
from types import SimpleNamespace
from typing import Iterable, Sequence, Union

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node

Value = Union[bool, int, float, str, Sequence[float], Sequence[str]]


class ParameterError(ValueError):
    """A parameter value a node cannot work with; the message names the parameter and why."""


@dataclass(frozen=True)
class Param:
    """One ROS parameter: the default fixes its type; range and choices are enforced on declare."""

    name: str
    default: Value
    description: str
    range: tuple = ()
    choices: Sequence[str] = field(default_factory=tuple)
    read_only: bool = True

    def descriptor(self) -> ParameterDescriptor:
        """Build the descriptor rqt and `ros2 param describe` show."""
        text = self.description
        if self.choices:
            text += ' One of: ' + ', '.join(self.choices) + '.'
        desc = ParameterDescriptor(description=text, read_only=self.read_only)
        if self.range:
            low, high = self.range
            numeric = isinstance(self.default, (int, float))
            if isinstance(self.default, bool) or not numeric:
                raise TypeError(f'{self.name}: a range needs a numeric default')
            if isinstance(self.default, int):
                desc.integer_range = [
                    IntegerRange(from_value=int(low), to_value=int(high), step=0)]
            else:
                desc.floating_point_range = [
                    FloatingPointRange(from_value=float(low), to_value=float(high), step=0.0)]
        return desc


def declare(node: Node, params: Iterable[Param]) -> SimpleNamespace:
    """Declare every parameter and return their values; raise ParameterError for a bad value."""
    values = {}
    for p in params:
        default = list(p.default) if isinstance(p.default, (list, tuple)) else p.default
        try:
            value = node.declare_parameter(p.name, default, p.descriptor()).value
        except Exception as exc:  # rclpy raises several types for out-of-range or mistyped values
            raise ParameterError(f'parameter {p.name!r}: {exc}') from exc
        if p.choices and value not in p.choices:
            raise ParameterError(
                f'parameter {p.name!r} is {value!r}; expected one of {", ".join(p.choices)}')
        values[p.name] = value
    return SimpleNamespace(**values)


def usage(prog: str, summary: str, params: Sequence[Param]) -> str:
    """Return a node's --help text: how to set parameters, then each with default and range."""
    lines = [f'usage: {prog} [--ros-args -p NAME:=VALUE ... | --params-file FILE]', '',
             summary.strip(), '', 'parameters (default; range or choices):']
    for p in params:
        extra = f', {p.range[0]} .. {p.range[1]}' if p.range else \
            (', one of ' + ' | '.join(p.choices) if p.choices else '')
        lines.append(f'  {p.name} ({p.default!r}{extra})')
        lines.append(textwrap.fill(p.description, 96, initial_indent=' ' * 6,
                                   subsequent_indent=' ' * 6))
    return '\n'.join(lines) + '\n'
