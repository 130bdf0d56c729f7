# Pipeline 2 on ImageNet-1K: fine-tune NAS-BNN-B (Table 6) exported from the
# supernet with the recipe of the official train_single.py: 8 GPUs x 64 =
# batch 512, Adam lr 1e-5, no weight decay, cosine decay, plain
# cross-entropy, the full training set (the official step 4 reads
# data/ImageNet, not the split). 100 epochs as the paper (sec. 4.1.2, Table
# 2 "#100"); the official README's step 4 runs 25 (Table 5's shortest):
# add `--cfg-options train_cfg.max_epochs=25 param_scheduler.0.T_max=25
# param_scheduler.0.end=25`.
# First export the subnet with inherited weights (pipeline 1; 40 batches of
# 64 = the official 10 x 256 BN recalibration images):
#   python tools/export_subnet.py work_dirs/nasbnn_supernet/epoch_512.pth \
#       --config configs/nasbnn/nasbnn_supernet_8xb64-adam-512e_in1k.py \
#       --arch B --name nasbnn-b --out work_dirs/nasbnn-b_export \
#       --calibrate-batches 40
# then:
#   torchrun --nproc-per-node 8 tools/train.py \
#       configs/nasbnn/nasbnn-b_ft_8xb64-100e_in1k.py --launcher pytorch
# Deviations from the paper or the official code: docs/deviations.md.
_base_ = [
    '../_base_/datasets/imagenet_bs64_nasbnn.py',
    '../_base_/default_runtime_cls.py'
]

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='nasbnn_mm.NASBNN', arch='B', search_space='nasbnn_in1k'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=1536,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))
load_from = 'work_dirs/nasbnn-b_export/nasbnn-b.pth'

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=1e-5, betas=(0.9, 0.999), weight_decay=0))
max_epochs = 100
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
default_hooks = dict(checkpoint=dict(interval=5, max_keep_ckpts=3))
auto_scale_lr = dict(base_batch_size=512)
