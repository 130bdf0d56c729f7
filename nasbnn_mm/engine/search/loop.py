"""Evolutionary search: propose, fill and evaluate generations.

Paper: NAS-BNN: Neural Architecture Search for Binary Neural Networks,
https://arxiv.org/abs/2408.15484 (sec. 4.1.2: "we use the evolutionary
algorithm to search the Pareto front"), with the procedure of the official
code (github VDIGPKU/NAS-BNN, ``search.py``): an initial population (the
smallest and the largest subnets, whatever their cost, then random subnets
in the cost range), then generations of mutations and crossovers of
parents chosen by the objective. The objectives, the state file, the
report and the problems are the sibling modules of this package.
"""
import logging
import math
import os
import os.path as osp
import random
import time
from typing import Callable, Hashable, List, Optional, Sequence, Union

from mmengine.dist import is_main_process
from mmengine.logging import print_log
from mmengine.runner import BaseLoop

from nasbnn_mm.registry import LOOPS
from nasbnn_mm.utils import (python_rng_state, set_python_rng_state,
                             unwrap_model)
from nasbnn_mm.utils.typing_utils import ConfigType
from . import report
from .archive import Archive
from .objectives import build_objective
from .problems import SearchProblem, build_problem
from .state import (STATE_FILE, SearchState, check_same_on_all_ranks,
                    check_settings, read_state)
from .weights import load_weights

__all__ = ['EvolutionSearchLoop']

# NOTE: draws allowed per wanted candidate before a generation gives up
# filling (a small space can run out of new candidates near the front).
_TRIES_PER_CANDIDATE = 50


def _check_counts(**counts: tuple) -> None:
    """``name=(value, least)``: each value an int >= least."""
    for name, (value, least) in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) \
                or value < least:
            raise ValueError(f'{name}: {value!r} must be an int >= {least}')


@LOOPS.register_module()
class EvolutionSearchLoop(BaseLoop):
    """Evolutionary search, run by ``runner.train()`` (``tools/search.py``).

    Generation 0 is the initial population: ``problem.initial()`` (the
    smallest and the largest subnets, even outside ``cost_range``, as the
    official code) and random candidates within ``cost_range``,
    ``population_size`` in all. Each of the ``max_generations`` generations
    after it adds ``num_mutation`` mutants (each choice redrawn with
    probability ``mutate_prob``) and ``num_crossover`` children of parents
    drawn uniformly from those the objective chooses:

    * ``objective='pareto'``: the front, the most accurate candidate of
      each ``bucket_step`` wide bucket of ``cost_range``
      (:class:`~.objectives.ParetoObjective`);
    * ``objective='fitness'``: the ``num_parents`` candidates of highest
      fitness ``max(top1 - trade_off * cost / cost_ref, 0)``
      (:class:`~.objectives.FitnessObjective`).

    New candidates must lie in ``cost_range`` and be new (each is evaluated
    once). All draws come from one ``random.Random(seed)``, the same on
    every rank (checked each generation). The state
    (:class:`~.state.SearchState`, ``<work_dir>/search_state.json``) is
    saved after every generation and every ``save_interval`` candidates;
    ``resume=True`` continues from it to the same result as an
    uninterrupted run. Outputs: ``pareto.json`` (the front sorted by cost),
    ``pareto.png`` and, with ``objective='fitness'``, ``best.json``.

    Args:
        runner (Runner): The runner.
        dataloader (dict): The training dataloader config, handed to the
            problem (BN calibration data of ``SupernetSearchProblem``).
        problem (dict | SearchProblem): The problem, or its config built
            from :data:`~nasbnn_mm.registry.SEARCH_PROBLEMS` with
            ``runner`` and ``train_dataloader`` as default arguments.
        max_generations (int): Generations after the initial one.
            Defaults to 20.
        population_size (int): Initial population. Defaults to 512.
        num_mutation (int): Mutants per generation. Defaults to 128.
        num_crossover (int): Crossover children per generation.
            Defaults to 128.
        mutate_prob (float): Probability of redrawing each choice.
            Defaults to 0.2.
        cost_range (tuple[float, float], optional): Inclusive range of the
            cost (OPs in M). Required by ``'pareto'``. Defaults to None.
        bucket_step (float, optional): Width of the front's buckets.
            Required by ``'pareto'``. Defaults to None.
        bucket_rule (str): ``'interval'`` or ``'nearest'`` (the official
            rounding), see :data:`~.objectives.BUCKET_RULES`.
            Defaults to 'interval'.
        objective (str): ``'pareto'`` or ``'fitness'``. Defaults to
            'pareto'.
        trade_off (float): lambda of the fitness. Defaults to 4.0.
        cost_ref (float, optional): ``FLOPs_ref`` of the fitness; None takes
            ``problem.reference_cost()``. Defaults to None.
        num_parents (int): Parents of the fitness. Defaults to 16.
        seed (int): Seed of the search. Defaults to 0.
        checkpoint (str, optional): Weights to load (``weights_only``, key
            ``state_dict``) before searching; its path and SHA-256 are
            settings a resume checks. Defaults to None.
        resume (bool): Continue from ``search_state.json`` of the work dir
            if there is one. Defaults to False.
        save_interval (int): Also save the state every this many candidates
            (0: only between generations). Defaults to 0.

    Example (``train_cfg`` of a config, run by ``tools/search.py``)::

        train_cfg = dict(
            _delete_=True, type='nasbnn_mm.EvolutionSearchLoop',
            problem=dict(type='nasbnn_mm.SupernetSearchProblem',
                         eval_dataloader={{_base_.search_val_dataloader}}),
            cost_range=(20, 180), bucket_step=2, bucket_rule='nearest')
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
                 bucket_rule: str = 'interval',
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
        _check_counts(
            max_generations=(max_generations, 0),
            population_size=(population_size, 1),
            num_mutation=(num_mutation, 0),
            num_crossover=(num_crossover, 0),
            num_parents=(num_parents, 1),
            save_interval=(save_interval, 0))
        if not 0 <= mutate_prob <= 1:
            raise ValueError(f'mutate_prob: {mutate_prob} not in [0, 1]')
        if cost_range is not None:
            if len(cost_range) != 2 or not cost_range[0] <= cost_range[1]:
                raise ValueError(f'cost_range: {cost_range!r} must be '
                                 '(low, high) with low <= high')
            cost_range = (float(cost_range[0]), float(cost_range[1]))
        self.max_generations = max_generations
        self.population_size = population_size
        self.num_mutation = num_mutation
        self.num_crossover = num_crossover
        self.mutate_prob = float(mutate_prob)
        self.cost_range = cost_range
        self.seed = seed
        self.checkpoint = checkpoint
        self.resume = resume
        self.save_interval = save_interval

        self.problem = build_problem(problem, runner, dataloader)
        # mmengine's hooks read ``runner.train_dataloader``.
        self.dataloader = self.problem.dataloader
        if self.dataloader is None:
            self.dataloader = runner.build_dataloader(
                dataloader, seed=runner.seed)
        if cost_range is not None:
            self.problem.check_cost_range(cost_range)
        self.objective = build_objective(objective, cost_range, bucket_step,
                                         bucket_rule, trade_off, cost_ref,
                                         num_parents,
                                         self.problem.reference_cost)

        self._generation = 0
        self._pending: Optional[List[Hashable]] = None
        self._rng = random.Random(seed)
        self.archive = Archive()
        self._front: List[int] = []
        self._checkpoint_id: Optional[dict] = None

    # mmengine's Runner and hooks read these of a train loop.
    @property
    def max_epochs(self) -> int:
        """Generations after the initial one (also ``max_iters``)."""
        return self.max_generations

    @property
    def epoch(self) -> int:
        """Generations done (also ``iter``)."""
        return self._generation

    max_iters = max_epochs
    iter = epoch

    @property
    def num_evaluated(self) -> int:
        """Number of distinct candidates evaluated so far."""
        return len(self.archive)

    @property
    def state_path(self) -> str:
        """``<work_dir>/search_state.json``."""
        return osp.join(self.runner.work_dir, STATE_FILE)

    # ---------------------------------------------------------------- run
    def run(self) -> List[dict]:
        """Search, write the outputs and return the front (as written)."""
        runner = self.runner
        if self.checkpoint is not None:
            self._checkpoint_id = load_weights(
                unwrap_model(runner.model), self.checkpoint)
        if self.resume and (state := read_state(self.state_path)):
            self.load_state(state)
        runner.call_hook('before_train')
        print_log(
            f'evolution search ({self.objective.name}): '
            f'{self.max_generations} generations after '
            f'{self.population_size} initial, {self.num_mutation} mutants + '
            f'{self.num_crossover} children each, cost range '
            f'{self.cost_range}, seed {self.seed}',
            logger='current')
        while self._generation <= self.max_generations:
            if self._pending is None:
                self._pending = self.propose()
                check_same_on_all_ranks(
                    [self.problem.to_dict(c) for c in self._pending],
                    f'generation {self._generation}')
                self._save_state()
            self._evaluate_pending()
            self._front = self.objective.front(self.archive.cost_acc())
            self._log_front()
            self._generation += 1
            self._pending = None
            self._save_state()
            self._write_json_outputs()
        front = self._write_json_outputs()
        if is_main_process() and len(self.archive):
            report.plot_search(
                osp.join(self.runner.work_dir, 'pareto.png'), self.archive,
                self._front, self.objective, self.problem.cost_label,
                self.max_generations + 1)
        runner.call_hook('after_train')
        return front

    # ---------------------------------------------------------- proposals
    def _in_range(self, candidate: Hashable) -> bool:
        low, high = self.cost_range or (-math.inf, math.inf)
        return low <= self.problem.cost(candidate) <= high

    def _fill(self, what: str, num: int, draw: Callable[[], Hashable],
              seen: set, out: List[Hashable]) -> None:
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

    def propose(self) -> List[Hashable]:
        """The new candidates of the current generation (uses the RNG).

        Generation 0: ``problem.initial()`` whatever its cost, then random
        candidates in ``cost_range``; later ones: mutants and children of
        the objective's parents, in ``cost_range``.
        """
        problem, rng = self.problem, self._rng
        seen = set(self.archive)
        out: List[Hashable] = []
        if self._generation == 0:
            for candidate in problem.initial():
                if len(out) < self.population_size and candidate not in seen:
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
        indices = self.objective.parents(self.archive.cost_acc(), self._front)
        return [self.archive.candidates[i] for i in indices]

    # --------------------------------------------------------- evaluation
    def _evaluate_pending(self) -> None:
        todo = [c for c in self._pending if c not in self.archive]
        total = len(self._pending)
        done = total - len(todo)
        start = time.time()
        unit = self.problem.cost_label
        for i, candidate in enumerate(todo):
            top1 = float(self.problem.evaluate(candidate))
            cost = float(self.problem.cost(candidate))
            self.archive.add(candidate, cost, top1, self._generation)
            elapsed = time.time() - start
            eta = elapsed / (i + 1) * (len(todo) - i - 1)
            print_log(
                f'generation {self._generation}/{self.max_generations} '
                f'[{done + i + 1}/{total}] {unit} {cost:.4f} top-1 '
                f'{top1:.2f}% | {len(self.archive)} evaluated, '
                f'eta {eta:.0f}s',
                logger='current')
            if self.save_interval and (i + 1) % self.save_interval == 0 \
                    and i + 1 < len(todo):
                self._save_state()

    def _log_front(self) -> None:
        lines = report.front_lines(self._generation, self.archive, self._front,
                                   self.objective, self.problem.to_dict,
                                   self.problem.cost_label)
        print_log('\n'.join(lines), logger='current')

    # -------------------------------------------------------------- state
    def settings(self) -> dict:
        """The settings a resumed search must share (but
        ``max_generations``)."""
        return dict(
            seed=self.seed,
            population_size=self.population_size,
            num_mutation=self.num_mutation,
            num_crossover=self.num_crossover,
            mutate_prob=self.mutate_prob,
            cost_range=None
            if self.cost_range is None else list(self.cost_range),
            max_generations=self.max_generations,
            checkpoint=self._checkpoint_id,
            **self.objective.settings())

    def state(self) -> SearchState:
        """The search state, JSON-serializable."""
        to_dict = self.problem.to_dict
        return SearchState(
            settings=self.settings(),
            generation=self._generation,
            pending=None
            if self._pending is None else [to_dict(c) for c in self._pending],
            rng_state=python_rng_state(self._rng),
            evaluated=self.archive.to_evaluated(to_dict),
            front=list(self._front))

    def load_state(self, state: SearchState) -> None:
        """Restore :meth:`state` (settings checked by
        :func:`~.state.check_settings`)."""
        check_settings(state.settings, self.settings())
        from_dict = self.problem.from_dict
        set_python_rng_state(self._rng, state.rng_state)
        self._generation = int(state.generation)
        self._pending = None if state.pending is None else [
            from_dict(c) for c in state.pending
        ]
        self.archive = Archive.from_evaluated(state.evaluated, from_dict)
        self._front = [int(i) for i in state.front]
        print_log(
            f'resumed: generation {self._generation}, {len(self.archive)} '
            'evaluated',
            logger='current')

    def _save_state(self) -> None:
        if is_main_process():
            os.makedirs(self.runner.work_dir, exist_ok=True)
            self.state().save(self.state_path)

    def _write_json_outputs(self) -> List[dict]:
        return report.write_outputs(self.runner.work_dir, self.archive,
                                    self._front, self.objective,
                                    self.problem.to_dict,
                                    self.problem.cost_key, is_main_process())
