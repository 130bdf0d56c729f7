"""The optimized sandwich step equals the plain-autograd formula.

The reference is the sandwich step written with plain autograd: every
slice's gradient goes through autograd's own accumulation, and the weight
normalization and binarization are the composed autograd operations (the
formula ``SandwichSupernet.train_step`` followed before slices added their
gradients into ``.grad`` in place and the weight backward was fused).
"""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import OptimWrapper

from nasbnn_mm.models.algorithms import TEACHER_MODES, SandwichSupernet
from nasbnn_mm.models.layers import (ColumnCycle, DynamicBinaryConv2d,
                                     binarization, dynamic_binary_conv,
                                     set_binarization, sign_ste, slice_weight,
                                     sliced_grad_accumulation, xnor_conv)
from nasbnn_mm.ops import training
from nasbnn_mm.testing import TINY_SPACE, LabelSample


def _composed_weight(weight, binary, weight_norm, bi_transform):
    """``binary_conv_weight`` as plain autograd operations (eq. 6 'paper',
    then ``alpha * sign`` with a detached alpha), the variance computed in
    the same two passes (so the forward is the same to the last bit)."""
    assert weight_norm is True and bi_transform is None
    flat = weight.flatten(1)
    centered = flat - flat.mean(dim=1, keepdim=True)
    var = torch.linalg.vector_norm(
        centered, dim=1, keepdim=True).square() / flat.shape[1]
    w = (centered * torch.rsqrt(var + 1e-5)).view_as(weight)
    if not binary:
        return w
    alpha = w.detach().abs().mean(dim=(1, 2, 3), keepdim=True)
    return sign_ste(w) * alpha


def _batch(n=8):
    generator = torch.Generator().manual_seed(1)
    return dict(
        inputs=torch.randn(n, 3, 16, 16, generator=generator),
        data_samples=[LabelSample(i % 4) for i in range(n)])


def _reference_step(model, data, optimizer):
    """One sandwich step with plain autograd; returns the gradients."""
    data = model.data_preprocessor(data, True)
    inputs = data['inputs']
    labels = model._labels(data['data_samples'], inputs.device)
    set_binarization(model, weights=True, activations=True)
    with binarization(model, *TEACHER_MODES[model.teacher]):
        teacher = model.logits(inputs, model.largest)
        loss = F.cross_entropy(
            teacher, labels, label_smoothing=model.label_smoothing)
    loss.backward()
    for _, arch in model.sample_students():
        model._student_loss(
            model.logits(inputs, arch), teacher.detach(), labels).backward()
    grads = {
        k: p.grad.clone()
        for k, p in model.named_parameters() if p.grad is not None
    }
    optimizer.step()
    optimizer.zero_grad()
    return grads


@pytest.mark.parametrize('kernels', ['extension', 'torch'])
@pytest.mark.parametrize('group_slicing', ['cyclic', 'prefix'])
@pytest.mark.parametrize('optimizer', ['sgd', 'adam'])
def test_step_equals_plain_autograd(group_slicing, optimizer, kernels,
                                    monkeypatch):
    """With PyTorch operations only the step's gradients equal the
    reference's to 1e-6 of their scale; the extension's training kernels
    (weight normalization, RSign, RPReLU, the students' convolutions on
    the XNOR-popcount kernels; the reference convolves with F.conv2d) sum
    in other orders (forward ~1e-7 apart), which the LSQ steps' gradients
    amplify to a few 1e-6, so 2e-5 there; so do the table lookups (the
    Bi-Teacher's convolutions, the weight and data gradients), and Adam's
    first update, lr * g / (|g| + eps), moves a few weights ~2e-6 apart
    for gradients near eps, so parameters agree to 5e-6 there."""
    use_ext = kernels == 'extension'
    monkeypatch.setattr(training, '_enabled', use_ext)
    packed = []  # whether each binary-weight conv of the steps was packed
    pack_operands = xnor_conv._packed_operands

    def counted(*args):
        operands = pack_operands(*args)
        packed.append(operands is not None)
        return operands

    monkeypatch.setattr(xnor_conv, '_packed_operands', counted)
    grad_tol, param_tol = (2e-5, 5e-6) if use_ext else (1e-6, 1e-6)
    torch.manual_seed(0)
    model = SandwichSupernet(
        backbone=dict(
            type='SuperBNN',
            search_space=TINY_SPACE,
            group_slicing=group_slicing))
    with torch.no_grad():  # non-identity kernel and Bi-Transformations
        for name, p in model.named_parameters():
            if name.endswith(('.matrix', '.theta')):
                p.add_(0.1 * torch.randn_like(p))
    reference = copy.deepcopy(model)

    def make(m):
        params = m.parameters()
        if optimizer == 'sgd':
            return torch.optim.SGD(params, lr=0.1, momentum=0.9)
        return torch.optim.Adam(params, lr=1e-2)

    wrapper = OptimWrapper(make(model))
    ref_optim = make(reference)
    in_place = []
    for m in model.modules():
        if isinstance(m, DynamicBinaryConv2d):
            m.register_forward_pre_hook(
                lambda m, args: in_place.append(m.in_place_grad))
    for step in range(3):
        grads = {}

        def record():
            grads.update({
                k: p.grad.clone()
                for k, p in model.named_parameters() if p.grad is not None
            })

        model.train_step(_batch(), wrapper, before_step=record)
        with monkeypatch.context() as patch:
            patch.setattr(dynamic_binary_conv, 'binary_conv_weight',
                          _composed_weight)
            patch.setattr(dynamic_binary_conv, 'xnor_conv2d', F.conv2d)
            expected = _reference_step(reference, _batch(), ref_optim)
        assert grads.keys() == expected.keys()
        if step == 0:  # later steps start from (1e-7) different weights
            for k in expected:
                scale = expected[k].abs().max().item()
                torch.testing.assert_close(
                    grads[k],
                    expected[k],
                    atol=grad_tol * scale,
                    rtol=0,
                    msg=k)
        # rounding differences do not grow over steps
        for (k, p), q in zip(model.named_parameters(), reference.parameters()):
            torch.testing.assert_close(p, q, atol=param_tol, rtol=0, msg=k)
    # the students' convolutions ran on the popcount kernels (extension)
    assert (packed and all(packed)) if use_ext else not packed
    # every binary conv took the in-place path during the steps only
    assert in_place and all(in_place)
    assert not any(m.in_place_grad for m in model.modules()
                   if isinstance(m, DynamicBinaryConv2d))


@pytest.mark.parametrize('cycle',
                         [None, (1, 2), (2, 2), (1, 3), (2, 3), (3, 3)])
def test_slice_weight_gradient(cycle):
    """Rows, columns and gradients of a prefix or a cyclic slice, against
    the rule written out with an index (5 blocks of 1 row, 3 of 2 or 2 of
    3: whole cycles, then a partial one, or only a partial one)."""
    torch.manual_seed(0)
    weight = torch.randn(7, 7, 3, 3, requires_grad=True)
    rows, columns = (5, 2) if cycle is None or cycle[0] == 1 else (6, 2)
    column = torch.arange(columns).expand(rows, -1)
    if cycle is not None:
        cycle = ColumnCycle(*cycle)
        block = torch.arange(rows)[:, None] // cycle.block_rows
        column = column + block % cycle.blocks * columns
    expected_value = weight[:rows].gather(
        1, column[:, :, None, None].expand(-1, -1, 3, 3))
    grad_out = torch.randn(rows, columns, 3, 3)
    torch.testing.assert_close(
        slice_weight(weight, rows, columns, cycle),
        expected_value,
        atol=0,
        rtol=0)
    expected = torch.zeros_like(weight)
    for r in range(rows):
        expected[r, column[r]] += 2 * grad_out[r]
    for in_place in (False, True):
        weight.grad = None
        for _ in range(2):  # the second call adds to the first one's
            out = slice_weight(
                weight, rows, columns, cycle, in_place_grad=in_place)
            assert out.grad_fn is not None
            torch.testing.assert_close(out, expected_value, atol=0, rtol=0)
            out.mul(grad_out).sum().backward()
        torch.testing.assert_close(weight.grad, expected, atol=0, rtol=0)


def test_full_slice_first_gradient_is_copied():
    weight = torch.randn(4, 2, 3, 3, requires_grad=True)
    grad_out = torch.randn(4, 2, 3, 3)
    slice_weight(weight, 4, 2, in_place_grad=True).backward(grad_out)
    assert torch.equal(weight.grad, grad_out)
    assert weight.grad.data_ptr() != grad_out.data_ptr()


def test_context_sets_and_restores_the_switch():
    conv = DynamicBinaryConv2d(8, 8, [3, 5])
    with sliced_grad_accumulation(conv):
        assert conv.in_place_grad is True
        conv(torch.randn(1, 6, 5, 5), 4, 3).sum().backward()
    assert conv.in_place_grad is False
    assert conv.weight.grad[4:].abs().sum() == 0
    assert conv.weight.grad[:4, :6, 1:4, 1:4].abs().sum() > 0
