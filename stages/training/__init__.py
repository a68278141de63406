"""Training pieces shared by pretrain and finetune: losses, checkpoints, distribution, logs."""
