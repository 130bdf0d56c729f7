# A static NAS-BNN subnet (nasbnn_mm.NASBNN) as an MMPretrain classifier on
# the embedded digits: tests an export of tools/export_subnet.py (pipeline 1)
# and is the base of the digits fine-tuning config (pipeline 2), whose recipe
# it holds.
#
# The subnet is set by `model.backbone.arch` (a spec file such as the
# export's arch.json, a preset or a dict) and `model.head.in_channels` (the
# width of its last layer); `tools/export_subnet.py --subnet-config THIS`
# writes <out>/<name>_cfg.py with both set. By hand:
#   python tools/test.py configs/nasbnn/nasbnn-subnet_digits.py \
#       work_dirs/export/subnet.pth --cfg-options \
#       model.backbone.arch=work_dirs/export/arch.json \
#       model.head.in_channels=<last width>
# The default arch below is the largest subnet of the digits space.
_base_ = [
    '../_base_/datasets/digits_cls.py', '../_base_/default_runtime_cls.py'
]

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='nasbnn_mm.NASBNN',
        arch=dict(
            stem='c16_k3_g1',
            stages=[['c32_k3_g1', 'c32_k3_g1'], ['c64_k5_g1', 'c64_k5_g1'],
                    ['c128_k5_g2', 'c128_k5_g2']]),
        search_space='nasbnn_digits'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=128,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))

# Training parts (mmengine's Runner, and MMPretrain's own tools/test.py,
# want all of train_dataloader, train_cfg and optim_wrapper or none): the
# fine-tuning recipe of pipeline 2 (paper sec. 4.1.2, official code: Adam,
# no weight decay, cosine decay, plain cross-entropy), shortened to 10
# epochs at lr 2e-4 (1/10 of the digits supernet's).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=2e-4, betas=(0.9, 0.999), weight_decay=0))
max_epochs = 10
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        by_epoch=True,
        begin=0,
        end=max_epochs,
        T_max=max_epochs,
        convert_to_iter_based=True)
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=2)
val_cfg = dict()
test_cfg = dict()
