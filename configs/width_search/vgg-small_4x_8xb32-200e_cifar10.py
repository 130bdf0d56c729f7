# Uniform-4x binary VGG-small on CIFAR-10, the paper's recipe (Shen et al.,
# https://arxiv.org/abs/1909.07378, sec. 4: 200 epochs, SGD, lr 0.1 times
# 0.1 at epochs 60, 120 and 180). Its checkpoint initialises every candidate
# of width-search_vgg-small_cifar10.py. Momentum and weight decay are not
# given in the paper (it follows LQ-Nets); these are the usual CIFAR values.
#   bash tools/dist_train.sh \
#       configs/width_search/vgg-small_4x_8xb32-200e_cifar10.py 8
_base_ = [
    'mmpretrain::_base_/datasets/cifar10_bs16.py',
    '../_base_/default_runtime_cls.py'
]
custom_imports = dict(imports=['nasbnn_mm'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='nasbnn_mm.WidthVGGSmall',
        expand_ratios=4,
        binary=True,
        num_classes=10),
    neck=None,
    head=dict(
        type='ClsHead',
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )))

# 8 GPUs x 32 images
train_dataloader = dict(batch_size=32)
val_dataloader = dict(batch_size=128)
test_dataloader = val_dataloader

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4))
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[60, 120, 180], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=200, val_interval=10)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=2))
auto_scale_lr = dict(base_batch_size=256)
