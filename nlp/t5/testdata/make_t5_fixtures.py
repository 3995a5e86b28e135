"""Makes the T5 parity fixtures that nlp/t5/t5_model_test.cc checks our model against.

For each style (t5: ReLU FFN, tied head scaled by d_model^-0.5; v1_1: gated-GELU FFN, untied
head) a tiny random-init HF T5ForConditionalGeneration is saved with save_pretrained into
<style>/ (config.json, model.safetensors), and <style>/reference.safetensors holds fixed inputs
(input_ids, attention_mask, labels), HF's eval-mode logits and loss on them, the gradient of
that loss for every parameter ("grad.<name>"), and what generate() makes of the inputs, greedy
and beam search ("generate.<setting>").  The head's </s> row is scaled up so that some
sequences end before max_length.

    python3 nlp/t5/testdata/make_t5_fixtures.py      # needs torch, transformers, safetensors

Made with torch 2.11.0 (CPU) and transformers 5.24 from PyPI.  transformers 5 always ties
lm_head to the shared embedding and keeps v1.1's "no rescaling before the head" in a new config
key, scale_decoder_outputs; real v1.1 / flan-t5 checkpoints (saved by transformers 4) have
tie_word_embeddings false and their own lm_head.weight.  The v1_1 fixture is written in that
layout: its head is untied here, saved with the other weights, and config.json says
tie_word_embeddings false.

fp16/ is the t5 style with every FFN output projection (wo) scaled up so that the FFN output
passes fp16's largest value (65504) in every block, and all weights rounded to fp16-representable
values (saved as fp32).  Its reference holds the fp32 logits and loss, and HF's with the model
loaded as fp16 ("logits_fp16", "loss_fp16"), which keeps wo in fp32 (_keep_in_fp32_modules): the
case of HF issue #10830 that fp16 T5 training must survive.
"""
import json
import os

import torch
from safetensors.torch import save_file
from transformers import T5Config, T5ForConditionalGeneration

# generate() settings whose outputs the fixtures record ("generate.<key>").  use_cache=False:
# transformers 5.24 sizes its decoder cache by num_layers and fails when num_decoder_layers differs
# (the v1_1 fixture); without the cache it computes the same sequences.
GENERATE = {
    "greedy": dict(num_beams=1, max_length=12),
    "beam3": dict(num_beams=3, max_length=12, length_penalty=1.0, early_stopping=False),
    "beam4_early": dict(num_beams=4, max_length=9, length_penalty=0.6, early_stopping=True),
}

HERE = os.path.dirname(os.path.abspath(__file__))

STYLES = {
    "t5": dict(feed_forward_proj="relu", tie_word_embeddings=True, num_decoder_layers=2),
    "v1_1": dict(feed_forward_proj="gated-gelu", tie_word_embeddings=False, num_decoder_layers=3),
}


def main():
    for style, extra in STYLES.items():
        torch.manual_seed(1234)
        config = T5Config(vocab_size=64, d_model=16, d_kv=4, num_heads=4, d_ff=32, num_layers=2,
                          relative_attention_num_buckets=8, relative_attention_max_distance=10,
                          dropout_rate=0.1, layer_norm_epsilon=1e-6, pad_token_id=0, eos_token_id=1,
                          decoder_start_token_id=0, **extra)
        model = T5ForConditionalGeneration(config).float().eval()
        out_dir = os.path.join(HERE, style)
        if not extra["tie_word_embeddings"]:
            model.lm_head.weight = torch.nn.Parameter(torch.randn(64, 16, generator=torch.Generator().manual_seed(7)))
        with torch.no_grad():  # make </s> likely enough that generation ends some sequences early
            model.lm_head.weight[1] *= 1.8
        model.save_pretrained(out_dir)
        if not extra["tie_word_embeddings"]:
            assert model.lm_head.weight.data_ptr() != model.shared.weight.data_ptr()
            weights = {k: v.contiguous() for k, v in model.state_dict().items() if "embed_tokens" not in k}
            save_file(weights, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
            with open(os.path.join(out_dir, "config.json")) as f:
                cfg = json.load(f)
            cfg["tie_word_embeddings"] = False
            with open(os.path.join(out_dir, "config.json"), "w") as f:
                json.dump(cfg, f, indent=2, sort_keys=True)

        g = torch.Generator().manual_seed(99)
        input_ids = torch.randint(2, 64, (2, 12), generator=g)
        attention_mask = torch.ones_like(input_ids)
        input_ids[1, 9:] = 0
        attention_mask[1, 9:] = 0
        input_ids[0, 11] = 1
        input_ids[1, 8] = 1
        labels = torch.randint(2, 64, (2, 7), generator=g)
        labels[0, 6] = 1
        labels[1, 4] = 1
        labels[1, 5:] = -100

        out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
        out.loss.backward()
        ref = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
               "logits": out.logits.detach().contiguous(), "loss": out.loss.detach().reshape(())}
        for name, p in model.named_parameters():
            ref["grad." + name] = p.grad.detach().contiguous()
        with torch.no_grad():
            for key, kwargs in GENERATE.items():
                gen = model.generate(input_ids=input_ids, attention_mask=attention_mask, do_sample=False,
                                     use_cache=False, **kwargs)
                ref["generate." + key] = gen.contiguous()
        save_file(ref, os.path.join(out_dir, "reference.safetensors"))
        print(style, "loss", out.loss.item(), "params", sum(p.numel() for p in model.parameters()))


def make_fp16():
    torch.manual_seed(1234)
    config = T5Config(vocab_size=64, d_model=16, d_kv=4, num_heads=4, d_ff=32, num_layers=2,
                      relative_attention_num_buckets=8, relative_attention_max_distance=10,
                      dropout_rate=0.1, layer_norm_epsilon=1e-6, pad_token_id=0, eos_token_id=1,
                      decoder_start_token_id=0, **STYLES["t5"])
    model = T5ForConditionalGeneration(config).float().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("wo.weight"):
                p.mul_(30000)
            p.copy_(p.half().float())
    out_dir = os.path.join(HERE, "fp16")
    model.save_pretrained(out_dir)
    half = T5ForConditionalGeneration.from_pretrained(out_dir, dtype=torch.float16).eval()
    assert half.encoder.block[0].layer[1].DenseReluDense.wo.weight.dtype == torch.float32
    assert half.encoder.block[0].layer[1].DenseReluDense.wi.weight.dtype == torch.float16

    g = torch.Generator().manual_seed(99)
    input_ids = torch.randint(2, 64, (2, 12), generator=g)
    labels = torch.randint(2, 64, (2, 7), generator=g)
    peak = []
    hooks = [m.register_forward_hook(lambda mod, i, o: peak.append(o.abs().max().item()))
             for n, m in model.named_modules() if n.endswith("DenseReluDense.wo")]
    with torch.no_grad():
        out = model(input_ids=input_ids, labels=labels)
        out16 = half(input_ids=input_ids, labels=labels)
    for h in hooks:
        h.remove()
    assert min(peak) > 65504, peak
    ref = {"input_ids": input_ids, "labels": labels, "logits": out.logits.contiguous(),
           "loss": out.loss.reshape(()), "logits_fp16": out16.logits.float().contiguous(),
           "loss_fp16": out16.loss.float().reshape(())}
    save_file(ref, os.path.join(out_dir, "reference.safetensors"))
    print("fp16 loss", out.loss.item(), "as fp16", out16.loss.item(), "FFN output peaks", peak)


if __name__ == "__main__":
    main()
    make_fp16()
