# Uniform-1x binary VGG-small (Shen et al., https://arxiv.org/abs/1909.07378,
# DoReFa 1-bit weights and activations, first conv and FC full precision) on
# the embedded digits (32x32, 10 classes), 2 CPU cores. The baseline of the
# width search and the base of the other digits configs of this folder.
#   python tools/train.py configs/width_search/vgg-small_1x_digits.py
# The digits are 8x8 scans upscaled to 32x32: the network is VGG-small with
# every 1x width divided by 8 (16-16-32-32-64-64), so that the uniform-4x
# network the search inherits from (64-...-256) trains in minutes on a CPU.
# The paper's widths are the backbone's default (vgg-small_4x_*_cifar10.py).
_base_ = [
    '../_base_/datasets/digits_cls.py', '../_base_/default_runtime_cls.py'
]
custom_imports = dict(imports=['nasbnn_mm'], allow_failed_imports=False)

# The backbone's own FC (on the flattened 4x4 map, counted by Table 1) gives
# the logits; ClsHead takes the backbone's last output as logits.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='nasbnn_mm.WidthVGGSmall',
        expand_ratios=1,
        base_channels=(16, 16, 32, 32, 64, 64),
        binary=True,
        num_classes=10),
    neck=None,
    head=dict(
        type='ClsHead',
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))

train_dataloader = dict(batch_size=32)
# The same schedule for every network of the folder (uniform 1x/2x/4x and
# the searched one).
max_epochs = 15
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=2e-3, betas=(0.9, 0.999), weight_decay=0),
    # NOTE: the FC reads 16 x C binary features; at the convolutions' lr
    # one Adam step moves its logits by several units.
    paramwise_cfg=dict(custom_keys={'backbone.classifier': dict(lr_mult=0.1)}))
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        by_epoch=True,
        begin=0,
        end=max_epochs,
        T_max=max_epochs,
        convert_to_iter_based=True)
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=5)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=True, interval=max_epochs, max_keep_ckpts=1))
