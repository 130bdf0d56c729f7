"""Evolutionary search of the OPs/accuracy Pareto front.

Paper: NAS-BNN: Neural Architecture Search for Binary Neural Networks,
https://arxiv.org/abs/2408.15484 (sec. 4.1.2: "we use the evolutionary
algorithm to search the Pareto front"), with the procedure of the official
code: an initial population (the smallest, the largest and random subnets
in the OPs range), then generations of mutations and crossovers of parents
drawn from the front, the front keeping the most accurate candidate of each
OPs bucket. The single-objective mode ranks candidates by eq. (4) of
"Searching for Accurate Binary Neural Architectures"
(https://arxiv.org/abs/1909.07378), ``f = max(Acc - lambda * FLOPs /
FLOPs_ref, 0)``, and draws parents among the best.

What is searched is a :class:`~nasbnn_mm.engine.search_problems.
SearchProblem` built from ``problem``; the loop owns the generator, the
population, the cache of evaluated candidates, the front, the state file
and the outputs.
"""
import json
import logging
import math
import os
import os.path as osp
import random
import time
from typing import Dict, Hashable, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.dist import broadcast_object_list, get_rank, is_main_process
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import BaseLoop

from nasbnn_mm.nas.width_fitness import width_fitness
from nasbnn_mm.registry import LOOPS
from nasbnn_mm.utils.typing_utils import ConfigType
from .search_problems import SEARCH_PROBLEMS, SearchProblem

__all__ = [
    'EvolutionSearchLoop', 'OBJECTIVES', 'STATE_FILE', 'build_problem',
    'num_buckets', 'bucket_index', 'pareto_front', 'rank_by_fitness'
]

OBJECTIVES = ('pareto', 'fitness')
STATE_FILE = 'search_state.json'
_STATE_FORMAT = 'nasbnn_mm.EvolutionSearchLoop/1'
# NOTE: draws allowed per wanted candidate before a generation gives up
# filling (a small space can run out of new candidates near the front).
_TRIES_PER_CANDIDATE = 50
# Settings a resumed search must share with the saved one.
_RESUME_SETTINGS = ('seed', 'population_size', 'num_mutation', 'num_crossover',
                    'mutate_prob', 'cost_range', 'bucket_step', 'objective',
                    'trade_off', 'cost_ref', 'num_parents')
# Slack of bucket edges against rounding of float OPs sums.
_EPS = 1e-9

CostRange = Tuple[float, float]


def num_buckets(cost_range: CostRange, step: float) -> int:
    """Number of buckets ``[low + i * step, low + (i + 1) * step)``.

    The last bucket also holds ``high`` (and may be narrower).

    Example:
        >>> num_buckets((40, 250), 10)
        21
    """
    low, high = cost_range
    return max(1, math.ceil((high - low) / step - _EPS))


def bucket_index(cost: float, cost_range: CostRange, step: float) -> int:
    """Index of the bucket of ``cost`` (see :func:`num_buckets`).

    Raises:
        ValueError: If ``cost`` is outside ``cost_range``.

    Example:
        >>> bucket_index(45.0, (40, 250), 10), bucket_index(250, (40, 250), 10)
        (0, 20)
    """
    low, high = cost_range
    if not low - _EPS <= cost <= high + _EPS:
        raise ValueError(f'cost {cost} outside cost_range [{low}, {high}]')
    index = int(math.floor((cost - low) / step + _EPS))
    return min(max(index, 0), num_buckets(cost_range, step) - 1)


def pareto_front(records: Sequence[Tuple[float, float]], cost_range: CostRange,
                 step: float) -> List[int]:
    """The most accurate record of each cost bucket.

    Args:
        records (Sequence[tuple[float, float]]): ``(cost, accuracy)`` of
            every evaluated candidate, in evaluation order.
        cost_range (tuple[float, float]): ``(low, high)``.
        step (float): Bucket width.

    Returns:
        list[int]: Indices into ``records``, one per non-empty bucket,
        sorted by bucket (so by cost); on equal accuracy the earlier
        record wins.

    Example:
        >>> pareto_front([(1.0, 50.), (1.5, 60.), (2.5, 55.), (2.2, 55.)],
        ...              (1, 3), 1)
        [1, 2]
    """
    best: Dict[int, int] = {}
    for i, (cost, accuracy) in enumerate(records):
        b = bucket_index(cost, cost_range, step)
        if b not in best or records[best[b]][1] < accuracy:
            best[b] = i
    return [best[b] for b in sorted(best)]


def rank_by_fitness(records: Sequence[Tuple[float, float]], cost_ref: float,
                    trade_off: float) -> List[int]:
    """Indices of ``(cost, accuracy)`` records by decreasing fitness.

    Fitness is :func:`~nasbnn_mm.nas.width_fitness.width_fitness`,
    ``max(accuracy - trade_off * cost / cost_ref, 0)``; ties keep the
    evaluation order.

    Example:
        >>> rank_by_fitness([(1.0, 50.), (2.0, 60.), (1.0, 58.)], 1.0, 4.0)
        [2, 1, 0]
    """
    fitness = [
        width_fitness(accuracy, cost, cost_ref, trade_off)
        for cost, accuracy in records
    ]
    return sorted(range(len(records)), key=lambda i: (-fitness[i], i))


def build_problem(cfg: ConfigType, runner,
                  train_dataloader: ConfigType) -> SearchProblem:
    """Build a problem from ``SEARCH_PROBLEMS`` (by name or class).

    ``runner`` and ``train_dataloader`` are passed unless ``cfg`` sets them.
    """
    cfg = dict(cfg)
    if 'type' not in cfg:
        raise ValueError('problem: missing key \'type\', e.g. '
                         "'nasbnn_mm.SupernetSearchProblem'")
    problem_type = cfg.pop('type')
    cls = problem_type if isinstance(
        problem_type, type) else SEARCH_PROBLEMS.get(problem_type)
    if cls is None or not issubclass(cls, SearchProblem):
        raise ValueError(
            f'problem.type: {problem_type!r} is not a registered search '
            f'problem; registered: {sorted(SEARCH_PROBLEMS.module_dict)}')
    cfg.setdefault('runner', runner)
    cfg.setdefault('train_dataloader', train_dataloader)
    return cls(**cfg)


def _atomic_write(path: str, text: str) -> None:
    """Write a file so that a crash leaves the old or the new content."""
    tmp = f'{path}.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@LOOPS.register_module()
class EvolutionSearchLoop(BaseLoop):
    """Evolutionary search, run by ``runner.train()`` (``tools/search.py``).

    Generation 0 is the initial population: ``problem.initial()`` (the
    smallest and largest subnets) and random candidates, all within
    ``cost_range``, ``population_size`` in all. Each of the
    ``max_generations`` generations after it adds ``num_mutation``
    mutants (each choice redrawn with probability ``mutate_prob``) and
    ``num_crossover`` children of parents drawn uniformly from:

    * ``objective='pareto'``: the front, the most accurate candidate of
      each ``bucket_step`` wide bucket of ``cost_range``;
    * ``objective='fitness'``: the ``num_parents`` candidates of highest
      fitness ``max(top1 - trade_off * cost / cost_ref, 0)``.

    New candidates must lie in ``cost_range`` and be new: every candidate is
    evaluated once (the cache is keyed by the candidate, e.g. an
    :class:`~nasbnn_mm.nas.ArchSpec`). All draws come from one
    ``random.Random(seed)``, the same on every rank (checked each
    generation), so the search is a function of the seed, the weights and
    the data.

    The state (settings, generation, pending candidates, generator state,
    evaluated candidates, front) is written atomically to
    ``<work_dir>/search_state.json`` after every generation (and every
    ``save_interval`` candidates); ``resume=True`` continues from it and
    ends with the same result as an uninterrupted run. Outputs in the work
    dir: ``pareto.json`` (the front: ``arch``, cost, ``top1``, sorted by
    cost), ``pareto.png`` and, with ``objective='fitness'``, ``best.json``.

    Args:
        runner (Runner): The runner.
        dataloader (dict): The training dataloader config, handed to the
            problem (BN calibration data of :class:`SupernetSearchProblem`).
        problem (dict | SearchProblem): The problem, or its config built
            from ``SEARCH_PROBLEMS`` with ``runner`` and
            ``train_dataloader`` as default arguments.
        max_generations (int): Generations after the initial one.
            Defaults to 20.
        population_size (int): Size of the initial population.
            Defaults to 512.
        num_mutation (int): Mutants per generation. Defaults to 128.
        num_crossover (int): Children of crossover per generation.
            Defaults to 128.
        mutate_prob (float): Probability of redrawing each choice.
            Defaults to 0.2.
        cost_range (tuple[float, float], optional): Inclusive range of the
            cost (OPs in M). Required by ``'pareto'``. Defaults to None.
        bucket_step (float, optional): Width of the front's buckets.
            Required by ``'pareto'``. Defaults to None.
        objective (str): ``'pareto'`` or ``'fitness'``.
            Defaults to 'pareto'.
        trade_off (float): lambda of the fitness. Defaults to 4.0.
        cost_ref (float, optional): ``FLOPs_ref`` of the fitness; None takes
            ``problem.reference_cost()``. Defaults to None.
        num_parents (int): Parents of the ``'fitness'`` objective.
            Defaults to 16.
        seed (int): Seed of the search. Defaults to 0.
        checkpoint (str, optional): Supernet checkpoint to load
            (``torch.load(weights_only=True)``, key ``state_dict``) before
            searching. Defaults to None.
        resume (bool): Continue from ``search_state.json`` of the work dir
            if there is one. Defaults to False.
        save_interval (int): Also save the state every this many evaluated
            candidates within a generation; 0 saves only between
            generations. Defaults to 0.

    Example (a config; run with ``tools/search.py CONFIG CHECKPOINT``)::

        train_cfg = dict(
            _delete_=True,
            type='nasbnn_mm.EvolutionSearchLoop',
            problem=dict(
                type='nasbnn_mm.SupernetSearchProblem',
                eval_dataloader={{_base_.search_val_dataloader}},
                calibrate_batches=10),
            max_generations=20, population_size=512, num_mutation=128,
            num_crossover=128, mutate_prob=0.2, cost_range=(40, 250),
            bucket_step=10)
    """

    def __init__(self,
                 runner,
                 dataloader: ConfigType,
                 problem: Union[ConfigType, SearchProblem],
                 max_generations: int = 20,
                 population_size: int = 512,
                 num_mutation: int = 128,
                 num_crossover: int = 128,
                 mutate_prob: float = 0.2,
                 cost_range: Optional[Sequence[float]] = None,
                 bucket_step: Optional[float] = None,
                 objective: str = 'pareto',
                 trade_off: float = 4.0,
                 cost_ref: Optional[float] = None,
                 num_parents: int = 16,
                 seed: int = 0,
                 checkpoint: Optional[str] = None,
                 resume: bool = False,
                 save_interval: int = 0) -> None:
        # NOTE: no BaseLoop.__init__, which would build the (sharded)
        # training dataloader: the problem builds the loaders it needs.
        self._runner = runner
        counts = dict(
            max_generations=(max_generations, 0),
            population_size=(population_size, 1),
            num_mutation=(num_mutation, 0),
            num_crossover=(num_crossover, 0),
            num_parents=(num_parents, 1),
            save_interval=(save_interval, 0))
        for name, (value, least) in counts.items():
            if isinstance(value, bool) or not isinstance(value, int) \
                    or value < least:
                raise ValueError(f'{name}: {value!r} must be an int >= '
                                 f'{least}')
        if not 0 <= mutate_prob <= 1:
            raise ValueError(f'mutate_prob: {mutate_prob} not in [0, 1]')
        if objective not in OBJECTIVES:
            raise ValueError(f'objective: {objective!r} not in {OBJECTIVES}')
        if cost_range is not None:
            if len(cost_range) != 2 or not cost_range[0] <= cost_range[1]:
                raise ValueError(f'cost_range: {cost_range!r} must be '
                                 '(low, high) with low <= high')
            cost_range = (float(cost_range[0]), float(cost_range[1]))
        if bucket_step is not None:
            if bucket_step <= 0:
                raise ValueError(f'bucket_step: {bucket_step} must be > 0')
            if cost_range is None:
                raise ValueError('bucket_step: buckets need a cost_range')
        if objective == 'pareto' and bucket_step is None:
            raise ValueError("objective 'pareto': set cost_range and "
                             'bucket_step (the front keeps the best '
                             'candidate of each bucket)')
        if trade_off < 0:
            raise ValueError(f'trade_off: {trade_off} must be >= 0')
        if cost_ref is not None and cost_ref <= 0:
            raise ValueError(f'cost_ref: {cost_ref} must be > 0')
        self.max_generations = max_generations
        self.population_size = population_size
        self.num_mutation = num_mutation
        self.num_crossover = num_crossover
        self.mutate_prob = float(mutate_prob)
        self.cost_range = cost_range
        self.bucket_step = None if bucket_step is None else float(bucket_step)
        self.objective = objective
        self.trade_off = float(trade_off)
        self.num_parents = num_parents
        self.seed = seed
        self.checkpoint = checkpoint
        self.resume = resume
        self.save_interval = save_interval

        if not isinstance(problem, SearchProblem):
            problem = build_problem(problem, runner, dataloader)
        self.problem = problem
        # mmengine's hooks read ``runner.train_dataloader``.
        self.dataloader = self.problem.dataloader
        if self.dataloader is None:
            self.dataloader = runner.build_dataloader(
                dataloader, seed=runner.seed)
        if cost_range is not None:
            self._check_feasible(cost_range)
        if objective == 'fitness' and cost_ref is None:
            cost_ref = float(self.problem.reference_cost())
        self.cost_ref = None if cost_ref is None else float(cost_ref)

        self._generation = 0
        self._pending: Optional[List[Hashable]] = None
        self._rng = random.Random(seed)
        self._candidates: List[Hashable] = []
        self._index: Dict[Hashable, int] = {}
        self._records: List[dict] = []
        self._front: List[int] = []

    # mmengine's Runner and hooks read these of a train loop.
    @property
    def max_epochs(self) -> int:
        """Generations after the initial one."""
        return self.max_generations

    @property
    def max_iters(self) -> int:
        """Same as :attr:`max_epochs`."""
        return self.max_generations

    @property
    def epoch(self) -> int:
        """Generations done."""
        return self._generation

    @property
    def iter(self) -> int:
        """Same as :attr:`epoch`."""
        return self._generation

    @property
    def num_evaluated(self) -> int:
        """Number of distinct candidates evaluated so far."""
        return len(self._candidates)

    @property
    def work_dir(self) -> str:
        """Where the state and the outputs are written."""
        return self.runner.work_dir

    @property
    def state_path(self) -> str:
        """``<work_dir>/search_state.json``."""
        return osp.join(self.work_dir, STATE_FILE)

    def _check_feasible(self, cost_range: CostRange) -> None:
        low, high = (float(b) for b in self.problem.cost_bounds())
        if cost_range[1] < low or cost_range[0] > high:
            unit = self.problem.cost_label
            raise ValueError(
                f'cost_range: [{cost_range[0]}, {cost_range[1]}] {unit} has '
                f'no candidate; achievable range [{low:.4f}, {high:.4f}] '
                f'{unit}')

    # ---------------------------------------------------------------- run
    def run(self) -> List[dict]:
        """Search, write the outputs and return the front (as written)."""
        runner = self.runner
        if self.checkpoint is not None:
            self.load_weights(self.checkpoint)
        if self.resume:
            self._try_resume()
        runner.call_hook('before_train')
        print_log(
            f'evolution search ({self.objective}): {self.max_generations} '
            f'generations after {self.population_size} initial, '
            f'{self.num_mutation} mutants + {self.num_crossover} children '
            f'each, cost range {self.cost_range}, bucket '
            f'{self.bucket_step}, seed {self.seed}',
            logger='current')
        while self._generation <= self.max_generations:
            if self._pending is None:
                self._pending = self._propose()
                self._check_same_on_all_ranks(self._pending)
                self._save_state()
            self._evaluate_pending()
            self._front = self._compute_front()
            self._log_front()
            self._generation += 1
            self._pending = None
            self._save_state()
            self._write_json_outputs()
        front = self._write_json_outputs()
        self._plot()
        runner.call_hook('after_train')
        return front

    def load_weights(self, path: str) -> None:
        """Load a supernet checkpoint (``weights_only=True``)."""
        if not osp.isfile(path):
            raise FileNotFoundError(f'checkpoint {path!r} does not exist')
        model = self.runner.model
        model = model.module if is_model_wrapper(model) else model
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
        state_dict = checkpoint.get('state_dict', checkpoint)
        model.load_state_dict(state_dict, strict=True)
        print_log(f'loaded supernet weights from {path}', logger='current')

    # ---------------------------------------------------------- proposals
    def _in_range(self, candidate: Hashable) -> bool:
        if self.cost_range is None:
            return True
        cost = self.problem.cost(candidate)
        return self.cost_range[0] <= cost <= self.cost_range[1]

    def _fill(self, what: str, num: int, draw, seen: set,
              out: List[Hashable]) -> None:
        """Append up to ``num`` new in-range candidates from ``draw()``."""
        got, tries = 0, 0
        while got < num and tries < num * _TRIES_PER_CANDIDATE:
            tries += 1
            candidate = draw()
            if candidate in seen or not self._in_range(candidate):
                continue
            seen.add(candidate)
            out.append(candidate)
            got += 1
        if got < num:
            print_log(
                f'generation {self._generation}: {got}/{num} new {what} '
                f'after {tries} draws (few unseen candidates left)',
                logger='current',
                level=logging.WARNING)

    def _propose(self) -> List[Hashable]:
        """The new candidates of the current generation (uses the RNG)."""
        problem, rng = self.problem, self._rng
        seen = set(self._index)
        out: List[Hashable] = []
        if self._generation == 0:
            for candidate in problem.initial():
                if len(out) < self.population_size and \
                        candidate not in seen and self._in_range(candidate):
                    seen.add(candidate)
                    out.append(candidate)
            self._fill('random candidates', self.population_size - len(out),
                       lambda: problem.sample(rng, self.cost_range), seen, out)
            return out
        parents = self.parents()
        if not parents:
            raise RuntimeError('no parents: nothing was evaluated')
        self._fill(
            'mutants', self.num_mutation,
            lambda: problem.mutate(rng.choice(parents), rng, self.mutate_prob),
            seen, out)
        self._fill(
            'crossover children', self.num_crossover,
            lambda: problem.crossover(
                rng.choice(parents), rng.choice(parents), rng), seen, out)
        return out

    def parents(self) -> List[Hashable]:
        """The candidates new ones are bred from."""
        if self.objective == 'pareto':
            indices = self._front
        else:
            indices = rank_by_fitness(self._cost_acc(), self.cost_ref,
                                      self.trade_off)[:self.num_parents]
        return [self._candidates[i] for i in indices]

    def _check_same_on_all_ranks(self, candidates: List[Hashable]) -> None:
        keys = [self.problem.to_dict(c) for c in candidates]
        ranks0 = [keys]
        broadcast_object_list(ranks0, src=0)
        if ranks0[0] != keys:
            raise RuntimeError(
                f'rank {get_rank()}: generation {self._generation} '
                'differs from rank 0; every rank must draw the same '
                'candidates (same seed, same state file)')

    # --------------------------------------------------------- evaluation
    def _evaluate_pending(self) -> None:
        todo = [c for c in self._pending if c not in self._index]
        total = len(self._pending)
        done = total - len(todo)
        start = time.time()
        unit = self.problem.cost_label
        for i, candidate in enumerate(todo):
            top1 = float(self.problem.evaluate(candidate))
            cost = float(self.problem.cost(candidate))
            self._index[candidate] = len(self._candidates)
            self._candidates.append(candidate)
            self._records.append(
                dict(cost=cost, top1=top1, generation=self._generation))
            elapsed = time.time() - start
            eta = elapsed / (i + 1) * (len(todo) - i - 1)
            print_log(
                f'generation {self._generation}/{self.max_generations} '
                f'[{done + i + 1}/{total}] {unit} {cost:.4f} top-1 '
                f'{top1:.2f}% | {len(self._candidates)} evaluated, '
                f'eta {eta:.0f}s',
                logger='current')
            if self.save_interval and (i + 1) % self.save_interval == 0 \
                    and i + 1 < len(todo):
                self._save_state()

    def _cost_acc(self) -> List[Tuple[float, float]]:
        return [(r['cost'], r['top1']) for r in self._records]

    def _compute_front(self) -> List[int]:
        if self.bucket_step is None:
            return []
        return pareto_front(self._cost_acc(), self.cost_range,
                            self.bucket_step)

    def _log_front(self) -> None:
        unit = self.problem.cost_label
        lines = [f'front after generation {self._generation}:']
        for i in self._front:
            r = self._records[i]
            b = bucket_index(r['cost'], self.cost_range, self.bucket_step)
            low = self.cost_range[0] + b * self.bucket_step
            lines.append(f'  bucket {b} [{low:.4g}, '
                         f'{low + self.bucket_step:.4g}) {unit} '
                         f'{r["cost"]:.4f} top-1 {r["top1"]:.2f}%')
        if self.objective == 'fitness':
            best = rank_by_fitness(self._cost_acc(), self.cost_ref,
                                   self.trade_off)[0]
            r = self._records[best]
            fitness = width_fitness(r['top1'], r['cost'], self.cost_ref,
                                    self.trade_off)
            lines.append(
                f'  best fitness: {fitness:.3f} ({unit} '
                f'{r["cost"]:.4f} top-1 {r["top1"]:.2f}%) '
                f'{json.dumps(self.problem.to_dict(self._candidates[best]))}')
        print_log('\n'.join(lines), logger='current')

    # -------------------------------------------------------------- state
    def _settings(self) -> dict:
        return dict(
            seed=self.seed,
            population_size=self.population_size,
            num_mutation=self.num_mutation,
            num_crossover=self.num_crossover,
            mutate_prob=self.mutate_prob,
            cost_range=None
            if self.cost_range is None else list(self.cost_range),
            bucket_step=self.bucket_step,
            objective=self.objective,
            trade_off=self.trade_off,
            cost_ref=self.cost_ref,
            num_parents=self.num_parents,
            max_generations=self.max_generations)

    def state_dict(self) -> dict:
        """The search state, JSON-serializable."""
        version, internal, gauss = self._rng.getstate()
        to_dict = self.problem.to_dict
        return dict(
            format=_STATE_FORMAT,
            settings=self._settings(),
            generation=self._generation,
            pending=None
            if self._pending is None else [to_dict(c) for c in self._pending],
            rng_state=[version, list(internal), gauss],
            evaluated=[
                dict(arch=to_dict(c), **r)
                for c, r in zip(self._candidates, self._records)
            ],
            front=list(self._front))

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` (settings must match, see below).

        Every setting but ``max_generations`` must equal the saved one, so
        that the resumed search continues the same search.

        Raises:
            ValueError: Naming the first differing setting.
        """
        if state.get('format') != _STATE_FORMAT:
            raise ValueError(f'search state: format {state.get("format")!r}'
                             f', expected {_STATE_FORMAT!r}')
        ours = self._settings()
        for key in _RESUME_SETTINGS:
            if state['settings'].get(key) != ours[key]:
                raise ValueError(
                    f'resume: {key} is {ours[key]!r} but the saved search '
                    f'used {state["settings"].get(key)!r}; resume with the '
                    'same settings or use another work dir')
        from_dict = self.problem.from_dict
        version, internal, gauss = state['rng_state']
        self._rng.setstate((version, tuple(internal), gauss))
        self._generation = int(state['generation'])
        self._pending = None if state['pending'] is None else [
            from_dict(c) for c in state['pending']
        ]
        self._candidates, self._index, self._records = [], {}, []
        for item in state['evaluated']:
            item = dict(item)
            candidate = from_dict(item.pop('arch'))
            self._index[candidate] = len(self._candidates)
            self._candidates.append(candidate)
            self._records.append(item)
        self._front = [int(i) for i in state['front']]

    def _try_resume(self) -> None:
        state = [None]
        if is_main_process() and osp.isfile(self.state_path):
            with open(self.state_path, encoding='utf-8') as f:
                state[0] = json.load(f)
        broadcast_object_list(state, src=0)
        if state[0] is None:
            print_log(
                f'resume: no {self.state_path}; starting a new search',
                logger='current')
            return
        self.load_state_dict(state[0])
        print_log(
            f'resumed from {self.state_path}: generation '
            f'{self._generation}, {len(self._candidates)} evaluated',
            logger='current')

    def _save_state(self) -> None:
        if is_main_process():
            os.makedirs(self.work_dir, exist_ok=True)
            _atomic_write(self.state_path, json.dumps(self.state_dict()))

    # ------------------------------------------------------------ outputs
    def front_records(self) -> List[dict]:
        """The front as ``{'arch', <cost_key>, 'top1'}`` sorted by cost."""
        key = self.problem.cost_key
        records = [{
            'arch': self.problem.to_dict(self._candidates[i]),
            key: self._records[i]['cost'],
            'top1': self._records[i]['top1'],
        } for i in self._front]
        return sorted(records, key=lambda r: r[key])

    def best_records(self) -> List[dict]:
        """The ``num_parents`` best candidates by fitness, best first."""
        key = self.problem.cost_key
        out = []
        for i in rank_by_fitness(self._cost_acc(), self.cost_ref,
                                 self.trade_off)[:self.num_parents]:
            r = self._records[i]
            out.append({
                'arch':
                self.problem.to_dict(self._candidates[i]),
                key:
                r['cost'],
                'top1':
                r['top1'],
                'fitness':
                width_fitness(r['top1'], r['cost'], self.cost_ref,
                              self.trade_off),
            })
        return out

    def _write_json_outputs(self) -> List[dict]:
        front = self.front_records()
        if is_main_process():
            if self.bucket_step is not None:
                _atomic_write(
                    osp.join(self.work_dir, 'pareto.json'),
                    json.dumps(front, indent=2) + '\n')
            if self.objective == 'fitness':
                _atomic_write(
                    osp.join(self.work_dir, 'best.json'),
                    json.dumps(self.best_records(), indent=2) + '\n')
        return front

    def _plot(self) -> None:
        """``pareto.png``: every evaluated candidate and the front."""
        if not is_main_process() or not self._records:
            return
        # The object API with the Agg canvas leaves pyplot's global
        # backend alone.
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        fig = Figure(figsize=(7, 4.5))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        costs, accs = zip(*self._cost_acc())
        ax.scatter(
            costs,
            accs,
            s=10,
            c='tab:gray',
            alpha=0.5,
            label=f'evaluated ({len(costs)})')
        if self._front:
            front = sorted((self._records[i]['cost'], self._records[i]['top1'])
                           for i in self._front)
            fx, fy = zip(*front)
            ax.plot(
                fx,
                fy,
                '-o',
                c='tab:red',
                ms=4,
                label=f'front ({len(front)} buckets)')
        if self.objective == 'fitness':
            r = self._records[rank_by_fitness(self._cost_acc(), self.cost_ref,
                                              self.trade_off)[0]]
            ax.scatter([r['cost']], [r['top1']],
                       s=80,
                       marker='*',
                       c='tab:blue',
                       label='best fitness')
        ax.set_xlabel(self.problem.cost_label)
        ax.set_ylabel('top-1 accuracy (%), search split')
        ax.set_title(f'evolution search: {len(costs)} candidates, '
                     f'{self.max_generations + 1} generations')
        ax.grid(alpha=0.3)
        ax.legend(loc='lower right')
        fig.tight_layout()
        fig.savefig(osp.join(self.work_dir, 'pareto.png'), dpi=120)
