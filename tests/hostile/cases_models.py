"""Real models that used to crash (issue 14, crashes on real models): timm models whose forward hands a parameter
view made under no_grad to a submodule (PyTorch's ModuleTracker raised "Expected gradient function to be set"),
Inception v3 at batch 1 (BatchNorm in its auxiliary head), modules whose inputs afford must not guess as floats,
and a forward that reads tensor values. Success rows exit 0; refusals are one line, exit 2, saying what to do.

vit_pe_core_gigantic_patch14_448 (1.88 B parameters: 31 s for an inference job here, too slow for the table) is
stood in for by its small sibling vit_pe_core_small_patch16_384: the same AttentionPoolLatent head, whose
`self.latent.expand(B, -1, -1)` made the tracker fail. pit_s_distilled_224 fails the same way (its distillation
token); pit_ti_distilled_224 also runs a training step through the forward-hook module stack.
"""

from __future__ import annotations

from hostile.harness import Case

INFER = ["--infer-samples", "1"]
TRAIN = ["--train-samples", "2"]
FIX = "module:hostile.models_fixtures"
READS = "module:fixture_models:reads_values"

CASES: list[Case] = [
    # --- module tracking: a parameter view made under no_grad reaches a submodule at inference ------------------
    Case("model-timm-pit-s-distilled-infer", ["assess", "timm:pit_s_distilled_224", *INFER], 0, r"GFLOPs"),
    Case("model-timm-pit-ti-distilled-train", ["assess", "timm:pit_ti_distilled_224", *TRAIN, *INFER], 0,
         r"C_train"),
    Case("model-timm-pe-core-tiny-infer", ["assess", "timm:vit_pe_core_tiny_patch16_384", *INFER], 0, r"GFLOPs"),
    Case("model-timm-pe-core-gigantic-sibling-infer", ["assess", "timm:vit_pe_core_small_patch16_384", *INFER], 0,
         r"GFLOPs"),
    # --- BatchNorm with one value per channel: PyTorch refuses to train it at batch 1, so does afford -------------
    Case("model-inception-v3-batch1-infer", ["assess", "torchvision:inception_v3", *INFER, "--batch-size", "1"], 0,
         r"GFLOPs"),
    Case("model-inception-v3-batch1-train", ["assess", "torchvision:inception_v3", *TRAIN, "--batch-size", "1"], 2,
         r"training step fails at batch size 1.*BatchNorm \(in Inception3\.AuxLogits.*--batch-size 2 or more"),
    Case("model-bn-head-batch1-train", ["assess", f"{FIX}:bn_head", *TRAIN], 2,
         r"BatchNorm \(in Sequential\.2\) gets one value per channel.*--batch-size 2 or more"),
    Case("model-bn-head-batch2-train", ["assess", f"{FIX}:bn_head", *TRAIN, "--batch-size", "2"], 0, r"C_train"),
    Case("model-bn-head-batch1-infer", ["assess", f"{FIX}:bn_head", *INFER], 0, r"C_infer"),
    # --- inputs of modules handed over as objects --------------------------------------------------------------
    Case("model-transformers-module-gets-tokens", ["assess", f"{FIX}:tiny_gpt2", *TRAIN, "--seq-len", "32"], 0,
         r"seq 32"),
    Case("model-guessed-floats-for-token-ids", ["assess", f"{FIX}:token_net", *INFER], 2,
         r"in TokenNet\.emb.*guessed this module's inputs; pass example_inputs"),
    Case("model-unguessable-inputs", ["assess", f"{FIX}:only_embedding", *INFER], 2,
         r"cannot guess this module's input; pass example_inputs"),
    # --- a forward that reads values: the meta device has none ------------------------------------------------
    Case("model-reads-values-infer", ["assess", READS, *INFER], 2, r"cannot run on the meta device.*\.item\(\)"),
    Case("model-reads-values-train", ["assess", READS, *TRAIN], 2, r"cannot run on the meta device"),
]
