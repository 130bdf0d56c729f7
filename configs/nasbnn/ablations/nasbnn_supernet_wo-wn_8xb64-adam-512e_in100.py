# Ablation: No channel-wise weight normalization (Fig. 3b).
_base_ = ['./nasbnn_supernet_8xb64-adam-512e_in100.py']
model = dict(backbone=dict(weight_norm=False))
