"""Architecture specs: one subnet of a search space, readable by people.

Paper: NAS-BNN: Neural Architecture Search for Binary Neural Networks,
https://arxiv.org/abs/2408.15484 (notation of Table 6).

A spec names every layer with a token ``c<channels>_k<kernel>_g<groups>``;
the length of a stage's list is its depth::

    {"stem": "c24_k3_g1",
     "stages": [["c48_k3_g1", "c48_k3_g1"], ["c96_k3_g2", "c96_k3_g2"], ...]}

``c`` is the layer's output width (its 1×1 conv), ``k`` and ``g`` the kernel
size and groups of its k×k conv, which keeps the input width. Specs are
stored as JSON or YAML. The searched models A..F of Table 6 ship as presets
(``nasbnn_mm/nas/presets/nasbnn_<x>.json``).

NOTE: in the extracted Table 6 the columns of NAS-BNN-D (124M OPs) and
NAS-BNN-E (160M OPs) are identical, layer for layer. Both presets keep the
table as given, so ``E`` counts 124M OPs here, not the 160M in its header.
"""
import json
import os.path as osp
import re
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Tuple, Union

import yaml

from nasbnn_mm.utils.errors import UserError
from .search_space import LayerSpace, SearchSpace, format_choices

__all__ = [
    'PRESETS', 'LayerSpec', 'ArchSpec', 'parse_arch', 'format_arch',
    'load_arch', 'dump_arch', 'validate_arch', 'ArchType'
]

PRESETS = ('A', 'B', 'C', 'D', 'E', 'F')
_PRESETS_DIR = osp.join(osp.dirname(osp.abspath(__file__)), 'presets')
_TOKEN = re.compile(r'c([1-9]\d*)_k([1-9]\d*)_g([1-9]\d*)')
_ARCH_KEYS = ('stem', 'stages')


@dataclass(frozen=True)
class LayerSpec:
    """One chosen layer: output width, kernel size and groups.

    Args:
        channels (int): Output width.
        kernel_size (int): Kernel size of the k×k conv.
        groups (int): Groups of the k×k conv.
    """
    channels: int
    kernel_size: int
    groups: int

    @classmethod
    def parse(cls, token: Any, where: str) -> 'LayerSpec':
        """Parse a token such as ``'c768_k3_g4'``.

        Args:
            token (str): The token.
            where (str): Place of the token in the spec, for errors.

        Raises:
            UserError: If the token is not ``c<int>_k<int>_g<int>``.
        """
        match = _TOKEN.fullmatch(token) if isinstance(token, str) else None
        if match is None:
            raise UserError(
                f'{where}: cannot parse {token!r}; expected a token '
                "'c<channels>_k<kernel>_g<groups>', e.g. 'c768_k3_g4'")
        return cls(*(int(v) for v in match.groups()))

    def __str__(self) -> str:
        return f'c{self.channels}_k{self.kernel_size}_g{self.groups}'


@dataclass(frozen=True)
class ArchSpec:
    """A subnet: the stem layer and the layers of every stage.

    Frozen and hashable, so it can key a dict of evaluated candidates.

    Args:
        stem (LayerSpec): The stem layer.
        stages (tuple[tuple[LayerSpec]]): The layers of each stage.

    Example:
        >>> from nasbnn_mm.nas import load_arch
        >>> arch = load_arch('A')
        >>> str(arch.stem), arch.depths
        ('c24_k3_g1', (2, 2, 2, 8, 2))
        >>> arch.to_dict()['stages'][0]
        ['c48_k3_g1', 'c48_k3_g1']
    """
    stem: LayerSpec
    stages: Tuple[Tuple[LayerSpec, ...], ...]

    @property
    def depths(self) -> Tuple[int, ...]:
        """tuple[int]: Number of layers of each stage."""
        return tuple(len(stage) for stage in self.stages)

    @classmethod
    def from_dict(cls, data: Any) -> 'ArchSpec':
        """Build a spec from ``{'stem': token, 'stages': [[token, ...]]}``.

        Raises:
            UserError: Naming the key or layer that is malformed.
        """
        if not isinstance(data, Mapping):
            raise UserError('arch spec: expected a dict with keys stem, '
                            f'stages; got {type(data).__name__}')
        unknown = sorted(set(data) - set(_ARCH_KEYS))
        if unknown:
            raise UserError(f'arch spec: unknown key {unknown[0]!r}; '
                            f'allowed: {", ".join(_ARCH_KEYS)}')
        for key in _ARCH_KEYS:
            if key not in data:
                raise UserError(f'arch spec: missing key {key!r}')
        stages = data['stages']
        if not isinstance(stages, (list, tuple)):
            raise UserError('stages: expected a list of stages, got '
                            f'{type(stages).__name__}')
        parsed = []
        for i, stage in enumerate(stages):
            if not isinstance(stage, (list, tuple)) or not stage:
                raise UserError(f'stages[{i}]: expected a non-empty list of '
                                f'layer tokens, got {stage!r}')
            parsed.append(
                tuple(
                    LayerSpec.parse(token, f'stages[{i}][{j}]')
                    for j, token in enumerate(stage)))
        return cls(LayerSpec.parse(data['stem'], 'stem'), tuple(parsed))

    def to_dict(self) -> Dict[str, Any]:
        """Return ``{'stem': token, 'stages': [[token, ...], ...]}``."""
        return dict(
            stem=str(self.stem),
            stages=[[str(layer) for layer in stage] for stage in self.stages])


# Anything that names a subnet: a preset letter, 'smallest'/'largest' where a
# space is known, a spec file path, a dict or an ArchSpec.
ArchType = Union[str, dict, ArchSpec]


def parse_arch(data: Union[ArchSpec, Mapping, str]) -> ArchSpec:
    """Parse a spec given as an :class:`ArchSpec`, a dict or JSON text.

    Raises:
        UserError: One line naming the malformed part.
    """
    if isinstance(data, ArchSpec):
        return data
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as e:
            raise UserError(f'arch spec: invalid JSON at line {e.lineno}, '
                            f'column {e.colno}: {e.msg}') from None
    return ArchSpec.from_dict(data)


def format_arch(arch: ArchSpec) -> str:
    """Format a spec as JSON text, one stage per line."""
    stages = ',\n'.join(f'    {json.dumps(s)}'
                        for s in arch.to_dict()['stages'])
    return (f'{{\n  "stem": "{arch.stem}",\n  "stages": [\n{stages}\n  ]\n'
            '}\n')


def _file_format(path: str) -> str:
    ext = osp.splitext(path)[1].lower()
    if ext == '.json':
        return 'json'
    if ext in ('.yaml', '.yml'):
        return 'yaml'
    raise UserError(f'{path}: unknown spec format {ext!r}; allowed: .json, '
                    '.yaml, .yml')


def load_arch(name_or_path: Union[str, Mapping, ArchSpec]) -> ArchSpec:
    """Load a preset of Table 6 (``'A'``..``'F'``) or a JSON/YAML spec file.

    Args:
        name_or_path (str | dict | ArchSpec): A preset name (``'B'``,
            ``'nasbnn-b'`` or ``'nasbnn_b'``, any case) or a path to a
            ``.json``/``.yaml`` spec. A dict or an :class:`ArchSpec` goes to
            :func:`parse_arch`, so that a config's ``arch`` may be any of
            these.

    Raises:
        UserError: One line (starting with the file name for a file) if the
            name is unknown or the spec is malformed.
    """
    if not isinstance(name_or_path, str):
        return parse_arch(name_or_path)
    key = re.sub(r'^NASBNN[-_]', '', name_or_path.upper())
    if key in PRESETS:
        path = osp.join(_PRESETS_DIR, f'nasbnn_{key.lower()}.json')
    elif osp.isfile(name_or_path):
        path = name_or_path
    else:
        raise UserError(
            f'arch {name_or_path!r}: neither a preset ({", ".join(PRESETS)}) '
            'nor an existing file')
    fmt = _file_format(path)
    with open(path, encoding='utf-8') as f:
        text = f.read()
    try:
        if fmt == 'json':
            return parse_arch(text)
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, 'problem_mark', None)
            at = f' at line {mark.line + 1}' if mark is not None else ''
            raise UserError(f'arch spec: invalid YAML{at}: '
                            f'{getattr(e, "problem", e)}') from None
        return parse_arch(data)
    except ValueError as e:
        raise UserError(f'{path}: {e}') from None


def dump_arch(arch: ArchSpec, path: str) -> None:
    """Write a spec to a ``.json`` or ``.yaml`` file (format from the name).
    """
    fmt = _file_format(path)
    with open(path, 'w', encoding='utf-8') as f:
        if fmt == 'json':
            f.write(format_arch(arch))
        else:
            yaml.safe_dump(
                arch.to_dict(), f, default_flow_style=None, sort_keys=False)


def validate_arch(arch: ArchSpec,
                  space: SearchSpace,
                  non_decreasing: bool = True) -> None:
    """Check that ``arch`` is a subnet of ``space``.

    Args:
        arch (ArchSpec): The spec.
        space (SearchSpace): The space.
        non_decreasing (bool): Also require the Non-Decreasing constraint
            (eq. 3): no layer narrower than the one before it, from the stem
            on. Defaults to True.

    Raises:
        UserError: One line naming the layer, the value and the allowed
            values, e.g. ``stages[3][1]: channels 640 not in
            {384, 512, 768}``.
    """
    if len(arch.stages) != len(space.stages):
        raise UserError(f'stages: {len(arch.stages)} stages given, the '
                        f'space has {len(space.stages)}')
    for i, (stage, choices) in enumerate(zip(arch.stages, space.stages)):
        if len(stage) not in choices.depth:
            raise UserError(f'stages[{i}]: depth {len(stage)} not in '
                            f'{format_choices(choices.depth)}')
    _check_choices('stem', arch.stem, space.stem)
    stem_groups = space.stem_groups(arch.stem.channels)
    if arch.stem.groups not in stem_groups:
        raise UserError(
            f'stem: groups {arch.stem.groups} does not divide both the input '
            f'channels {space.in_channels} and the width '
            f'{arch.stem.channels}; allowed: {format_choices(stem_groups)}')
    prev_place, prev = 'stem', arch.stem.channels
    for i, (stage, choices) in enumerate(zip(arch.stages, space.stages)):
        for j, layer in enumerate(stage):
            place = f'stages[{i}][{j}]'
            _check_choices(place, layer, choices)
            if prev % layer.groups:
                raise UserError(
                    f'{place}: groups {layer.groups} does not divide the '
                    f'input width {prev}; allowed: '
                    f'{format_choices(choices.valid_groups(prev))}')
            if non_decreasing and layer.channels < prev:
                raise UserError(
                    f'{place}: channels {layer.channels} < {prev} of '
                    f'{prev_place} breaks the non-decreasing constraint; '
                    'allowed: '
                    f'{format_choices(choices.next_channels(prev, True))}')
            prev_place, prev = place, layer.channels


def _check_choices(place: str, layer: LayerSpec, choices: LayerSpace) -> None:
    for field in ('channels', 'kernel_size', 'groups'):
        value, allowed = getattr(layer, field), getattr(choices, field)
        if value not in allowed:
            raise UserError(f'{place}: {field} {value} not in '
                            f'{format_choices(allowed)}')
