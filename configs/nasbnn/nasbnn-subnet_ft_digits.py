# Pipeline 2 on the digits: fine-tune an exported subnet with the paper's
# recipe (sec. 4.1.2, official code: Adam, no weight decay, cosine decay,
# plain cross-entropy) shortened to 10 epochs, lr 2e-4 (1/10 of the digits
# supernet's); the recipe is nasbnn-subnet_digits.py's, this file keeps one
# checkpoint at the end. Measured on four Pareto subnets
# (docs/export_finetune.md): top-1 87.19 -> 87.47, 90.25 -> 93.31,
# 96.10 -> 96.10, 97.49 -> 98.33.
#   python tools/train.py work_dirs/export/subnet_ft_cfg.py
# where subnet_ft_cfg.py is written by `tools/export_subnet.py
# --subnet-config configs/nasbnn/nasbnn-subnet_ft_digits.py --name subnet_ft`
# (arch, head width and load_from set), or by hand with --cfg-options
# load_from=<export>.pth model.backbone.arch=<arch.json>
# model.head.in_channels=<last width>.
_base_ = ['./nasbnn-subnet_digits.py']

default_hooks = dict(
    checkpoint=dict(interval=5, max_keep_ckpts=1), logger=dict(interval=10))
