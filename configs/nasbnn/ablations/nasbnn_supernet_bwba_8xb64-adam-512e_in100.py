# Ablation: Teacher with binary weights and activations (Fig. 3c/d).
_base_ = ['./nasbnn_supernet_8xb64-adam-512e_in100.py']
model = dict(teacher='BWBA')
