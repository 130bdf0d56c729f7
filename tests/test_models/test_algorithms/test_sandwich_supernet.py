from unittest import mock

import pytest
import torch
from mmengine.optim import OptimWrapper

from nasbnn_mm.models.algorithms import SandwichSupernet
from nasbnn_mm.models.backbones import base_nasbnn
from nasbnn_mm.models.layers import DynamicBinaryConv2d, RSign
from nasbnn_mm.nas import count_arch_ops
from nasbnn_mm.testing import TINY_ARCH, TINY_SPACE, LabelSample


def _model(**kwargs):
    torch.manual_seed(0)
    return SandwichSupernet(
        backbone=dict(type='SuperBNN', search_space=TINY_SPACE), **kwargs)


def _batch(n=8):
    generator = torch.Generator().manual_seed(1)
    return dict(
        inputs=torch.randn(n, 3, 16, 16, generator=generator),
        data_samples=[LabelSample(i % 4) for i in range(n)])


def _optim(model):
    return OptimWrapper(torch.optim.Adam(model.parameters(), lr=1e-2))


def _record_modes(model):
    """Record (binary weights, binary activations, OPs) per forward."""
    modes = []
    convs = [m for m in model.modules() if isinstance(m, DynamicBinaryConv2d)]
    signs = [m for m in model.modules() if isinstance(m, RSign)]
    first_conv = model.backbone.stem.conv

    def hook(module, args):
        modes.append(({c.binary_weights
                       for c in convs}, {s.binary
                                         for s in signs}, args[0].shape[1]))

    first_conv.register_forward_pre_hook(hook)
    return modes


@pytest.mark.parametrize('teacher,expected', [('FWBA', (False, True)),
                                              ('BWBA', (True, True)),
                                              ('FWFA', (False, False))])
def test_teacher_and_students_run_in_their_precision(teacher, expected):
    model = _model(teacher=teacher)
    modes = _record_modes(model)
    stem_widths = []
    model.backbone.stem.conv.register_forward_hook(
        lambda m, a, out: stem_widths.append(out.shape[1]))
    log_vars = model.train_step(_batch(), _optim(model))
    assert len(modes) == 4  # teacher + smallest + 2 random
    weights, activations, _ = modes[0]
    assert weights == {expected[0]} and activations == {expected[1]}
    for weights, activations, _ in modes[1:]:
        assert weights == {True} and activations == {True}
    # the teacher is the largest subnet, the first student the smallest
    assert stem_widths[0] == 16 and stem_widths[1] == 8
    assert set(log_vars) == {
        'loss', 'loss_teacher', 'loss_smallest', 'loss_random0', 'loss_random1'
    }
    # switches are back to binary after the step
    assert all(m.binary_weights for m in model.modules()
               if isinstance(m, DynamicBinaryConv2d))


def test_one_step_updates_weights_transforms_and_lsq_step():
    model = _model()
    before = {k: v.clone() for k, v in model.named_parameters()}
    model.train_step(_batch(), _optim(model))
    changed = {
        k
        for k, v in model.named_parameters() if not torch.equal(v, before[k])
    }
    assert 'backbone.stages.0.0.conv1.weight' in changed
    assert 'head.fc.weight' in changed
    assert any('bi_transforms' in k for k in changed)
    assert any('kernel_transforms' in k for k in changed)
    assert any(
        k.startswith('backbone.stem.conv.') and 'quantizer' in k
        for k in changed)


def test_bf16_conv_operands_train_like_float32():
    """bfloat16 operands change the step's numbers (in a binary network a
    weight perturbation of 1e-4, well under one Adam step, already flips
    signs and changes the step's gradients), not what it learns: both
    precisions fit a batch alike (the median loss of steps 21-30 under
    half the first: single steps spike to ~2x their neighbours)."""
    losses = {}
    for dtype in ('float32', 'bfloat16'):
        model = _model(conv_operand_dtype=dtype)
        optim, batch = _optim(model), _batch()
        steps = [
            model.train_step(batch, optim)['loss_teacher'] for _ in range(30)
        ]
        losses[dtype] = steps[0], torch.stack(steps[20:]).median()
    (first32, last32), (first16, last16) = losses.values()
    assert not torch.equal(first16, first32)
    torch.testing.assert_close(first16, first32, rtol=1e-2, atol=0)
    assert last32 < 0.5 * first32 and last16 < 0.5 * first16
    with pytest.raises(ValueError, match="conv_operand_dtype: 'float16'"):
        _model(conv_operand_dtype='float16')


def test_distillation_uses_teacher_soft_labels():
    model = _model(num_random=0)
    batch = _batch()
    log_vars = model.train_step(batch, _optim(model))
    # KL of the smallest against the teacher is not the CE on the labels
    assert log_vars['loss_smallest'] >= 0
    no_kd = _model(num_random=0, distill=False)
    log_vars_no_kd = no_kd.train_step(batch, _optim(no_kd))
    assert not torch.isclose(log_vars['loss_smallest'],
                             log_vars_no_kd['loss_smallest'])


def test_sampler_is_seeded_and_ops_are_ordered():
    a, b = _model(seed=3), _model(seed=3)
    assert [s for _, s in a.sample_students()] == \
        [s for _, s in b.sample_students()]
    assert a.subnet_ops(a.smallest) < a.subnet_ops(a.largest)
    assert a.subnet_ops(
        a.largest) == count_arch_ops(a.largest, a.space).ops / 1e6


def test_predict_and_bad_arguments():
    model = _model()
    model.eval()
    logits = model(_batch()['inputs'])
    assert logits.shape == (8, 4)
    with pytest.raises(ValueError, match="teacher: 'XX'"):
        _model(teacher='XX')
    with pytest.raises(ValueError, match='mode'):
        model(_batch()['inputs'], mode='bad')


@pytest.mark.parametrize('non_decreasing, warned', [(True, True),
                                                    (False, False)])
def test_subnet_breaking_the_constraint_it_trained_under_warns(
        non_decreasing, warned):
    # Stage 0's second layer (16) is narrower than its first (24).
    arch = dict(
        stem='c16_k3_g1', stages=[['c24_k3_g1', 'c16_k3_g1'], ['c24_k3_g2']])
    model = _model(non_decreasing=non_decreasing)
    # The logger's handler may hold a stream from before capture: spy on it.
    with mock.patch.object(base_nasbnn, 'print_log') as log:
        spec = model.resolve_subnet(arch)
        model.resolve_subnet(TINY_ARCH)
    assert spec.stages[0][1].channels == 16
    messages = [call.args[0] for call in log.call_args_list]
    assert messages == ([
        'stages[0][1]: channels 16 < 24 of stages[0][0] '
        'breaks the non-decreasing constraint; allowed: '
        '{24}: a supernet trained under that constraint '
        '(eq. 3) never sampled this subnet'
    ] if warned else [])
