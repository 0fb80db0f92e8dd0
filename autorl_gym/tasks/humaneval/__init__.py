"""HumanEval (``AutoRL-HumanEval-v0``): code completion graded by pass@1, every completion run
with its tests in a fresh sandbox."""
