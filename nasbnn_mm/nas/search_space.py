"""The NAS-BNN search space as data.

Paper: NAS-BNN: Neural Architecture Search for Binary Neural Networks,
https://arxiv.org/abs/2408.15484 (Table 1, section 3.2).

A space is a stem and a list of stages of separable layers. Each field holds
the choices of Table 1. The numbers of the paper's space live in one file,
``nasbnn_mm/nas/spaces/nasbnn_in1k.py``, loaded by name with
``SearchSpace.from_config(DEFAULT_SPACE)``; ``configs/_base_/search_spaces/``
inherits that file.
"""
import os.path as osp
from collections import Counter
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Sequence, Tuple, Union

from mmengine.config import Config

from nasbnn_mm.utils.errors import UserError

__all__ = [
    'DEFAULT_SPACE', 'BUILTIN_SPACES', 'LayerSpace', 'StageSpace',
    'SearchSpace', 'format_choices'
]

DEFAULT_SPACE = 'nasbnn_in1k'
BUILTIN_SPACES = ('nasbnn_in1k', 'nasbnn_digits')
_SPACES_DIR = osp.join(osp.dirname(osp.abspath(__file__)), 'spaces')

_SPACE_KEYS = ('input_size', 'in_channels', 'num_classes', 'stem', 'stages')
_STEM_KEYS = ('channels', 'kernel_size', 'groups', 'stride')
_STAGE_KEYS = ('depth', ) + _STEM_KEYS


def format_choices(values: Sequence[int]) -> str:
    """Format choices as a set literal, e.g. ``{384, 512, 768}``."""
    return '{' + ', '.join(str(v) for v in values) + '}'


def _check_keys(data: Any, where: str, keys: Sequence[str]) -> None:
    if not isinstance(data, Mapping):
        raise UserError(f'{where}: expected a dict, got {type(data).__name__}')
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise UserError(f'{where}: unknown key {unknown[0]!r}; allowed: '
                        f'{", ".join(keys)}')
    missing = [k for k in keys if k not in data]
    if missing:
        raise UserError(f'{where}: missing key {missing[0]!r}')


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f'{where}: expected a positive int, got {value!r}')
    return value


def _choices(values: Any, where: str) -> Tuple[int, ...]:
    if isinstance(values, int):
        values = [values]
    if not isinstance(values, Sequence) or isinstance(values, str) \
            or not values:
        raise UserError(
            f'{where}: expected a non-empty list of ints, got {values!r}')
    ints = [_positive_int(v, where) for v in values]
    if len(set(ints)) != len(ints):
        raise UserError(f'{where}: duplicate choices in {values!r}')
    return tuple(sorted(ints))


@dataclass(frozen=True)
class LayerSpace:
    """Choices of one searchable layer (the stem).

    Args:
        channels (tuple[int]): Output widths, sorted.
        kernel_size (tuple[int]): Kernel sizes, odd, sorted.
        groups (tuple[int]): Numbers of groups of the k×k conv, sorted.
        stride (int): Stride of the k×k conv.
    """
    channels: Tuple[int, ...]
    kernel_size: Tuple[int, ...]
    groups: Tuple[int, ...]
    stride: int

    def valid_groups(self, in_channels: int) -> Tuple[int, ...]:
        """Return the group choices that divide ``in_channels``."""
        return tuple(g for g in self.groups if in_channels % g == 0)

    def next_channels(self, prev: int,
                      non_decreasing: bool) -> Tuple[int, ...]:
        """Return the width choices that may follow width ``prev``.

        Args:
            prev (int): Width of the previous layer.
            non_decreasing (bool): Apply the Non-Decreasing constraint (eq. 3
                of the paper): keep only widths ``>= prev``.
        """
        if not non_decreasing:
            return self.channels
        return tuple(c for c in self.channels if c >= prev)


@dataclass(frozen=True)
class StageSpace(LayerSpace):
    """Choices of one stage: a stack of ``depth`` separable layers.

    Each layer is a binary k×k conv with ``groups`` keeping its input width,
    then a binary 1×1 conv (groups 1) giving the width ``channels``. Only the
    first layer has ``stride``; all layers share the stage's choices.

    Args:
        channels (tuple[int]): Output widths, sorted.
        kernel_size (tuple[int]): Kernel sizes of the k×k conv, odd, sorted.
        groups (tuple[int]): Numbers of groups of the k×k conv, sorted.
        stride (int): Stride of the first layer.
        depth (tuple[int]): Numbers of layers, sorted.
    """
    depth: Tuple[int, ...]


def _layer_space(data: Any, where: str, with_depth: bool) -> LayerSpace:
    _check_keys(data, where, _STAGE_KEYS if with_depth else _STEM_KEYS)
    kernels = _choices(data['kernel_size'], f'{where}.kernel_size')
    even = [k for k in kernels if k % 2 == 0]
    if even:
        # NOTE: convs use padding k // 2, which keeps H/stride (rounded up)
        # only for odd k; see ``conv_output_size`` in ops_counter.py.
        raise UserError(f'{where}.kernel_size: {even[0]} is even; allowed: '
                        'odd kernel sizes')
    kwargs = dict(
        channels=_choices(data['channels'], f'{where}.channels'),
        kernel_size=kernels,
        groups=_choices(data['groups'], f'{where}.groups'),
        stride=_positive_int(data['stride'], f'{where}.stride'))
    if with_depth:
        return StageSpace(
            depth=_choices(data['depth'], f'{where}.depth'), **kwargs)
    return LayerSpace(**kwargs)


def _check_groups_fit(space: 'SearchSpace') -> None:
    """Refuse a space in which some stage admits no layer at all.

    A layer's groups must divide its input width. Widths are followed from
    the input through the stem and every stage (any depth choice): the
    first place where no group divides any width that can reach it has no
    architecture, and neither has the space.

    Raises:
        UserError: Naming the stem or stage, its groups and the widths.
    """
    widths = [c for c in space.stem.channels if space.stem_groups(c)]
    if not widths:
        raise UserError(
            f'search_space.stem.groups: none of '
            f'{format_choices(space.stem.groups)} divides both '
            f'in_channels {space.in_channels} and a width in '
            f'{format_choices(space.stem.channels)}; the space has no '
            'architecture')
    for i, stage in enumerate(space.stages):
        where = f'search_space.stages[{i}].groups'
        if not any(stage.valid_groups(w) for w in widths):
            raise UserError(
                f'{where}: none of {format_choices(stage.groups)} divides '
                f'an input width of the stage {format_choices(widths)}; '
                'the space has no architecture')
        # layers after the first take one of the stage's own widths
        if min(stage.depth) > 1 and not any(
                stage.valid_groups(c) for c in stage.channels):
            raise UserError(
                f'{where}: none of {format_choices(stage.groups)} divides '
                f'a width of the stage {format_choices(stage.channels)} '
                f'(inputs of its layers after the first, depth '
                f'{format_choices(stage.depth)}); the space has no '
                'architecture')
        widths = list(stage.channels)


@dataclass(frozen=True)
class SearchSpace:
    """A NAS-BNN search space: an 8-bit stem, binary stages, a FP classifier.

    Build it from a config with :meth:`from_config`. The instance is frozen
    and hashable, so tables derived from it can be cached.

    Args:
        stem (LayerSpace): Choices of the 8-bit stem conv.
        stages (tuple[StageSpace]): Choices of each stage, in order.
        input_size (tuple[int, int]): Input ``(H, W)``.
        in_channels (int): Input channels.
        num_classes (int): Outputs of the full-precision classifier.

    Example:
        >>> from nasbnn_mm.nas import DEFAULT_SPACE, SearchSpace
        >>> space = SearchSpace.from_config(DEFAULT_SPACE)
        >>> [s.depth for s in space.stages]
        [(2, 3), (2, 3), (2, 3), (8, 9), (2, 3)]
        >>> f'{space.size(non_decreasing=False):.1e}'
        '4.0e+21'
        >>> f'{space.size(non_decreasing=True):.1e}'
        '3.3e+17'
    """
    stem: LayerSpace
    stages: Tuple[StageSpace, ...]
    input_size: Tuple[int, int]
    in_channels: int
    num_classes: int

    @classmethod
    def from_dict(cls, data: Mapping) -> 'SearchSpace':
        """Build a space from a ``search_space`` dict, checking every field.

        Args:
            data (dict): Keys ``input_size`` (int or ``[H, W]``),
                ``in_channels``, ``num_classes``, ``stem`` (``channels``,
                ``kernel_size``, ``groups``, ``stride``) and ``stages`` (a
                list of dicts with the stem's keys plus ``depth``). Choices
                are lists of ints (a single int is one choice).

        Raises:
            UserError: Naming the field, the value and what is allowed.
        """
        _check_keys(data, 'search_space', _SPACE_KEYS)
        size = data['input_size']
        if isinstance(size, int):
            size = (size, size)
        if not isinstance(size, Sequence) or len(size) != 2:
            raise UserError('search_space.input_size: expected an int or '
                            f'[H, W], got {size!r}')
        size = tuple(_positive_int(s, 'search_space.input_size') for s in size)
        stages = data['stages']
        if not isinstance(stages, Sequence) or isinstance(stages, str) \
                or not stages:
            raise UserError('search_space.stages: expected a non-empty '
                            f'list of dicts, got {stages!r}')
        space = cls(
            stem=_layer_space(data['stem'], 'search_space.stem', False),
            stages=tuple(
                _layer_space(s, f'search_space.stages[{i}]', True)
                for i, s in enumerate(stages)),
            input_size=size,
            in_channels=_positive_int(data['in_channels'],
                                      'search_space.in_channels'),
            num_classes=_positive_int(data['num_classes'],
                                      'search_space.num_classes'))
        _check_groups_fit(space)
        return space

    @classmethod
    def from_config(cls, cfg: Union[str, Mapping, Config]) -> 'SearchSpace':
        """Build a space from a built-in name, a config file or a dict.

        Args:
            cfg (str | dict | Config): One of :data:`BUILTIN_SPACES`; a
                path to an mmengine config (``.py``, ``.json``, ``.yaml``)
                defining ``search_space``; a whole config holding a
                ``search_space`` key; or the ``search_space`` dict itself.

        Raises:
            UserError: If the name or file is unknown, or a field is wrong.
        """
        if isinstance(cfg, str):
            path = cfg
            if cfg in BUILTIN_SPACES:
                path = osp.join(_SPACES_DIR, f'{cfg}.py')
            elif not osp.isfile(cfg):
                raise UserError(
                    f'search space {cfg!r}: neither a built-in space '
                    f'({", ".join(BUILTIN_SPACES)}) nor an existing file')
            try:
                cfg = Config.fromfile(path)
            except Exception as e:  # noqa: B902 (whatever the file raises)
                raise UserError(
                    f'search space {path}: {" ".join(str(e).split())}') from e
            if 'search_space' not in cfg:
                raise UserError(
                    f'{path}: no `search_space` defined in the config')
        if isinstance(cfg, Config):
            cfg = cfg.to_dict()
        if isinstance(cfg, Mapping) and 'search_space' in cfg:
            cfg = cfg['search_space']
        return cls.from_dict(cfg)

    def to_dict(self) -> Dict[str, Any]:
        """Return the space as a plain ``search_space`` dict (lists)."""

        def layer(space: LayerSpace) -> Dict[str, Any]:
            out = dict(
                channels=list(space.channels),
                kernel_size=list(space.kernel_size),
                groups=list(space.groups),
                stride=space.stride)
            if isinstance(space, StageSpace):
                out = dict(depth=list(space.depth), **out)
            return out

        return dict(
            input_size=list(self.input_size),
            in_channels=self.in_channels,
            num_classes=self.num_classes,
            stem=layer(self.stem),
            stages=[layer(s) for s in self.stages])

    def stem_groups(self, channels: int) -> Tuple[int, ...]:
        """Return the stem's group choices valid for ``channels`` outputs."""
        return tuple(
            g for g in self.stem.valid_groups(self.in_channels)
            if channels % g == 0)

    def size(self, non_decreasing: bool = True) -> int:
        """Count the architectures of the space exactly.

        Dynamic programming over the width of the last layer: the number of
        ways to reach each width is pushed through the layers, summed over
        the depth choices of every stage; choices whose groups do not divide
        the input width are not architectures and are not counted.

        Args:
            non_decreasing (bool): Count only architectures meeting the
                Non-Decreasing constraint. Defaults to True.

        Returns:
            int: The exact number of architectures.
        """
        ways = Counter({
            c: len(self.stem.kernel_size) * len(self.stem_groups(c))
            for c in self.stem.channels
        })
        for stage in self.stages:
            stage_ways: Counter = Counter()
            for depth in stage.depth:
                layer_ways = ways
                for _ in range(depth):
                    nxt: Counter = Counter()
                    for prev, n in layer_ways.items():
                        per_width = n * len(stage.kernel_size) * len(
                            stage.valid_groups(prev))
                        for c in stage.next_channels(prev, non_decreasing):
                            nxt[c] += per_width
                    layer_ways = nxt
                stage_ways.update(layer_ways)
            ways = stage_ways
        return sum(ways.values())
