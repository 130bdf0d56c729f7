# Pipeline 2 on ImageNet-1K: fine-tune NAS-BNN-B (Table 6) exported from the
# supernet for 100 epochs (paper sec. 4.1.2 and Table 2 "#100"; recipe of
# the official train_single.py): 8 GPUs x 64 = batch 512, Adam lr 1e-5,
# no weight decay, cosine decay, plain cross-entropy.
# First export the subnet with inherited weights (pipeline 1):
#   python tools/export_subnet.py work_dirs/nasbnn_supernet/epoch_512.pth \
#       --config configs/nasbnn/nasbnn_supernet_8xb64-adam-512e_in1k.py \
#       --arch B --name nasbnn-b --out work_dirs/nasbnn-b_export
# then:
#   torchrun --nproc-per-node 8 tools/train.py \
#       configs/nasbnn/nasbnn-b_ft_8xb64-100e_in1k.py --launcher pytorch
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
