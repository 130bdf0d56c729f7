# Uniform-1x binary VGG-small (Shen et al., https://arxiv.org/abs/1909.07378,
# DoReFa 1-bit weights and activations, first conv and FC full precision) on
# the embedded digits (32x32, 10 classes), 2 CPU cores. The baseline of the
# width search and the base of the other digits configs of this folder.
#   python tools/train.py configs/width_search/vgg-small_1x_digits.py
# Budget: 12 iterations of 32 images (a third of an epoch, the same for 1x,
# 2x and 4x): the 4x network takes about 1 s per image on a CPU core.
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
        binary=True,
        num_classes=10),
    neck=None,
    head=dict(
        type='ClsHead',
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))

train_dataloader = dict(batch_size=32)
max_iters = 12
# Adam converges in far fewer iterations than the paper's SGD (lr 0.1) on
# this tiny budget.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=2e-3, betas=(0.9, 0.999), weight_decay=0),
    # NOTE: the FC reads 16 x C binary features (32768 at 4x); at the
    # convolutions' lr one Adam step moves its logits by tens.
    paramwise_cfg=dict(custom_keys={'backbone.classifier': dict(lr_mult=0.1)}))
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        by_epoch=False,
        begin=0,
        end=max_iters,
        T_max=max_iters)
]
train_cfg = dict(by_epoch=False, max_iters=max_iters, val_interval=max_iters)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    logger=dict(interval=4),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
