"""The networks: Flax Linen modules and the readers of their pretrained weights."""
