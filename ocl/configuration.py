"""The SmoothSA encoder's configuration: plain scalars that serialise to `config.json`."""

from transformers import Dinov2WithRegistersConfig, PretrainedConfig

BACKBONES = ("dinov2", "cnn", "features")
DECODERS = ("autoregressive", "mlp", "broadcast")
BROADCAST_ALPHAS = ("decoder", "slot_attention")
WEIGHT_INITS = ("pytorch", "variance_preserving")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SmoothSAConfig(PretrainedConfig):
    """Sizes and choices of a SmoothSA image or video encoder.

    Backbone:
        backbone: "dinov2" (frozen DINOv2 with registers from `transformers`), "cnn" (a small
            trainable CNN for small synthetic data) or "features" (no backbone: the input is
            already a feature map `[B,C,h,w]`).
        backbone_config: for "dinov2", the `Dinov2WithRegistersConfig` as a dict.
        image_size: input height and width in pixels (for "features": the feature grid).
        resize_factor: "dinov2" input is resized by this factor (bicubic) before patching;
            the paper resizes 256 to 224.
        pixel_mean, pixel_std: "dinov2" normalisation of `[0,1]` pixels (ImageNet).
        cnn_channels, cnn_layers, cnn_downsample: "cnn" width, number of 5x5 convolutions and
            total stride (1 or 2).
        cnn_pixel_shortcut: "cnn" tokens also hold their patch's mean RGB beside the
            convolutions' channels, so the slots can read an object's colour even where the
            convolutions, trained for grouping, have dropped it.
        feature_dim: channels C of the backbone's feature map ("features" only; otherwise read
            from the backbone).

    Grouping:
        num_slots: N; slot_dim: D; num_iterations: Slot Attention iterations on an image or a
        video's first frame; num_iterations_later: on every later frame.
        iteration_gradients: "last" (SmoothSA's bi-level truncation: gradients pass through
            the last iteration only, and straight through to the initial queries) or "all"
            (Slot Attention's original backpropagation through every iteration).
        use_preheater: preheated (self-distilled) initial queries, refined from the cold start;
            off: Slot Attention starts from the cold start itself.
        cold_start: "shared_gaussian" (Slot Attention's and the paper's: every slot drawn from
            one learned Gaussian) or "learned" (BO-QSA's one learned query per slot).
        preheater_heads: attention heads of the preheater's decoder layer.
        transit_window: frames the transit may look back in training; 0 makes an image model.
        transit_heads, transit_dropout: the transit's decoder layer.

    Decoder:
        decoder: "autoregressive" (the paper's random-order transformer decoder of features),
            "mlp" (a per-slot MLP decoder of features) or "broadcast" (a spatial-broadcast CNN
            decoder of pixels).
        decoder_layers, decoder_heads: the autoregressive decoder.
        decoder_hidden_dim: width of the MLP decoder's hidden layers / broadcast decoder channels.
        broadcast_grid: side of the grid the broadcast decoder starts from.
        broadcast_full_resolution_layers: 5x5 convolutions the broadcast decoder runs at the
            image size before its RGB + alpha layer (1 in Slot Attention; each costs about as
            much as all the upsampling before it).
        broadcast_alpha: what weighs the slots' RGB in training: "decoder" (its own alpha, as in
            Slot Attention) or "slot_attention" (Slot Attention's attention, upsampled, so the
            reconstruction error reaches the grouping directly; the decoder's alpha then learns
            to predict it, and decodes slots alone).

    Initialisation:
        weight_init: "pytorch" (every module's default) or "variance_preserving": He
            initialisation of the ReLU convolutions of the CNN backbone and of the broadcast
            decoder, whose output layer starts at zero, and Glorot initialisation of Slot
            Attention's linear layers, as Slot Attention's reference implementation. PyTorch's
            default shrinks each ReLU layer's output ~2.4x: at the start the tokens are mostly
            the position embedding, and the decoder's alpha hardly depends on the slot (its
            spread over slots is ~1/140 of He's), so every slot is drawn alike.
    """

    model_type = "smoothsa"

    backbone: str = "cnn"
    backbone_config: dict | None = None
    image_size: list[int] | tuple[int, int] = (256, 256)
    resize_factor: float = 0.875
    pixel_mean: list[float] | tuple[float, ...] = IMAGENET_MEAN
    pixel_std: list[float] | tuple[float, ...] = IMAGENET_STD
    cnn_channels: int = 64
    cnn_layers: int = 4
    cnn_downsample: int = 2
    cnn_pixel_shortcut: bool = False
    feature_dim: int | None = None
    num_slots: int = 7
    slot_dim: int = 256
    num_iterations: int = 3
    num_iterations_later: int = 1
    iteration_gradients: str = "last"
    use_preheater: bool = True
    cold_start: str = "shared_gaussian"
    preheater_heads: int = 4
    transit_window: int = 0
    transit_heads: int = 4
    transit_dropout: float = 0.5
    decoder: str = "autoregressive"
    decoder_layers: int = 4
    decoder_heads: int = 4
    decoder_hidden_dim: int = 1024
    broadcast_grid: int = 8
    broadcast_full_resolution_layers: int = 1
    broadcast_alpha: str = "decoder"
    weight_init: str = "pytorch"

    def __post_init__(self, **kwargs):
        self.image_size = tuple(int(side) for side in self.image_size)
        self.pixel_mean = tuple(float(x) for x in self.pixel_mean)
        self.pixel_std = tuple(float(x) for x in self.pixel_std)
        super().__post_init__(**kwargs)
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {self.decoder!r}")
        if len(self.image_size) != 2 or min(self.image_size) <= 0:
            raise ValueError(f"image_size must be [height, width] > 0, got {self.image_size}")
        if self.backbone == "dinov2" and self.backbone_config is None:
            raise ValueError(
                "backbone 'dinov2' needs backbone_config (see SmoothSAConfig.for_dinov2)"
            )
        if self.backbone == "features" and not self.feature_dim:
            raise ValueError("backbone 'features' needs feature_dim, the input's channel count")
        if self.cnn_pixel_shortcut and self.backbone != "cnn":
            raise ValueError(f"cnn_pixel_shortcut needs backbone 'cnn', got {self.backbone!r}")
        if self.decoder == "broadcast" and self.backbone == "dinov2":
            raise ValueError("decoder 'broadcast' reconstructs pixels; use it with backbone 'cnn'")
        if self.broadcast_full_resolution_layers < 0:
            raise ValueError(
                "broadcast_full_resolution_layers must be >= 0, "
                f"got {self.broadcast_full_resolution_layers}"
            )
        if self.broadcast_alpha not in BROADCAST_ALPHAS:
            raise ValueError(
                f"broadcast_alpha must be one of {BROADCAST_ALPHAS}, got {self.broadcast_alpha!r}"
            )
        if self.cold_start not in ("shared_gaussian", "learned"):
            raise ValueError(
                f"cold_start must be 'shared_gaussian' or 'learned', got {self.cold_start!r}"
            )
        if self.iteration_gradients not in ("last", "all"):
            raise ValueError(
                f"iteration_gradients must be 'last' or 'all', got {self.iteration_gradients!r}"
            )
        if self.weight_init not in WEIGHT_INITS:
            raise ValueError(f"weight_init must be one of {WEIGHT_INITS}, got {self.weight_init!r}")
        if self.cnn_downsample not in (1, 2):
            raise ValueError(f"cnn_downsample must be 1 or 2, got {self.cnn_downsample}")
        for name in ("num_slots", "slot_dim", "num_iterations", "num_iterations_later"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.transit_window < 0 or self.transit_window == 1:
            raise ValueError(
                "transit_window must be 0 (an image model) or at least 2, "
                f"got {self.transit_window}"
            )
        for name, heads in (("preheater_heads", self.preheater_heads),
                            ("transit_heads", self.transit_heads)):
            if self.slot_dim % heads:
                raise ValueError(f"slot_dim {self.slot_dim} is not divisible by {name} {heads}")

    @property
    def is_video(self) -> bool:
        """Whether the encoder has a transit, so it can run on videos."""
        return self.transit_window > 0

    @property
    def dinov2_config(self) -> Dinov2WithRegistersConfig:
        """The backbone's `Dinov2WithRegistersConfig` ("dinov2" only)."""
        return Dinov2WithRegistersConfig(**self.backbone_config)

    @classmethod
    def for_dinov2(cls, backbone_name_or_path: str, **kwargs) -> "SmoothSAConfig":
        """A config around a pretrained DINOv2-with-registers (Hub id or local folder)."""
        backbone = Dinov2WithRegistersConfig.from_pretrained(backbone_name_or_path)
        kwargs.setdefault("backbone_config", backbone.to_dict())
        return cls(backbone="dinov2", **kwargs)
