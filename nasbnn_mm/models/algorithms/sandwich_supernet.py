"""Supernet training with the sandwich rule and the Bi-Teacher.

NAS-BNN (https://arxiv.org/abs/2408.15484), sec. 3.3.1, eq. (4): every
iteration trains the largest subnet as the teacher on label-smoothed
cross-entropy, then the smallest and ``num_random`` random subnets with
binary weights on the KL divergence to the teacher's detached predictions
(in-place distillation); the gradients of all of them accumulate into one
optimizer step.
"""
import random
from typing import Callable, Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper
from torch import Tensor

from nasbnn_mm.nas import ArchSpec, ArchType, count_arch_ops, sample_random
from nasbnn_mm.registry import MODELS
from nasbnn_mm.utils import UserError
from ..backbones import resolve_arch
from ..layers import (CONV_OPERAND_DTYPES, binarization, conv_operand_dtype,
                      set_binarization, sliced_grad_accumulation)
from ..supernet import SupernetHead

__all__ = ['SandwichSupernet', 'TEACHER_MODES']

# (binary weights, binary activations) of each teacher kind, sec. 3.3.1.
TEACHER_MODES = {
    'FWBA': (False, True),  # Bi-Teacher: full-precision weights
    'BWBA': (True, True),
    'FWFA': (False, False),
}


@MODELS.register_module()
class SandwichSupernet(BaseModel):
    """A binary supernet classifier trained with the sandwich rule.

    ``train_step`` runs one sandwich iteration (see the module docstring);
    ``forward`` in ``'predict'``/``'tensor'`` mode runs the subnet set by
    :meth:`set_subnet` (the validation loop sets smallest, largest and a
    middle subnet in turn). The keys of the state dict are
    ``backbone.*`` and ``head.fc.*``, like an MMPretrain ``ImageClassifier``
    with a ``LinearClsHead``, so exported subnets load into one.

    Args:
        backbone (dict): A :class:`SuperBNN` config.
        teacher (str): 'FWBA' (Bi-Teacher), 'BWBA' or 'FWFA'.
            Defaults to 'FWBA'.
        distill (bool): In-place distillation; False trains the students
            on the labels too (ablation). Defaults to True.
        num_random (int): Random subnets per iteration. Defaults to 2.
        non_decreasing (bool): Sample under the Non-Decreasing constraint;
            False for the ablation. Defaults to True.
        label_smoothing (float): Of the teacher's cross-entropy.
            Defaults to 0.1.
        seed (int): Seed of the subnet sampler; every rank uses the same,
            so all ranks train the same subnets. Defaults to 0.
        conv_operand_dtype (str): 'float32', or 'bfloat16': the training
            step's float convolutions (the Bi-Teacher's forward, every
            backward) take bfloat16 operands and give float32 results
            (:mod:`~nasbnn_mm.models.layers.conv_operands`; opt-in, our
            choice, see ``docs/deviations.md``). Defaults to 'float32'.
        data_preprocessor (dict, optional): E.g. MMPretrain's
            ``ClsDataPreprocessor``.
        init_cfg (dict, optional): Initialization config.
    """

    def __init__(self,
                 backbone: dict,
                 teacher: str = 'FWBA',
                 distill: bool = True,
                 num_random: int = 2,
                 non_decreasing: bool = True,
                 label_smoothing: float = 0.1,
                 seed: int = 0,
                 conv_operand_dtype: str = 'float32',
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if teacher not in TEACHER_MODES:
            raise UserError(f'teacher: {teacher!r} not in '
                            f'{sorted(TEACHER_MODES)}')
        if num_random < 0:
            raise UserError(f'num_random: {num_random} must be >= 0')
        if conv_operand_dtype not in CONV_OPERAND_DTYPES:
            raise UserError(f'conv_operand_dtype: {conv_operand_dtype!r} not '
                            f'in {sorted(CONV_OPERAND_DTYPES)}')
        # our types resolve in our scope whatever the config's default scope
        self.backbone = MODELS.build(dict(backbone, _scope_='nasbnn_mm'))
        self.space = self.backbone.space
        widest = max(self.space.stages[-1].channels)
        self.head = SupernetHead(widest, self.space.num_classes)
        self.teacher = teacher
        self.distill = distill
        self.num_random = num_random
        self.non_decreasing = non_decreasing
        self.label_smoothing = label_smoothing
        self.rng = random.Random(seed)
        self.conv_operand_dtype = conv_operand_dtype
        self.largest = self.resolve_subnet('largest')
        self.smallest = self.resolve_subnet('smallest')
        self.subnet = self.largest

    def resolve_subnet(self, arch: ArchType) -> ArchSpec:
        """A subnet of the space (see :func:`~nasbnn_mm.models.resolve_arch`);
        ``'smallest'``/``'largest'`` are this supernet's sandwich extremes
        (under its ``non_decreasing`` setting); a spec that breaks the
        constraint this supernet was trained under is logged as a warning."""
        return resolve_arch(arch, self.space, self.non_decreasing,
                            self.non_decreasing)

    def set_subnet(self, arch: ArchType) -> None:
        """Set the subnet that ``forward`` runs outside of training."""
        self.subnet = self.resolve_subnet(arch)

    def subnet_ops(self, arch: ArchSpec) -> float:
        """OPs of ``arch`` in millions (FLOPs + Int8OPs/8 + BOPs/64)."""
        return count_arch_ops(arch, self.space).ops / 1e6

    def logits(self, inputs: Tensor, arch: ArchSpec) -> Tensor:
        """(N, C, H, W) images -> (N, num_classes) logits of ``arch``."""
        return self.head(self.backbone(inputs, arch)[-1])

    def forward(self,
                inputs: Tensor,
                data_samples: Optional[list] = None,
                mode: str = 'tensor'):
        """Run :attr:`subnet`.

        Args:
            inputs (Tensor): (N, C, H, W).
            data_samples (list, optional): MMPretrain ``DataSample``s.
            mode (str): 'tensor' returns logits; 'predict' writes scores
                and labels into ``data_samples``; 'loss' returns the
                cross-entropy of :attr:`subnet` (training uses
                :meth:`train_step`).
        """
        logits = self.logits(inputs, self.subnet)
        if mode == 'tensor':
            return logits
        if mode == 'loss':
            return dict(
                loss=F.cross_entropy(
                    logits, self._labels(data_samples, logits.device)))
        if mode == 'predict':
            scores = logits.softmax(dim=1)
            for sample, score in zip(data_samples, scores):
                sample.set_pred_score(score).set_pred_label(score.argmax())
            return data_samples
        raise ValueError(f'mode: {mode!r} not in (tensor, loss, predict)')

    @staticmethod
    def _labels(data_samples: list, device: torch.device) -> Tensor:
        return torch.cat([s.gt_label for s in data_samples]).to(device)

    def sample_students(self) -> List[Tuple[str, ArchSpec]]:
        """The smallest subnet and ``num_random`` random ones."""
        students = [('smallest', self.smallest)]
        for i in range(self.num_random):
            students.append((f'random{i}',
                             sample_random(self.space, self.rng,
                                           self.non_decreasing)))
        return students

    def _student_loss(self, logits: Tensor, soft_target: Tensor,
                      labels: Tensor) -> Tensor:
        if self.distill:
            return F.kl_div(
                F.log_softmax(logits, dim=1),
                F.softmax(soft_target, dim=1),
                reduction='batchmean')
        return F.cross_entropy(logits, labels)

    def train_step(
            self,
            data: Union[dict, tuple, list],
            optim_wrapper: OptimWrapper,
            before_step: Optional[Callable[[],
                                           None]] = None) -> Dict[str, Tensor]:
        """One sandwich iteration: 2 + ``num_random`` forward/backward
        passes, then one optimizer step.

        Args:
            data (dict): A batch from the dataloader.
            optim_wrapper (OptimWrapper): The optimizer wrapper.
            before_step (Callable, optional): Called between the last
                backward and the step (e.g. the gradient all-reduce of
                :class:`SandwichDataParallel`).

        Returns:
            dict[str, Tensor]: Detached losses to log.
        """
        data = self.data_preprocessor(data, True)
        inputs = data['inputs']
        labels = self._labels(data['data_samples'], inputs.device)
        log_vars = {}
        set_binarization(self, weights=True, activations=True)
        # NOTE: slices add their gradients into the shared weights' .grad
        # directly (one pass over the slice instead of three over the
        # weight); the data-parallel wrapper reduces .grad in before_step.
        operands = CONV_OPERAND_DTYPES[self.conv_operand_dtype]
        with optim_wrapper.optim_context(self), sliced_grad_accumulation(
                self), conv_operand_dtype(operands):
            weights, activations = TEACHER_MODES[self.teacher]
            with binarization(self, weights, activations):
                teacher_logits = self.logits(inputs, self.largest)
                loss = F.cross_entropy(
                    teacher_logits,
                    labels,
                    label_smoothing=self.label_smoothing)
            optim_wrapper.backward(loss)
            log_vars['loss_teacher'] = loss.detach()
            soft_target = teacher_logits.detach()
            for name, arch in self.sample_students():
                loss = self._student_loss(
                    self.logits(inputs, arch), soft_target, labels)
                optim_wrapper.backward(loss)
                log_vars[f'loss_{name}'] = loss.detach()
        if before_step is not None:
            before_step()
        optim_wrapper.step()
        optim_wrapper.zero_grad()
        log_vars['loss'] = sum(log_vars.values())
        return log_vars
