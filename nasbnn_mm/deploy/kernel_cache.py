"""What :class:`~nasbnn_mm.deploy.PackedNASBNN` derives from its modules
for the kernels, and the checks that tell when to derive it again.

The checks run on every forward, so they are one extension call each
(:func:`~nasbnn_mm.ops.fused.tensor_watch`) plus, for the stem, an
identity check of its module dictionaries done in C (``map`` over
``operator.is_``): in the benchmark's round-robin, where the interpreter's
memory is out of the caches, the Python loops they replace cost A ~3 % of
its forward (docs/benchmarks_packed.md, stop 26).
"""
import itertools
import operator
from typing import Dict, List, Optional, Sequence, Tuple

import torch.nn as nn
from torch import Tensor

from nasbnn_mm.ops import QuantizedStemParams
from nasbnn_mm.ops import fused as ops
from nasbnn_mm.ops.head import head_weight_blocks
from nasbnn_mm.ops.stem import quantized_stem_args
from .packed_layers import PackedSeparableBlock, PlanTracked
from .packed_stem import fold_quantized_stem

__all__ = ['ModuleWatch', 'KernelCache']


class ModuleWatch:
    """Whether a module tree changed since the watch was made: one of its
    tensors written in place or moved to another storage (one extension
    call), or a parameter, buffer or submodule replaced (an identity check
    of every entry of their dicts, done in C)."""

    def __init__(self, module: nn.Module) -> None:
        entries = [(d, name, value) for m in module.modules()
                   for d in (m._parameters, m._buffers, m._modules)
                   for name, value in d.items()]
        self._dicts, self._names, self._values = (
            [list(column) for column in zip(*entries)] if entries else
            ([], [], []))
        self.tensors = [v for v in self._values if isinstance(v, Tensor)]
        self._watch = ops.tensor_watch(self.tensors)

    def same_entries(self) -> bool:
        """No parameter, buffer or submodule replaced."""
        return all(
            map(operator.is_, map(dict.get, self._dicts, self._names),
                self._values))

    def changed(self) -> bool:
        return not self.same_entries() or self._watch.changed()


class KernelCache:
    """The folded stem, the blocks' kernel arguments and their
    :func:`~nasbnn_mm.ops.fused.block_chain`, each rebuilt when what it was
    derived from changed:

    - the folded stem (:meth:`stem_params`): for another image size; when
      a stem tensor was written in place or moved to another storage; or
      when a stem module's parameter, buffer or submodule was replaced;
    - the kernel plan (:meth:`block_plan`): when a packed layer changed
      (:class:`PlanTracked` epoch) or a weight's bits were written in
      place;
    - the classifier's weight blocks (:meth:`head`): when the classifier
      changed as the stem can;
    - the logits in one call (:meth:`fast_logits`, made by
      :meth:`prepare_logits`): when any of the above was rebuilt, for
      another input shape, or when what they derive from changed (checked
      by the object itself, :func:`~nasbnn_mm.ops.fused.packed_logits`).

    Holds extension objects, so it cannot be pickled: copies and pickles of
    a ``PackedNASBNN`` get a new, empty one.
    """

    def __init__(self) -> None:
        self.stem: Optional[QuantizedStemParams] = None
        self._stem_size: Optional[Tuple[int, ...]] = None
        self._stem_module: Optional[nn.Module] = None
        self._stem_watch: Optional[ModuleWatch] = None
        # Advanced by every rebuild of the stem, the plan or the head.
        self._generation = 0
        self._logits = None
        self._logits_key: Optional[tuple] = None
        # Whether the last forward ran its batch in one chunk, every block
        # in the chain (set by PackedNASBNN).
        self.chained = False
        self._head: Optional[Tuple[Tensor, Tensor]] = None
        self._head_fc: Optional[nn.Linear] = None
        self._head_watch: Optional[ModuleWatch] = None
        self.plan: List[Tuple[PackedSeparableBlock, tuple]] = []
        self.chain = None
        # The first block's (groups, RSign shift): the stem packs for it.
        self.first_pack: Tuple[int, Optional[Tensor]] = (1, None)
        self._plan_epoch: Optional[int] = None
        self._plan_tensors: List[Tensor] = []
        self._plan_watch = None
        self._keep: Dict[tuple, Optional[List[int]]] = {}

    def stem_params(self, stem: nn.Module, x: Tensor) -> QuantizedStemParams:
        """``stem`` folded for :func:`~nasbnn_mm.ops.quantized_stem`
        (:func:`fold_quantized_stem`) for images like ``x``."""
        if (x.shape[1:] == self._stem_size and stem is self._stem_module
                and not self._stem_watch.changed()):
            return self.stem
        self.stem = fold_quantized_stem(stem, x)
        self._stem_size = x.shape[1:]
        self._stem_module, self._stem_watch = stem, ModuleWatch(stem)
        self._generation += 1
        return self.stem

    def head(self, fc: nn.Linear) -> Tuple[Tensor, Tensor]:
        """``fc``'s :func:`~nasbnn_mm.ops.head.head_weight_blocks` and its
        bias (zeros without one), for
        :func:`~nasbnn_mm.ops.head.classifier_head`."""
        if (self._head is None or fc is not self._head_fc
                or self._head_watch.changed()):
            weight = fc.weight.detach()
            bias = (
                weight.new_zeros(weight.shape[0])
                if fc.bias is None else fc.bias.detach().contiguous())
            self._head = (head_weight_blocks(weight), bias)
            self._head_fc, self._head_watch = fc, ModuleWatch(fc)
            self._generation += 1
        return self._head

    def fast_logits(self, stem: nn.Module, fc: nn.Linear,
                    x: Tensor) -> Optional[Tensor]:
        """The logits of ``x`` in one extension call, if
        :meth:`prepare_logits` made that call for the current stem, plan,
        classifier and input shape and nothing changed since; else None."""
        if (self._logits_key != (x.shape, self._generation, PlanTracked.epoch)
                or stem is not self._stem_module or fc is not self._head_fc
                or not self._stem_watch.same_entries()
                or not self._head_watch.same_entries()):
            return None
        return self._logits.run(x)

    def prepare_logits(self, x: Tensor) -> None:
        """Make :meth:`fast_logits`'s call for inputs shaped as ``x`` from
        the stem, plan and head just used (the blocks all in the chain, the
        batch in one chunk)."""
        watched = (
            self._stem_watch.tensors + self._plan_tensors +
            self._head_watch.tensors)
        blocks = [args for _, args in self.plan]
        self._logits = ops.packed_logits(
            quantized_stem_args(self.stem, *self.first_pack), blocks,
            *self._head, watched)
        self._logits_key = (x.shape, self._generation, PlanTracked.epoch)

    def block_plan(
        self, stages: Sequence[Sequence[PackedSeparableBlock]]
    ) -> List[Tuple[PackedSeparableBlock, tuple]]:
        """Per block of ``stages`` (in order): the block and its
        ``binary_block_args``; :attr:`chain` runs them."""
        if (PlanTracked.epoch == self._plan_epoch
                and not self._plan_watch.changed()):
            return self.plan
        blocks = [block for stage in stages for block in stage]
        plan = []
        for k, block in enumerate(blocks):
            nxt = blocks[k + 1] if k + 1 < len(blocks) else None
            plan.append((block,
                         ops.binary_block_args(
                             block.conv1.params(), block.conv2.params(),
                             block.sign2.bias, block.stride == 2,
                             0 if nxt is None else nxt.conv1.groups,
                             None if nxt is None else nxt.sign1.bias)))
        self.plan = plan
        self.chain = ops.block_chain([args for _, args in plan])
        self._keep.clear()  # the blocks' strides may have changed
        self.first_pack = (blocks[0].conv1.groups, blocks[0].sign1.bias)
        # NOTE: read after building: params() may cache blocked weights,
        # which advances the epoch.
        self._plan_tensors = [
            conv.weight_bits for block in blocks
            for conv in (block.conv1, block.conv2)
        ]
        self._plan_watch = ops.tensor_watch(self._plan_tensors)
        self._plan_epoch = PlanTracked.epoch
        self._generation += 1
        return plan

    def chain_outputs(self, stages: Sequence[Sequence[PackedSeparableBlock]],
                      height: int, width: int,
                      indices: Sequence[int]) -> Optional[List[int]]:
        """The blocks whose outputs are the stages ``indices`` (stem output
        ``height`` x ``width``); None if a stride-2 block meets an odd size
        (the fused epilogue pools even sizes only)."""
        key = (height, width, tuple(indices))
        if key not in self._keep:
            strides = [[block.stride for block in stage] for stage in stages]
            ends = list(itertools.accumulate(len(s) for s in strides))
            sizes = [height, width]
            for stride in itertools.chain(*strides):
                if stride == 2 and (sizes[0] % 2 or sizes[1] % 2):
                    break
                sizes = [v // stride for v in sizes]
            else:
                self._keep[key] = [
                    end - 1 for i, end in enumerate(ends) if i in indices
                ]
        return self._keep.setdefault(key, None)
