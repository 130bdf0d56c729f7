# NAS-BNN supernet on ImageNet-1K with the paper's recipe (sec. 4.1.2):
# 8 GPUs x 64 = batch 512, Adam lr 5e-4, weight decay 5e-6 on conv/linear
# weights, cosine decay over 512 epochs, label smoothing 0.1, sandwich rule
# with the Bi-Teacher and in-place distillation.
_base_ = [
    '../_base_/datasets/imagenet_bs64_nasbnn.py',
    '../_base_/default_runtime_cls.py', '../_base_/schedules/supernet_adam.py'
]

model = dict(
    type='nasbnn_mm.SandwichSupernet',
    backbone=dict(type='nasbnn_mm.SuperBNN', search_space='nasbnn_in1k'),
    teacher='FWBA',
    distill=True,
    num_random=2,
    non_decreasing=True,
    label_smoothing=0.1,
    seed=0)
model_wrapper_cfg = dict(type='nasbnn_mm.SandwichDataParallel')

max_epochs = 512
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        by_epoch=True,
        begin=0,
        end=max_epochs,
        T_max=max_epochs,
        convert_to_iter_based=True)
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=16)
default_hooks = dict(checkpoint=dict(interval=4, max_keep_ckpts=3))
auto_scale_lr = dict(base_batch_size=512)
# random states (subnet sampler, augmentations) go into checkpoints: exact
# resume
custom_hooks = [
    dict(type='nasbnn_mm.CheckpointKeysHook'),
    dict(type='nasbnn_mm.RandomStateHook'),
    dict(type='nasbnn_mm.WeightsOnlyCheckpointHook'),
]
