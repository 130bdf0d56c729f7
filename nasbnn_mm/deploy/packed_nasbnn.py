"""A NAS-BNN subnet running on bit-packed binary kernels (CPU inference).

:class:`PackedNASBNN` is the static :class:`~nasbnn_mm.models.NASBNN` with
every binary separable block replaced by its packed form
(:class:`PackedSeparableBlock`, see :mod:`.packed_layers`); the 8-bit LSQ
stem and the FP classifier run as in the float model. Weights enter it one
way, ``load_state_dict``: its own (packed) entries, or the float entries of
a ``NASBNN``, which are packed on the fly; :func:`pack_nasbnn` packs a
float model.
"""
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from torch import Tensor

from nasbnn_mm.models.backbones import NASBNN, BaseSubnet
from nasbnn_mm.nas import DEFAULT_SPACE, ArchType
from nasbnn_mm.ops import QuantizedStemParams
from nasbnn_mm.ops import fused as ops
from nasbnn_mm.ops.binary_conv import pack_activation
from nasbnn_mm.ops.head import classifier_head, classifier_head_ref
from nasbnn_mm.ops.stem import quantized_stem, quantized_stem_ref
from nasbnn_mm.registry import MODELS
from nasbnn_mm.utils import OptMultiConfig
from nasbnn_mm.utils.checkpoint import load_state_dict_strict
from .kernel_cache import KernelCache
from .packed_layers import PackedBinaryConv2d, PackedSeparableBlock

__all__ = ['PackedNASBNN', 'pack_nasbnn']

# A key only float NASBNN state dicts have (packed blocks fold their BN).
_FLOAT_KEY = 'stages.0.0.bn1.running_mean'


@MODELS.register_module()
class PackedNASBNN(BaseSubnet):
    """A NAS-BNN subnet on bit-packed binary kernels, for CPU inference.

    Same stage outputs as :class:`~nasbnn_mm.models.NASBNN` (a tuple of the
    features of ``out_indices``), so a detector or classifier config can
    swap ``backbone.type`` to ``'nasbnn_mm.PackedNASBNN'`` at test time
    (with ``custom_imports=dict(imports=['nasbnn_mm', 'nasbnn_mm.deploy'])``).

    Weights enter through ``load_state_dict`` only: the packed entries of
    this model (:func:`~nasbnn_mm.deploy.load_packed` reads a packed file),
    or a float ``NASBNN`` state dict, packed on the fly (eval semantics: BN
    running statistics). So a detector's ``load_from``,
    ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')``
    and ``init_cfg=dict(type='SupernetInit', checkpoint=...)`` all work.
    Without weights the binary weights are all -1 (a valid but untrained
    net). The model is inference only: no gradients, no training options.

    Args:
        arch (str | dict | ArchSpec): The subnet (see
            :func:`~nasbnn_mm.models.resolve_arch`).
        search_space (str | dict): Its search space. Defaults to
            'nasbnn_in1k'.
        out_indices (Sequence[int]): Stages whose outputs are returned.
            Defaults to (-1, ).
        weight_norm (bool | str, optional): Weight normalization of the
            float model whose weights are packed (see ``NASBNN``). None
            (default): from the ``init_cfg`` checkpoint's conventions,
            else True.
        stem_quantize_input (bool, optional): Quantize the stem's input to
            8 bits. None (default): as ``weight_norm``.
        num_classes (int, optional): Add the FP classifier ``fc`` (for
            :meth:`logits`). Defaults to None.
        channels_last_outputs (bool): Return the stage outputs in the
            kernels' channels_last memory instead of contiguous copies,
            for consumers that take either (e.g. a packed neck). Defaults
            to False.
        init_cfg (dict | list[dict], optional): Initialization config.

    Example:
        >>> from nasbnn_mm.models import NASBNN
        >>> float_model = NASBNN('A', 'nasbnn_in1k').eval()
        >>> packed = pack_nasbnn(float_model)
        >>> x = torch.randn(1, 3, 224, 224)
        >>> [o.shape for o in packed(x)]
        [torch.Size([1, 768, 7, 7])]
    """

    # Bytes of the stem output of one chunk of images (my choice, measured
    # on a 2 MiB-L2 Xeon: B at 224x224, batch 8, one image per chunk was
    # 15 % faster on 1 thread and 6 % on 2 than the whole batch at once).
    CHUNK_BYTES = 1 << 20
    # All blocks in one extension call, and logits of a chained batch in one
    # call with the stem and head (False: a call per block, same bits).
    CHAIN_BLOCKS = True

    def __init__(self,
                 arch: ArchType,
                 search_space: Union[str, dict] = DEFAULT_SPACE,
                 out_indices: Sequence[int] = (-1, ),
                 weight_norm: Optional[Union[bool, str]] = None,
                 stem_quantize_input: Optional[bool] = None,
                 num_classes: Optional[int] = None,
                 channels_last_outputs: bool = False,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(arch, search_space, out_indices, weight_norm,
                         stem_quantize_input, init_cfg)
        self.num_classes = num_classes
        self.channels_last_outputs = channels_last_outputs
        self.fc = (
            nn.Linear(self.arch.stages[-1][-1].channels, num_classes)
            if num_classes is not None else None)
        self.requires_grad_(False)
        self.eval()
        self._kernels = KernelCache()

    def __getstate__(self) -> dict:
        """Copies and pickles get a new kernel cache (its extension objects
        cannot be pickled); it is rebuilt on first use."""
        return dict(self.__dict__, _kernels=KernelCache())

    def make_block(self, in_channels: int, out_channels: int, kernel_size: int,
                   groups: int, stride: int) -> PackedSeparableBlock:
        """A :class:`PackedSeparableBlock` (untrained: weights all -1)."""
        return PackedSeparableBlock(in_channels, out_channels, kernel_size,
                                    groups, stride)

    def float_model(self) -> NASBNN:
        """A float :class:`NASBNN` of the same arch and options (eval)."""
        return NASBNN(
            self.arch.to_dict(),
            self.space.to_dict(),
            out_indices=self.out_indices,
            weight_norm=self.weight_norm,
            stem_quantize_input=self.stem_quantize_input).eval()

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args,
                              **kwargs) -> None:
        # NOTE: float NASBNN keys (e.g. a detector's load_from) are packed
        # here, before the children read their entries from ``state_dict``.
        if prefix + _FLOAT_KEY in state_dict:
            float_state = {
                k[len(prefix):]: state_dict.pop(k)
                for k in list(state_dict)
                if k.startswith(prefix) and not k.startswith(prefix + 'fc.')
            }
            backbone = self.float_model()
            load_state_dict_strict(backbone, float_state, 'float state dict',
                                   f'NASBNN of arch {self.arch.to_dict()}')
            for key, value in pack_nasbnn(backbone).state_dict().items():
                state_dict[prefix + key] = value
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def forward_stages(self,
                       x: Tensor,
                       indices: Sequence[int],
                       reference: bool = False) -> Tuple[Tensor, ...]:
        """Run the stem and every block; return the outputs of ``indices``.

        On the kernels the stem is one :func:`~nasbnn_mm.ops.quantized_stem`
        call (:func:`fold_quantized_stem`) and each block one
        :func:`~nasbnn_mm.ops.binary_block` call, each also writing the
        packed signs of the next block's input (a stride-2 block on an odd
        size runs alone: the fused epilogue pools even sizes only), all
        in one :func:`~nasbnn_mm.ops.fused.block_chain` call where no block
        runs alone. The folded stem and the kernel arguments are built once
        (see :class:`KernelCache`). A batch runs in chunks of images whose
        stem output fits in ``CHUNK_BYTES`` (the maps of one chunk stay in
        the core's cache). Bitwise the same as ``reference``: the
        pure-PyTorch ops, block by block, on the whole batch.
        """
        return self._stages(x, indices, reference)

    def _stages(self, x: Tensor, indices: Sequence[int],
                reference: bool) -> Tuple[Tensor, ...]:
        """:meth:`forward_stages` without its ``no_grad`` (its callers have
        one already)."""
        stem_params = self._kernels.stem_params(self.stem, x)
        if reference:
            return self._forward_reference(x, indices, stem_params)
        stride = self.space.stem.stride
        image_bytes = (
            self.arch.stem.channels * -(-x.shape[-2] // stride) *
            -(-x.shape[-1] // stride) * 4)
        chunk = max(1, self.CHUNK_BYTES // image_bytes)
        if x.shape[0] <= chunk:
            return self._forward_kernels(x, indices, stem_params)
        self._kernels.chained = False
        parts = [
            self._forward_kernels(x[i:i + chunk], indices, stem_params)
            for i in range(0, x.shape[0], chunk)
        ]
        return tuple(torch.cat(outs) for outs in zip(*parts))

    def _forward_kernels(
            self, x: Tensor, indices: Sequence[int],
            stem_params: QuantizedStemParams) -> Tuple[Tensor, ...]:
        """:meth:`forward_stages` of one chunk on the kernels."""
        kernels = self._kernels
        plan = kernels.block_plan(self.stages)
        x, packed = quantized_stem(x, stem_params, *kernels.first_pack)
        keep = (
            kernels.chain_outputs(self.stages, x.shape[-2], x.shape[-1],
                                  indices) if self.CHAIN_BLOCKS else None)
        kernels.chained = keep is not None
        if keep is not None:
            return tuple(kernels.chain.run(packed, x, keep))
        outs, k = [], 0
        for i, stage in enumerate(self.stages):
            for _ in stage:
                block, args = plan[k]
                k += 1
                if block.stride == 2 and (x.shape[-2] % 2 or x.shape[-1] % 2):
                    # the fused epilogue pools even sizes only
                    x, packed = block(x), None
                    continue
                if packed is None:
                    packed = pack_activation(x, block.conv1.groups,
                                             block.sign1.bias)
                x, packed = ops.binary_block_prepared(packed, x, args)
            if i in indices:
                outs.append(x)
        return tuple(outs)

    def _forward_reference(
            self, x: Tensor, indices: Sequence[int],
            stem_params: QuantizedStemParams) -> Tuple[Tensor, ...]:
        """:meth:`forward_stages` on the pure-PyTorch reference ops."""
        x = quantized_stem_ref(x, stem_params)[0]
        outs = []
        for i, stage in enumerate(self.stages):
            for block in stage:
                x = block(x, reference=True)
            if i in indices:
                outs.append(x)
        return tuple(outs)

    @torch.no_grad()
    def forward(self,
                x: Tensor,
                reference: bool = False) -> Tuple[Tensor, ...]:
        """Run the subnet.

        Args:
            x (Tensor): Images (N, C_img, H, W).
            reference (bool): Pure-PyTorch reference ops. Defaults to False.

        Returns:
            tuple[Tensor]: Outputs (N, C_i, H_i, W_i) of ``out_indices``,
            contiguous as :class:`NASBNN`'s, or channels_last with
            ``channels_last_outputs``.
        """
        outs = self._stages(x, self.out_indices, reference)
        if self.channels_last_outputs:
            return outs
        return tuple(out.contiguous() for out in outs)

    @torch.no_grad()
    def logits(self, x: Tensor, reference: bool = False) -> Tensor:
        """Classifier logits: global average pooling of the last stage, then
        ``fc`` (as MMPretrain's GlobalAveragePooling + LinearClsHead), in
        one :func:`~nasbnn_mm.ops.head.classifier_head` call (its fixed
        summation order: the logits differ from ``fc(pool(x))``'s in the
        last bits).

        Returns:
            Tensor: (N, num_classes).
        """
        if self.fc is None:
            raise ValueError('logits: built without num_classes (no fc)')
        kernels = self._kernels
        if self.CHAIN_BLOCKS and not reference:
            logits = kernels.fast_logits(self.stem, self.fc, x)
            if logits is not None:
                return logits
        last = len(self.stages) - 1
        feat = self._stages(x, (last, ), reference)[-1]
        weight_blocks, bias = kernels.head(self.fc)
        if reference:
            return classifier_head_ref(feat, self.fc.weight, bias)
        if kernels.chained:
            # the batch in one chunk, every block in the chain: the next
            # call on such inputs runs in one extension call
            kernels.prepare_logits(x)
        return classifier_head(feat, weight_blocks, bias)

    def size_report(self) -> Dict[str, float]:
        """Sizes of the binary weights, packed and as fp32.

        Returns:
            dict: ``binary_weights`` (count), ``packed_bytes`` (their
            uint64 words), ``fp32_bytes`` (4 bytes each), ``ratio``
            (fp32 / packed), ``affine_bytes`` (the per-channel float
            buffers of the binary layers), ``ratio_with_affine`` and
            ``other_bytes`` (stem, RSign shifts, classifier).
        """
        convs = [
            m for m in self.modules() if isinstance(m, PackedBinaryConv2d)
        ]
        weights = sum(c.num_binary_weights for c in convs)
        packed = sum(c.weight_bits.numel() * 8 for c in convs)
        affine = sum(5 * c.out_channels * 4 for c in convs)
        total = sum(t.numel() * t.element_size()
                    for t in self.state_dict().values())
        return dict(
            binary_weights=weights,
            packed_bytes=packed,
            fp32_bytes=weights * 4,
            ratio=weights * 4 / packed,
            affine_bytes=affine,
            ratio_with_affine=weights * 4 / (packed + affine),
            other_bytes=total - packed - affine)


@torch.no_grad()
def pack_nasbnn(backbone: NASBNN,
                fc: Optional[nn.Linear] = None,
                channels_last_outputs: bool = False) -> PackedNASBNN:
    """Pack a float :class:`NASBNN` (and its classifier).

    Args:
        backbone (NASBNN): The float subnet; its BN running statistics are
            folded (eval semantics).
        fc (nn.Linear, optional): Classifier over the last stage.
        channels_last_outputs (bool): See :class:`PackedNASBNN`. Defaults
            to False.

    Returns:
        PackedNASBNN: Same arch, out_indices and options, in eval mode.

    Raises:
        ValueError: If a layer cannot be packed (real-valued activations
            or weights, a non-square convolution) or ``fc`` does not read
            the last stage's width.
    """
    packed = PackedNASBNN(
        backbone.arch.to_dict(),
        backbone.space.to_dict(),
        out_indices=backbone.out_indices,
        weight_norm=backbone.weight_norm,
        stem_quantize_input=backbone.stem_quantize_input,
        num_classes=None if fc is None else fc.out_features,
        channels_last_outputs=channels_last_outputs)
    packed.stem.load_state_dict(backbone.stem.state_dict())
    for blocks, float_blocks in zip(packed.stages, backbone.stages):
        for j, block in enumerate(float_blocks):
            blocks[j] = PackedSeparableBlock.from_float(block)
    if fc is not None:
        if fc.in_features != packed.fc.in_features:
            raise ValueError(f'fc: in_features {fc.in_features} != the last '
                             f'stage width {packed.fc.in_features}')
        packed.fc.load_state_dict(fc.state_dict())
    return packed.requires_grad_(False)
