# Ablation baseline of Fig. 3 on ImageNet-100 (a 100-class subset of
# ImageNet-1K listed in data/imagenet100/meta/{train,val}.txt): the full
# method. The variants beside this file switch one technique off each.
_base_ = ['../nasbnn_supernet_8xb64-adam-512e_in1k.py']

data_root = 'data/imagenet100'
data_preprocessor = dict(num_classes=100)
model = dict(
    backbone=dict(search_space='configs/_base_/search_spaces/nasbnn_in100.py'))
train_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        split='',
        data_prefix='train',
        ann_file='meta/train.txt'))
val_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        split='',
        data_prefix='val',
        ann_file='meta/val.txt'))
test_dataloader = val_dataloader
search_val_dataloader = dict(dataset=dict(data_root=data_root))
