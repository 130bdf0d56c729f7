# Ablation: Non-Decreasing constraint off when sampling (Fig. 3a).
_base_ = ['./nasbnn_supernet_8xb64-adam-512e_in100.py']
model = dict(non_decreasing=False)
