"""What a search reports: the front's log, ``pareto.json``, ``best.json``
and ``pareto.png``."""
import json
import os.path as osp
from typing import Callable, Hashable, List, Sequence

from .archive import Archive
from .objectives import Objective
from .state import write_text_atomic

__all__ = ['front_records', 'front_lines', 'write_outputs', 'plot_search']

ToDict = Callable[[Hashable], dict]


def front_records(archive: Archive, front: Sequence[int], to_dict: ToDict,
                  cost_key: str) -> List[dict]:
    """The front as ``{'arch', <cost_key>, 'top1'}``, sorted by cost."""
    records = archive.records
    out = [{
        'arch': to_dict(archive.candidates[i]),
        cost_key: records[i]['cost'],
        'top1': records[i]['top1'],
    } for i in front]
    return sorted(out, key=lambda r: r[cost_key])


def front_lines(generation: int, archive: Archive, front: Sequence[int],
                objective: Objective, to_dict: ToDict,
                cost_label: str) -> List[str]:
    """The log of a generation's front and, if any, its fittest candidate.
    """
    records = archive.records
    lines = [f'front after generation {generation}:']
    buckets = objective.buckets
    for i in front:
        r = records[i]
        b = buckets.index(r['cost'])
        lines.append(f'  bucket {b} {buckets.describe(b)} {cost_label} '
                     f'{r["cost"]:.4f} top-1 {r["top1"]:.2f}%')
    ranking = objective.ranking(archive.cost_acc())
    if ranking:
        i, fitness = ranking[0]
        lines.append(f'  best fitness: {fitness:.3f} ({cost_label} '
                     f'{records[i]["cost"]:.4f} top-1 '
                     f'{records[i]["top1"]:.2f}%) '
                     f'{json.dumps(to_dict(archive.candidates[i]))}')
    return lines


def _write_json(path: str, data: list) -> None:
    write_text_atomic(path, json.dumps(data, indent=2) + '\n')


def write_outputs(work_dir: str,
                  archive: Archive,
                  front: Sequence[int],
                  objective: Objective,
                  to_dict: ToDict,
                  cost_key: str,
                  write: bool = True) -> List[dict]:
    """Write ``pareto.json`` (with buckets) and ``best.json`` (with a
    fitness), atomically.

    Args:
        write (bool): False only returns the front (ranks but the main
            one). Defaults to True.

    Returns:
        list[dict]: The front, as in ``pareto.json``.
    """
    records = front_records(archive, front, to_dict, cost_key)
    if not write:
        return records
    if objective.buckets is not None:
        _write_json(osp.join(work_dir, 'pareto.json'), records)
    ranking = objective.ranking(archive.cost_acc())
    if ranking:
        _write_json(
            osp.join(work_dir, 'best.json'),
            [{
                'arch': to_dict(archive.candidates[i]),
                cost_key: archive.records[i]['cost'],
                'top1': archive.records[i]['top1'],
                'fitness': fitness,
            } for i, fitness in ranking])
    return records


def plot_search(path: str, archive: Archive, front: Sequence[int],
                objective: Objective, cost_label: str,
                num_generations: int) -> None:
    """Plot accuracy against cost of every candidate, the front and the
    fittest candidate (if a fitness is defined).

    Args:
        path (str): The ``.png`` to write.
        archive (Archive): The evaluated candidates (at least one).
        front (Sequence[int]): Indices of the front.
        objective (ParetoObjective | FitnessObjective): The objective.
        cost_label (str): The x axis label.
        num_generations (int): For the title (the initial one included).
    """
    # NOTE: matplotlib is imported only to plot (``import nasbnn_mm``
    # stays torch + mmengine); the object API with the Agg canvas leaves
    # pyplot's global backend alone.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    costs, accs = zip(*archive.cost_acc())
    ax.scatter(
        costs,
        accs,
        s=10,
        c='tab:gray',
        alpha=0.5,
        label=f'evaluated ({len(costs)})')
    if front:
        points = sorted((costs[i], accs[i]) for i in front)
        fx, fy = zip(*points)
        ax.plot(
            fx,
            fy,
            '-o',
            c='tab:red',
            ms=4,
            label=f'front ({len(points)} buckets)')
    ranking = objective.ranking(archive.cost_acc())
    if ranking:
        best = ranking[0][0]
        ax.scatter([costs[best]], [accs[best]],
                   s=80,
                   marker='*',
                   c='tab:blue',
                   label='best fitness')
    ax.set_xlabel(cost_label)
    ax.set_ylabel('top-1 accuracy (%), search split')
    ax.set_title(f'evolution search: {len(costs)} candidates, '
                 f'{num_generations} generations')
    ax.grid(alpha=0.3)
    ax.legend(loc='lower right')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
