# A static NAS-BNN subnet (nasbnn_mm.NASBNN) as an MMPretrain classifier on
# the embedded digits: tests an export of tools/export_subnet.py (pipeline 1)
# and is the base of the digits fine-tuning config (pipeline 2).
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

val_cfg = dict()
test_cfg = dict()
