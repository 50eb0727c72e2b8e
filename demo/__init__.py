"""The README's first command: the seed's flow end to end on one machine."""
