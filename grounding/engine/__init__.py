"""Training and evaluation loops, checkpoints, schedules, distributed setup, TensorBoard figures."""
