# NAS-BNN supernet on the embedded digits (32x32, 10 classes), 2 CPU cores.
# The paper's recipe (Adam, cosine, label smoothing 0.1, weight decay on
# conv/linear weights only, sandwich rule with the Bi-Teacher) scaled down.
_base_ = [
    '../_base_/datasets/digits_cls.py', '../_base_/default_runtime_cls.py',
    '../_base_/schedules/supernet_adam.py'
]

model = dict(
    type='nasbnn_mm.SandwichSupernet',
    backbone=dict(type='nasbnn_mm.SuperBNN', search_space='nasbnn_digits'),
    teacher='FWBA',
    distill=True,
    num_random=2,
    non_decreasing=True,
    label_smoothing=0.1,
    seed=0)
# Under a launcher (torchrun, GPUs or CPUs) the sandwich step averages its
# accumulated gradients once per step, as in the ImageNet config.
model_wrapper_cfg = dict(type='nasbnn_mm.SandwichDataParallel')

train_dataloader = dict(batch_size=64)
optim_wrapper = dict(optimizer=dict(lr=2e-3))
max_epochs = 40
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.1,
        by_epoch=True,
        begin=0,
        end=2,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        by_epoch=True,
        begin=2,
        end=max_epochs,
        T_max=max_epochs - 2,
        convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=10)
default_hooks = dict(checkpoint=dict(interval=10), logger=dict(interval=10))
# random states (subnet sampler, augmentations) go into checkpoints: exact
# resume
custom_hooks = [
    dict(type='nasbnn_mm.CheckpointKeysHook'),
    dict(type='nasbnn_mm.ConventionsHook'),
    dict(type='nasbnn_mm.RandomStateHook'),
    dict(type='nasbnn_mm.WeightsOnlyCheckpointHook'),
]
