"""The included trainer: Llama-family model, Triton kernels, curriculum loop, FSDP2, checkpoints, export."""
