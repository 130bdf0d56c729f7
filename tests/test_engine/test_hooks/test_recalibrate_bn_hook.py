import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import Runner

from nasbnn_mm.engine.hooks import RecalibrateBNHook, WeightsOnlyCheckpointHook
from nasbnn_mm.testing import toy_train_dataloader


class ConvBNModel(BaseModel):

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, bias=False)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, inputs, targets=None, mode='tensor'):
        outputs = self.bn(self.conv(inputs)).mean(dim=(2, 3))
        if mode == 'loss':
            return dict(loss=((outputs - targets)**2).mean())
        return outputs


def _dataset():
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(24, 3, 6, 6, generator=generator) * 2 + 1
    targets = torch.randn(24, 4, generator=generator)
    return [dict(inputs=x, targets=y) for x, y in zip(inputs, targets)]


def _runner(tmp_path, hooks, max_epochs=2):
    torch.manual_seed(0)
    return Runner(
        model=ConvBNModel(),
        work_dir=str(tmp_path),
        train_dataloader=toy_train_dataloader(_dataset()),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.5)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        custom_hooks=[WeightsOnlyCheckpointHook()] + hooks,
        randomness=dict(seed=0),
        experiment_name=f'recal_{tmp_path.name}')


def _average_over_first_batches(runner, num_batches):
    """Mean of the per-batch BN input means over the first batches."""
    means = []
    with torch.no_grad():
        for i, batch in enumerate(runner.train_dataloader):
            if i == num_batches:
                break
            means.append(
                runner.model.conv(batch['inputs']).mean(dim=(0, 2, 3)))
    return torch.stack(means).mean(0)


def test_last_epoch_statistics_are_averages_of_training_batches(tmp_path):
    runner = _runner(tmp_path, [RecalibrateBNHook(num_batches=3)])
    runner.train()
    # The sampler keeps the last epoch's order: the hook used these batches.
    expected = _average_over_first_batches(runner, 3)
    torch.testing.assert_close(runner.model.bn.running_mean, expected)
    assert runner.model.bn.num_batches_tracked.item() == 3
    assert runner.model.bn.momentum == 0.1 and runner.model.training
    # The checkpoint of that epoch is written after the recalibration.
    saved = torch.load(tmp_path / 'epoch_2.pth', weights_only=True)
    torch.testing.assert_close(saved['state_dict']['bn.running_mean'],
                               expected)


def test_without_the_hook_statistics_are_running_averages(tmp_path):
    runner = _runner(tmp_path, [])
    runner.train()
    expected = _average_over_first_batches(runner, 3)
    assert not torch.allclose(runner.model.bn.running_mean, expected)


def test_interval_and_last_epoch(tmp_path, monkeypatch):
    hook = RecalibrateBNHook(num_batches=1, interval=2)
    epochs = []
    recalibrate = hook.recalibrate

    def spy(runner):
        epochs.append(runner.epoch)
        return recalibrate(runner)

    monkeypatch.setattr(hook, 'recalibrate', spy)
    _runner(tmp_path, [hook], max_epochs=3).train()
    # runner.epoch is the number of finished epochs minus one here.
    assert epochs == [1, 2]


@pytest.mark.parametrize('kwargs, message', [
    (dict(num_batches=0), 'num_batches: 0 must be >= 1'),
    (dict(interval=0), 'interval: 0 must be >= 1'),
    (dict(forward_mode='predict'), "forward_mode: 'predict' not in"),
])
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RecalibrateBNHook(**kwargs)


def test_loss_forward_recalibrates_every_bn_of_a_two_stage_detector():
    """mode='tensor' cannot reach the RoI head (it runs on the RPN's
    proposals); mode='loss' runs every layer, the box head's binary FC
    blocks and their BN included."""
    from mmdet.testing import demo_mm_inputs
    from mmengine.config import Config
    from mmengine.registry import MODELS, DefaultScope

    from nasbnn_mm.engine import loss_forward, recalibrate_bn
    cfg = Config.fromfile('configs/nasbnn_det/'
                          'faster-rcnn_nasbnn-digits-l_binary-fpn-head_'
                          '6e_digits.py')
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmdet'):
        import mmdet.models  # noqa: F401 (registers the detector parts)

        import nasbnn_mm.models.detection  # noqa: F401
        torch.manual_seed(0)
        det = MODELS.build(cfg.model)
        batches = [
            demo_mm_inputs(
                batch_size=2,
                image_shapes=(3, 64, 64),
                num_items=[2, 1],
                num_classes=10) for _ in range(3)
        ]
        used = recalibrate_bn(det, batches, loss_forward(det), 2)
    norms = [(n, m) for n, m in det.named_modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert used == 2
    assert any(n.startswith('roi_head.') for n, _ in norms)
    for name, norm in norms:
        # the RPN's conv block runs once per FPN level
        calls = len(cfg.model.rpn_head.anchor_generator.strides) \
            if name.startswith('rpn_head.') else 1
        assert norm.num_batches_tracked.item() == used * calls, name
        assert norm.momentum == 0.1, name  # restored
    assert det.training
