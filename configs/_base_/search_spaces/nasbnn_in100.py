# Table 1's space with a 100-class classifier, for the ImageNet-100 ablations.
_base_ = ['./nasbnn_in1k.py']
search_space = dict(num_classes=100)
