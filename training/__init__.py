"""SEAL as a library: model loading, self-edit generation, LoRA inner loop, recall quizzes.

This package never imports ``app``. The web product calls it through
:func:`training.memory.learn.learn_facts` (build a new adapter version from a user's facts)
and the helpers in :mod:`training.model` and :mod:`training.chat` (load the base
model, render chat prompts, generate replies). Inputs and outputs are plain
dataclasses, never ORM rows.
"""
