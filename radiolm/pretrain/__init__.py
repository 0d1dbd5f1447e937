"""``radiolm pretrain``: self-supervised starting points, made here, for parts whose weights the hub would give."""
