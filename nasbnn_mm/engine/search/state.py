"""The search state file: what a killed or finished search resumes from.

One JSON file, ``<work_dir>/search_state.json``, written atomically
(a temporary file and ``os.replace``: a kill leaves the old or the new
file). It holds the settings, the generation, its pending candidates,
the generator's state (:func:`~nasbnn_mm.utils.python_rng_state`), every
evaluated candidate and the front.
"""
import json
import os
import os.path as osp
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, List, Optional

from mmengine.dist import broadcast_object_list, get_rank, is_main_process
from mmengine.logging import print_log

from nasbnn_mm.utils import UserError

__all__ = [
    'STATE_FILE', 'STATE_FORMAT', 'SearchState', 'read_state',
    'check_settings', 'check_same_on_all_ranks', 'write_text_atomic'
]

STATE_FILE = 'search_state.json'
# /2: the generator state as a python_rng_state dict, the supernet
# checkpoint and the bucket rule among the settings.
STATE_FORMAT = 'nasbnn_mm.EvolutionSearchLoop/2'
# Settings a resumed search may change: more generations extend a
# finished search.
_FREE_SETTINGS = ('max_generations', )
_WHAT_TO_DO = ('delete it to start the search over, or resume in another '
               '--work-dir')


def write_text_atomic(path: str, text: str) -> None:
    """Write a file so that a crash leaves the old or the new content."""
    tmp = f'{path}.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclass
class SearchState:
    """Everything a search needs to continue exactly.

    Attributes:
        settings (dict): The loop's settings (:func:`check_settings`).
        generation (int): The generation being proposed or evaluated.
        pending (list[dict], optional): Its candidates (``to_dict`` form),
            None between generations.
        rng_state (dict): The search generator's state.
        evaluated (list[dict]): ``{'arch', 'cost', 'top1', 'generation'}``
            of every evaluated candidate, in evaluation order.
        front (list[int]): Indices into ``evaluated``.
    """

    settings: Dict[str, Any]
    generation: int
    pending: Optional[List[dict]]
    rng_state: Dict[str, Any]
    evaluated: List[Dict[str, Any]]
    front: List[int]

    def to_dict(self) -> dict:
        """The JSON form, with the format tag first."""
        return dict(format=STATE_FORMAT, **asdict(self))

    @classmethod
    def from_dict(cls, data: Any, source: str) -> 'SearchState':
        """Check the format tag and the keys of :meth:`to_dict`'s form.

        Raises:
            UserError: One line naming ``source`` and what is wrong.
        """
        if not isinstance(data, dict):
            raise UserError(f'{source}: not a search state (a JSON '
                            f'{type(data).__name__}); {_WHAT_TO_DO}')
        found = data.get('format')
        if found != STATE_FORMAT:
            raise UserError(
                f'{source}: search state format {found!r}, this version '
                f'reads {STATE_FORMAT!r} only; {_WHAT_TO_DO}')
        missing = [f.name for f in fields(cls) if f.name not in data]
        if missing:
            raise UserError(f'{source}: incomplete search state (no '
                            f'{missing[0]!r}); {_WHAT_TO_DO}')
        return cls(**{f.name: data[f.name] for f in fields(cls)})

    def save(self, path: str) -> None:
        """Write the state atomically."""
        write_text_atomic(path, json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str) -> 'SearchState':
        """Read a state file.

        Raises:
            UserError: If the file is not valid JSON (e.g. truncated) or
                not a search state of this format.
        """
        with open(path, encoding='utf-8') as f:
            text = f.read()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(
                f'{path}: not a valid search state ({e.msg} at line '
                f'{e.lineno} column {e.colno}; truncated or damaged); '
                f'{_WHAT_TO_DO}') from e
        return cls.from_dict(data, path)


def read_state(path: str) -> Optional[SearchState]:
    """Read a state file on rank 0 and share it with every rank.

    Returns:
        SearchState, optional: None if there is no file (logged: the
        search starts anew).

    Raises:
        UserError: On every rank, if rank 0 could not read the file (so a
            bad file stops all ranks with the same line).
    """
    message = [None, None]
    if is_main_process() and osp.isfile(path):
        try:
            message[0] = SearchState.load(path)
        except UserError as e:
            message[1] = str(e)
    broadcast_object_list(message, src=0)
    state, error = message
    if error is not None:
        raise UserError(error)
    print_log(
        f'resume: no {path}; starting a new search'
        if state is None else f'resume: read {path}',
        logger='current')
    return state


def check_same_on_all_ranks(items: List[Any], what: str) -> None:
    """Check that every rank holds rank 0's ``items`` (e.g. the candidate
    dicts of a generation).

    Raises:
        RuntimeError: On a rank whose items differ (a different seed or
            state file): continuing would mix two searches.
    """
    ranks0 = [items]
    broadcast_object_list(ranks0, src=0)
    if ranks0[0] != items:
        raise RuntimeError(
            f'rank {get_rank()}: {what} differs from rank 0; every rank '
            'must draw the same candidates (same seed, same state file)')


def check_settings(saved: Dict[str, Any], ours: Dict[str, Any]) -> None:
    """Check that a resumed search continues the saved one.

    Every setting but ``max_generations`` must be equal; the checkpoint is
    compared by content (``digest``), so a moved file still resumes.

    Raises:
        UserError: Naming the first differing setting, both values and
            what to do.
    """
    keys = list(ours) + [k for k in saved if k not in ours]
    for key in keys:
        if key in _FREE_SETTINGS:
            continue
        mine, theirs = ours.get(key), saved.get(key)
        if key == 'checkpoint':
            _check_checkpoint(theirs, mine)
        elif mine != theirs:
            raise UserError(
                f'resume: {key} is {mine!r} but the saved search used '
                f'{theirs!r}; resume with the same settings or use another '
                'work dir')


def _check_checkpoint(saved: Optional[dict], ours: Optional[dict]) -> None:
    digest = (saved or {}).get('digest'), (ours or {}).get('digest')
    if digest[0] != digest[1]:
        raise UserError(
            f'resume: checkpoint {_describe(ours)} is not the one the saved '
            f'search scored its candidates with, {_describe(saved)}; resume '
            'with that checkpoint or use another work dir')


def _describe(checkpoint: Optional[dict]) -> str:
    if checkpoint is None:
        return '(none)'
    return f'{checkpoint["path"]} (sha256 {checkpoint["digest"]})'
