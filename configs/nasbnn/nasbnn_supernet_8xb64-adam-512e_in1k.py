# NAS-BNN supernet on ImageNet-1K (paper sec. 4.1.2): 8 GPUs x 64 = batch
# 512, Adam, weight decay 5e-6 on conv/linear weights, cosine decay over 512
# epochs, label smoothing 0.1, sandwich rule with the Bi-Teacher and in-place
# distillation. Every deviation from the paper or the official code:
# docs/deviations.md.
#
# Data: as the official code, the supernet never sees the 50 training images
# per class that the search ranks candidates on. Make the split first:
#   python tools/dataset_converters/split_imagenet.py data/imagenet
# (writes meta/train_search.txt and meta/search_val.txt).
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

train_dataloader = dict(
    dataset=dict(ann_file='meta/train_search.txt', data_prefix='train'))

# NOTE: the learning rate has two sources that disagree, at the same batch
# of 512: the paper (sec. 4.1.2) says 5e-4; the official launch command
# (github VDIGPKU/NAS-BNN README, step 1: `-b 512 --lr 2.5e-3`, also the
# default of its train.py) uses 2.5e-3. This config follows the paper; for
# the official run add `--cfg-options optim_wrapper.optimizer.lr=2.5e-3`.
optim_wrapper = dict(optimizer=dict(lr=5e-4))

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
# Pipeline-1 BN recalibration (validation here, `tools/test.py` with a
# subnet): the official code re-estimates BN on 10 batches of 256 training
# images per GPU (test.py/search.py `--max-train-iters 10
# --train-batch-size 2048` on 8 GPUs). These loops draw from the training
# loader (64 per GPU), so 40 batches give the same 2560 images per GPU; for
# batches of 256 too add `--cfg-options train_dataloader.batch_size=256
# test_cfg.calibrate_batches=10` to tools/test.py.
val_cfg = dict(calibrate_batches=40)
test_cfg = dict(calibrate_batches=40)
default_hooks = dict(checkpoint=dict(interval=4, max_keep_ckpts=3))
auto_scale_lr = dict(base_batch_size=512)
# random states (subnet sampler, augmentations) go into checkpoints: exact
# resume
custom_hooks = [
    dict(type='nasbnn_mm.CheckpointKeysHook'),
    dict(type='nasbnn_mm.ConventionsHook'),
    dict(type='nasbnn_mm.RandomStateHook'),
    dict(type='nasbnn_mm.WeightsOnlyCheckpointHook'),
]
