# Uniform-4x binary ResNet-18 on ImageNet, the paper's recipe (Shen et al.,
# https://arxiv.org/abs/1909.07378, sec. 4: 150 epochs, SGD, lr 0.1 times
# 0.1 at epochs 50, 100 and 135). The paper trains this network for 150
# epochs on the 50-images-per-class search subset to initialise the
# candidates, and each found network on the full training set. Momentum and
# weight decay are not given (it follows Bi-Real Net); these are the usual
# ImageNet values.
#   bash tools/dist_train.sh \
#       configs/width_search/resnet18_4x_8xb32-150e_in1k.py 8
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs32.py',
    '../_base_/default_runtime_cls.py'
]
custom_imports = dict(imports=['nasbnn_mm'], allow_failed_imports=False)

# The backbone's classifier (after global average pooling) gives the logits.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='nasbnn_mm.WidthResNet18',
        expand_ratios=4,
        stem='imagenet',
        binary=True,
        num_classes=1000),
    neck=None,
    head=dict(
        type='ClsHead',
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4))
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[50, 100, 135], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=150, val_interval=5)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=256)
