# Evolutionary search of the ImageNet supernet's OPs/accuracy Pareto front
# with the settings of the official launch command (github VDIGPKU/NAS-BNN,
# README step 2: --population-num 512 --max-epochs 20 --mutation-num 128
# --crossover-num 128 --m-prob 0.2 --ops-min 20 --ops-max 180 --step 2):
# 512 initial subnets (always the smallest, 20.8M OPs, which is preset A,
# and the largest, 331.8M, then random subnets of 20-180M OPs), 20
# generations of 128 mutants and 128 crossover children of parents drawn
# from the front, which keeps the most accurate subnet of each of the 81
# buckets 20, 22, ..., 180M (OPs rounded to the nearest multiple of 2, as
# the official code). Each candidate's BN is recalibrated on 10 batches of
# 256 training images and its top-1 measured on the 50 held-out training
# images per class, split over the GPUs (8 x 256 per step).
#   torchrun --nproc-per-node 8 tools/search.py \
#       configs/nasbnn/nasbnn_search_8xb256_in1k.py SUPERNET_CKPT \
#       --launcher pytorch
_base_ = ['./nasbnn_supernet_8xb64-adam-512e_in1k.py']

# BN calibration batches: 10 x 256 training images, the official size
# (search.py `--max-train-iters 10 --train-batch-size 2048` on 8 GPUs), but
# the same images on every GPU where the official code draws different ones
# per GPU (the calibration is not sharded, so the result does not depend on
# the number of GPUs); they stay in memory as uint8 (about 385 MB). They
# come from the training images not held out for the search. Deviations
# from the paper or the official code: docs/deviations.md.
train_dataloader = dict(
    batch_size=256, dataset=dict(ann_file='meta/train_search.txt'))
train_cfg = dict(
    _delete_=True,
    type='nasbnn_mm.EvolutionSearchLoop',
    problem=dict(
        type='nasbnn_mm.SupernetSearchProblem',
        eval_dataloader=dict(
            batch_size=256,
            num_workers=8,
            dataset={{_base_.search_val_dataloader.dataset}}),
        calibrate_batches=10,
        seed=0),
    max_generations=20,
    population_size=512,
    num_mutation=128,
    num_crossover=128,
    mutate_prob=0.2,
    cost_range=(20, 180),
    bucket_step=2,
    bucket_rule='nearest',
    objective='pareto',
    seed=0,
    # a candidate takes tens of seconds: also save within generations
    save_interval=16)

param_scheduler = None
val_dataloader = None
val_cfg = None
val_evaluator = None
default_hooks = dict(checkpoint=None)
