"""The evaluated candidates of a search, in evaluation order."""
from typing import Callable, Dict, Hashable, Iterable, List, Tuple

__all__ = ['Archive']


class Archive:
    """Every evaluated candidate once, with ``{'cost', 'top1',
    'generation'}``.

    Indices into the archive (evaluation order) are what objectives, the
    front and the state file refer to.

    Example:
        >>> archive = Archive()
        >>> archive.add(('a', ), cost=1.0, top1=50.0, generation=0)
        >>> ('a', ) in archive, archive.cost_acc()
        (True, [(1.0, 50.0)])
    """

    def __init__(self) -> None:
        self.candidates: List[Hashable] = []
        self.records: List[dict] = []
        self._index: Dict[Hashable, int] = {}

    def __len__(self) -> int:
        return len(self.candidates)

    def __contains__(self, candidate: Hashable) -> bool:
        return candidate in self._index

    def __iter__(self):
        return iter(self.candidates)

    def add(self, candidate: Hashable, cost: float, top1: float,
            generation: int) -> None:
        """Append an evaluated candidate."""
        self._index[candidate] = len(self.candidates)
        self.candidates.append(candidate)
        self.records.append(dict(cost=cost, top1=top1, generation=generation))

    def cost_acc(self) -> List[Tuple[float, float]]:
        """``(cost, top1)`` of every candidate."""
        return [(r['cost'], r['top1']) for r in self.records]

    def archs(self, indices: Iterable[int],
              to_dict: Callable[[Hashable], dict]) -> Dict[int, dict]:
        """``{index: to_dict(candidate)}`` of some candidates."""
        return {i: to_dict(self.candidates[i]) for i in indices}

    def to_evaluated(self, to_dict: Callable[[Hashable], dict]) -> List[dict]:
        """``[{'arch', 'cost', 'top1', 'generation'}, ...]`` (the state
        file's form)."""
        return [
            dict(arch=to_dict(c), **r)
            for c, r in zip(self.candidates, self.records)
        ]

    @classmethod
    def from_evaluated(cls, items: Iterable[dict],
                       from_dict: Callable[[dict], Hashable]) -> 'Archive':
        """Inverse of :meth:`to_evaluated`."""
        archive = cls()
        for item in items:
            item = dict(item)
            candidate = from_dict(item.pop('arch'))
            archive._index[candidate] = len(archive.candidates)
            archive.candidates.append(candidate)
            archive.records.append(item)
        return archive
