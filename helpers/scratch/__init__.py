"""The science, written to be read: from-scratch implementations, one idea per file.

Each file reads top to bottom like a textbook page: validation first, then the equations, with the
shapes of tensors in comments. Each is tested against an independent reference (PyTorch where PyTorch
has the same thing, hand-computed values otherwise). These modules import only the core equipment.
"""
